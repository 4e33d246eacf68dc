//! Machines: the physical servers of the site (site admins only).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{MachineId, OperationId};

/// How tundrad reaches a machine's BMC. The password is write-only: it is
/// sealed at rest and never returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BmcSettings {
    /// `redfish`, `ipmi`, or `fake` (no hardware: benchmarks and dry runs,
    /// only where tundrad's `fake_hardware` is on).
    pub driver: BmcDriver,
    /// Redfish: `https://10.0.0.5` (or `http://…` for emulators); IPMI: `HOST` or `HOST:PORT`.
    pub address: String,
    /// Redfish system ID or path; needed only when the BMC manages several systems.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    pub username: String,
    /// Skip TLS verification of a Redfish BMC (self-signed certificates).
    #[serde(default)]
    pub insecure: bool,
}

words! {
    pub enum BmcDriver {
        Redfish = "redfish",
        Ipmi = "ipmi",
        Fake = "fake",
    }
}

/// A network interface of a machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Interface {
    /// `aa:bb:cc:dd:ee:ff` (lowercase).
    pub mac: String,
    /// The physical network it is cabled to (e.g. `ctlplane`), if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub physical_network: Option<String>,
    /// The switch and port it is cabled to, if known (from LLDP or by hand).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub switch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
    /// The interface that network-boots.
    #[serde(default)]
    pub pxe: bool,
    /// A fixed IPv4 address on its provisioning network (tundrad's DHCP
    /// reserves it, with the machine's name as host name); none: one from
    /// the pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// Where a machine is: scheduling uses it for locality.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Location {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rack: Option<String>,
    /// A group of racks sharing a fast fabric (e.g. one InfiniBand island).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub island: Option<String>,
}

words! {
    /// Where a machine is in its life. The moves between states are one table
    /// (`tundra_engine::machine_states`), drawn in docs/machine-states.md.
    pub enum ProvisionState {
        Enroll = "enroll",
        Verifying = "verifying",
        Manageable = "manageable",
        Inspecting = "inspecting",
        InspectWait = "inspect_wait",
        InspectFailed = "inspect_failed",
        Cleaning = "cleaning",
        CleanWait = "clean_wait",
        CleanFailed = "clean_failed",
        Available = "available",
        Deploying = "deploying",
        DeployWait = "deploy_wait",
        DeployFailed = "deploy_failed",
        Active = "active",
        Deleting = "deleting",
        Error = "error",
        Adopting = "adopting",
        AdoptFailed = "adopt_failed",
        Rescuing = "rescuing",
        RescueWait = "rescue_wait",
        Rescue = "rescue",
        RescueFailed = "rescue_failed",
        Unrescuing = "unrescuing",
        UnrescueFailed = "unrescue_failed",
    }
}

/// A machine as tundrad knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Machine {
    pub id: MachineId,
    pub name: String,
    pub resource_class: String,
    pub traits: Vec<String>,
    /// Hardware facts (cpus, memory_mib, disks, gpus…), from inspection or by hand.
    pub properties: serde_json::Value,
    pub location: Location,
    pub bmc: BmcSettings,
    pub interfaces: Vec<Interface>,
    /// `on`, `off`, or `unknown` (never read, or the BMC did not answer).
    pub power_state: String,
    /// See docs/machine-states.md.
    pub provision_state: ProvisionState,
    /// Held out of automation (by an operator, or by tundrad while its BMC is unreachable).
    pub maintenance: bool,
    pub maintenance_reason: Option<String>,
    /// Who set maintenance: an operator's name, or `tundrad`.
    pub maintenance_by: Option<String>,
    pub last_error: Option<String>,
    /// The operation working on the machine, while one is.
    pub operation_id: Option<OperationId>,
    pub created_at: String,
    pub updated_at: String,
    pub revision: i64,
}

/// `POST /v1/machines`: enroll a machine (it starts in `enroll`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MachineCreate {
    pub name: String,
    /// Default `baremetal`; inspection rules can set it from the hardware.
    #[serde(default = "default_resource_class")]
    pub resource_class: String,
    #[serde(default)]
    pub traits: Vec<String>,
    #[serde(default = "empty_object")]
    pub properties: serde_json::Value,
    #[serde(default)]
    pub location: Location,
    pub bmc: BmcSettings,
    /// The BMC password (write-only).
    pub bmc_password: String,
    #[serde(default)]
    pub interfaces: Vec<Interface>,
}

fn default_resource_class() -> String {
    "baremetal".into()
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(Default::default())
}

/// `PATCH /v1/machines/{id}`: absent fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MachineUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_class: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traits: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bmc: Option<BmcSettings>,
    /// A new BMC password (write-only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bmc_password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interfaces: Option<Vec<Interface>>,
    /// Put into (true, with a reason) or take out of (false) maintenance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance_reason: Option<String>,
}

words! {
    /// A power action on a machine (also an action of `POST /v1/machines/{id}/actions`).
    pub enum PowerAction {
        PowerOn = "power_on",
        PowerOff = "power_off",
        SoftPowerOff = "soft_power_off",
        Reboot = "reboot",
    }
}

/// `POST /v1/machines/{id}/actions`: a provision-state verb (`manage`,
/// `inspect`, `provide`, `deploy`, `delete`, `abort`) or a power action
/// (`power_on`, `power_off`, `soft_power_off`, `reboot`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MachineAction {
    pub action: String,
    /// `deploy` only: the image to write (an active image).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<crate::ImageId>,
}
