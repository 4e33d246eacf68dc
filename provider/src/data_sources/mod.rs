//! Data sources: look up catalog objects by ID or by name, to use objects
//! managed elsewhere (public flavors and images, another team's project).

mod appliances;
mod clusters;
mod fabric;
mod lookup;
mod shares;

pub use appliances::{ApplianceData, ApplianceTemplateData};
pub use clusters::{ClusterData, ClusterTemplateData};
pub use fabric::{NetworkData, PhysicalNetworkData, PortData, SubnetData};

pub use lookup::{FlavorData, ImageData, KeypairData, NodeData, ProjectData};
pub use shares::{ShareData, ShareTypeData};
