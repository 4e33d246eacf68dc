//! `tundra-engine`: the rules of how things change. Today: the machine
//! provision-state machine (`machine_states`), as one table.

pub mod machine_states;
