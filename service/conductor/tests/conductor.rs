//! The conductor's tests, one binary: flows end to end without HTTP, and
//! the workspace's module layout.

#[path = "conductor/appliances.rs"]
mod appliances;
#[path = "conductor/clusters.rs"]
mod clusters;
#[path = "conductor/flows.rs"]
mod flows;
#[path = "conductor/layout.rs"]
mod layout;
