//! `tundra-engine`: the rules of how things change — the machine
//! provision-state machine as one table (`machine_states`) and the site's
//! inspection rules as data (`inspection`).

pub mod inspection;
pub mod machine_states;
pub mod scheduler;
