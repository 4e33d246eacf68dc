//! `tundra-engine`: the rules of how things change — the machine
//! provision-state machine as one table (`machine_states`) and the site's
//! inspection rules as data (`inspection`), placement (`scheduler`) and the
//! node workflow with the config drive it writes (`nodes`).

pub mod fabric;
pub mod inspection;
pub mod machine_states;
pub mod nodes;
pub mod scheduler;
