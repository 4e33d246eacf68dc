//! `tundra-drivers`: how tundrad talks to hardware. Each kind of hardware is
//! a small interface with a cheap `validate`, real implementations speaking
//! the real protocol, and a fake next to them for unit tests of the code that
//! uses the interface. Nothing here knows the store or HTTP routes.

pub mod bmc;
pub mod retry;
pub mod share;
pub mod switch;
