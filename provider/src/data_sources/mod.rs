//! Data sources: look up catalog objects by ID or by name, to use objects
//! managed elsewhere (public flavors and images, another team's project).

mod lookup;

pub use lookup::{FlavorData, ImageData, KeypairData, NodeData, ProjectData};
