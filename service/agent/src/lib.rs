//! `tundra-agent`: what runs on a machine while tundrad inspects, deploys or
//! cleans it. It reads the hardware from `/proc` and `/sys` (`inventory`),
//! streams an image over HTTP onto a disk verifying its sha256 as the bytes
//! pass (`image`), adds the config drive after it (`config_drive`), and erases
//! disks (`erase`); `run` is the agent protocol with tundrad that drives those. Every function works on a real
//! block device and on a plain file standing in for one (the lab's disks).

pub mod config_drive;
pub mod erase;
pub mod image;
pub mod inventory;
pub mod lldp;
pub mod run;
