//! Clusters: `flows` (templates, clusters and their changes checked; what a
//! node's cluster agent is told and what it reports) and `reconcile` (the
//! loop that makes and removes the groups' nodes and judges the cluster).
//! The rules are `tundra_engine::clusters`.

pub mod flows;
pub mod reconcile;

/// A leaving member's reason once the control plane has drained and
/// removed it: its node may go.
pub const REMOVED: &str = "removed from the cluster by its control plane";
