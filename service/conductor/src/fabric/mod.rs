//! The fabric: its objects' rules (`switches`, `networks`), a node's
//! networks bound to machine interfaces (`binding`), and the worker that
//! keeps switch ports where they should be (`worker`).

pub mod binding;
pub mod networks;
pub mod switches;
pub mod worker;
