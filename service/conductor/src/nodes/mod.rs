//! Node work: `placement` (place, claim, delete) and `reconcile` (the
//! node reconciler that carries out `tundra_engine::nodes::reconcile`).

pub mod placement;
pub mod reconcile;
