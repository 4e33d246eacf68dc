//! `tundra-boot`: how machines network-boot from tundrad. `dhcp` answers
//! DHCP on the provisioning networks — reserved addresses for enrolled
//! machines, a pool for discovery, and the right boot file for each kind of
//! client (BIOS PXE, UEFI PXE, iPXE); `tftp` serves the iPXE binaries
//! read-only.

pub mod dhcp;
pub mod tftp;
