//! `tundra-boot`: how machines network-boot from tundrad. `dhcp` answers
//! DHCP on the provisioning networks — reserved addresses for enrolled
//! machines, a pool for discovery, and the right boot file for each kind of
//! client (BIOS PXE, UEFI PXE, iPXE).

pub mod dhcp;
