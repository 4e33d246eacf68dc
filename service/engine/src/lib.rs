//! `tundra-engine`: the rules of how things change — the machine
//! provision-state machine as one table (`machine_states`) and the site's
//! inspection rules as data (`inspection`), placement (`scheduler`) and the
//! node workflow with the config drive it writes (`nodes`), appliances'
//! templates, rendering and status (`appliances`), clusters' join
//! plans, status and scale-down order (`clusters`), the fabric's
//! binding and port rules (`fabric`), IPv4 address management (`ipam`),
//! object names (`names`) and which qcow2 headers may be converted
//! (`qcow2`). No IO: every function here is a rule, tested without a store,
//! a network or a clock.

pub mod appliances;
pub mod clusters;
pub mod fabric;
pub mod inspection;
pub mod ipam;
pub mod machine_states;
pub mod names;
pub mod nodes;
pub mod qcow2;
pub mod scheduler;
pub mod shares;
