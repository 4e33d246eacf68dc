//! Appliances: `flows` (templates and appliances checked and written, their
//! parameters' references resolved, secrets generated; what a node's
//! appliance agent is told and what it reports) and `reconcile` (the loop
//! that makes and removes the roles' nodes, has leaving nodes drained, and
//! judges the appliance). The rules are `tundra_engine::appliances`.

pub mod flows;
pub mod reconcile;

/// The node metadata key naming the appliance that made the node (projects
/// cannot set `tundra:` keys).
pub const APPLIANCE_KEY: &str = "tundra:appliance_id";
