//! `tundra_machine`: a physical server in the inventory (site admins). The
//! BMC password is write-only: sent to tundrad, sealed there, never in state;
//! bump `bmc_password_version` to send a new one. With `manage` (default) the
//! create waits until tundrad has verified the BMC.

use std::time::{Duration, Instant};

use tfplugin::schema::{Attribute, Block, Schema};
use tfplugin::{
    AttrPath, Ctx, Diagnostic, Diagnostics, Failed, Nesting, Resource, TfValue, Timeouts, Type, Value, modifiers,
    validators,
};
use tundra_api::machines::{
    BmcDriver, BmcSettings, Interface, Location, Machine, MachineAction, MachineCreate, MachineUpdate, ProvisionState,
};

use super::{Rest, created_at_attr, id_attr, known, name_validator};
use crate::client::{Client, Diag, nouns};

tfplugin::tf_object! {
    #[derive(Clone, Debug, PartialEq)]
    pub struct BmcObj {
        pub driver: Value<String>,
        pub address: Value<String>,
        pub system: Value<String>,
        pub username: Value<String>,
        pub insecure: Value<bool>,
    }
}

tfplugin::tf_object! {
    #[derive(Clone, Debug, PartialEq)]
    pub struct LocationObj {
        pub site: Value<String>,
        pub rack: Value<String>,
        pub island: Value<String>,
    }
}

tfplugin::tf_object! {
    #[derive(Clone, Debug, PartialEq)]
    pub struct InterfaceObj {
        pub mac: Value<String>,
        pub physical_network: Value<String>,
        pub switch: Value<String>,
        pub port: Value<String>,
        pub pxe: Value<bool>,
        pub address: Value<String>,
    }
}

tfplugin::tf_object! {
    #[derive(Clone, Debug)]
    pub struct MachineState {
        pub id: Value<String>,
        pub name: Value<String>,
        pub resource_class: Value<String>,
        pub traits: Value<Vec<String>>,
        pub location: Value<LocationObj>,
        pub bmc: Value<BmcObj>,
        pub bmc_password: Value<String>,
        pub bmc_password_version: Value<i64>,
        pub interfaces: Value<Vec<InterfaceObj>>,
        pub manage: Value<bool>,
        pub provide: Value<bool>,
        pub provision_state: Value<String>,
        pub power_state: Value<String>,
        pub maintenance: Value<bool>,
        pub maintenance_reason: Value<String>,
        pub last_error: Value<String>,
        pub created_at: Value<String>,
    }
}

/// `None`/`false` from the API reads as null unless the configuration said it.
fn opt_str(v: &Option<String>) -> Value<String> {
    v.clone().into()
}

fn opt_bool(v: bool, prior: Option<&Value<bool>>) -> Value<bool> {
    match (v, prior) {
        (false, Some(Value::Known(false))) => Value::Known(false),
        (false, _) => Value::Null,
        (true, _) => Value::Known(true),
    }
}

impl MachineState {
    fn from_view(m: &Machine, prior: Option<&MachineState>) -> Self {
        let prior_bmc = prior.and_then(|p| p.bmc.known());
        let prior_ifs = prior.and_then(|p| p.interfaces.known());
        let loc = &m.location;
        let location = if loc.site.is_none()
            && loc.rack.is_none()
            && loc.island.is_none()
            && prior.is_none_or(|p| p.location.is_null())
        {
            Value::Null
        } else {
            Value::Known(LocationObj {
                site: opt_str(&loc.site),
                rack: opt_str(&loc.rack),
                island: opt_str(&loc.island),
            })
        };
        let interfaces: Vec<InterfaceObj> = m
            .interfaces
            .iter()
            .enumerate()
            .map(|(i, itf)| InterfaceObj {
                mac: Value::Known(itf.mac.clone()),
                physical_network: opt_str(&itf.physical_network),
                switch: opt_str(&itf.switch),
                port: opt_str(&itf.port),
                pxe: opt_bool(itf.pxe, prior_ifs.and_then(|v| v.get(i)).map(|p| &p.pxe)),
                address: opt_str(&itf.address),
            })
            .collect();
        MachineState {
            id: Value::Known(m.id.to_string()),
            name: Value::Known(m.name.clone()),
            resource_class: Value::Known(m.resource_class.clone()),
            traits: Value::Known(m.traits.clone()),
            location,
            bmc: Value::Known(BmcObj {
                driver: Value::Known(m.bmc.driver.as_str().into()),
                address: Value::Known(m.bmc.address.clone()),
                system: opt_str(&m.bmc.system),
                username: Value::Known(m.bmc.username.clone()),
                insecure: opt_bool(m.bmc.insecure, prior_bmc.map(|b| &b.insecure)),
            }),
            bmc_password: Value::Null,
            bmc_password_version: prior.map(|p| p.bmc_password_version.clone()).unwrap_or(Value::Null),
            interfaces: if interfaces.is_empty() && prior.is_none_or(|p| p.interfaces.is_null()) {
                Value::Null
            } else {
                Value::Known(interfaces)
            },
            manage: prior.map(|p| p.manage.clone()).unwrap_or(Value::Known(true)),
            provide: prior.map(|p| p.provide.clone()).unwrap_or(Value::Known(false)),
            provision_state: Value::Known(m.provision_state.to_string()),
            power_state: Value::Known(m.power_state.clone()),
            maintenance: Value::Known(m.maintenance),
            maintenance_reason: opt_str(&m.maintenance_reason),
            last_error: opt_str(&m.last_error),
            created_at: Value::Known(m.created_at.clone()),
        }
    }

    fn bmc_settings(&self) -> BmcSettings {
        let b = self.bmc.known().cloned().unwrap_or(BmcObj {
            driver: Value::Null,
            address: Value::Null,
            system: Value::Null,
            username: Value::Null,
            insecure: Value::Null,
        });
        BmcSettings {
            driver: known(&b.driver).and_then(BmcDriver::parse).unwrap_or(BmcDriver::Redfish),
            address: known(&b.address).unwrap_or_default().into(),
            system: b.system.known().cloned(),
            username: known(&b.username).unwrap_or_default().into(),
            insecure: b.insecure.known().copied().unwrap_or(false),
        }
    }

    fn location(&self) -> Location {
        match self.location.known() {
            Some(l) => Location {
                site: l.site.known().cloned(),
                rack: l.rack.known().cloned(),
                island: l.island.known().cloned(),
            },
            None => Location::default(),
        }
    }

    fn interfaces(&self) -> Vec<Interface> {
        self.interfaces
            .known()
            .map(|v| {
                v.iter()
                    .map(|i| Interface {
                        mac: known(&i.mac).unwrap_or_default().into(),
                        physical_network: i.physical_network.known().cloned(),
                        switch: i.switch.known().cloned(),
                        port: i.port.known().cloned(),
                        pxe: i.pxe.known().copied().unwrap_or(false),
                        address: i.address.known().cloned(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

const FIELDS: &[(&str, &str)] = &[
    ("/name", "name"),
    ("/resource_class", "resource_class"),
    ("/traits", "traits"),
    ("/bmc/address", "bmc"),
    ("/bmc_password", "bmc_password"),
    ("/interfaces", "interfaces"),
];

const REST: Rest<Machine> = Rest { noun: &nouns::MACHINES, fields: FIELDS };

pub struct MachineResource;

/// Ask for `action` and wait until the machine is `want` with no operation.
async fn act(
    ctx: &Ctx<Client>,
    c: &Client,
    m: Machine,
    plan: &MachineState,
    action: &str,
    want: ProvisionState,
) -> Result<Machine, Failed<MachineState>> {
    let id = m.id.to_string();
    let op = c.machine_action(&id, &MachineAction { action: action.into(), image_id: None }).await.map_err(|e| {
        Failed::with_state(e.diag(&format!("Could not start {action}")), MachineState::from_view(&m, Some(plan)))
    })?;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let o: tundra_api::ops::Operation = c
            .get(&nouns::OPERATIONS, &op.id.to_string())
            .await
            .map_err(|e| e.diag("Could not follow the operation"))?;
        if o.state.is_terminal() {
            break;
        }
        if ctx.deadline().is_some_and(|d| Instant::now() + Duration::from_secs(1) >= d) {
            let now = c.get(&nouns::MACHINES, &id).await.map_err(|e| e.diag("Could not read machine"))?;
            return Err(Failed::with_state(
                Diagnostic::error(format!("{action} still running"), "Raise timeouts.create, or check the machine."),
                MachineState::from_view(&now, Some(plan)),
            ));
        }
    }
    let now = c.get(&nouns::MACHINES, &id).await.map_err(|e| e.diag("Could not read machine"))?;
    if now.provision_state == want {
        return Ok(now);
    }
    let why = now.last_error.clone().unwrap_or_else(|| now.provision_state.to_string());
    let (summary, advice, at) = if action == "manage" {
        (
            "BMC verification failed",
            "The machine is enrolled but not manageable; fix bmc or bmc_password and apply again.",
            "bmc",
        )
    } else {
        (
            "Machine not ready",
            "The machine is enrolled but not available; see its last_error, fix the machine and replace it.",
            "provide",
        )
    };
    Err(Failed::with_state(
        Diagnostic::error(summary, format!("{action}: {why}. {advice}")).at(AttrPath::attr_root(at)),
        MachineState::from_view(&now, Some(plan)),
    ))
}

impl Resource<Client> for MachineResource {
    type State = MachineState;

    fn type_name(&self) -> &'static str {
        "tundra_machine"
    }

    fn schema(&self) -> Schema {
        let bmc = vec![
            Attribute::string("driver")
                .required()
                .validator(validators::one_of(["redfish", "ipmi", "fake"]))
                .description(
                    "`redfish`, `ipmi`, or `fake` (no hardware, for benchmarks and dry runs; only where tundrad's `fake_hardware` is on).",
                ),
            Attribute::string("address")
                .required()
                .description("Redfish: `https://10.0.0.5`; IPMI: `HOST` or `HOST:PORT`."),
            Attribute::string("system").optional().description("Redfish system ID, when the BMC manages several."),
            Attribute::string("username").required().description("BMC user."),
            Attribute::bool("insecure")
                .optional()
                .description("Skip TLS verification of a Redfish BMC (self-signed certificates)."),
        ];
        let location = vec![
            Attribute::string("site").optional(),
            Attribute::string("rack").optional(),
            Attribute::string("island")
                .optional()
                .description("A group of racks on one fast fabric; scheduling keeps nodes together by it."),
        ];
        let interfaces = vec![
            Attribute::string("mac").required().validator(validators::mac()),
            Attribute::string("physical_network").optional().description("e.g. `ctlplane`."),
            Attribute::string("switch").optional(),
            Attribute::string("port").optional(),
            Attribute::bool("pxe").optional().description("The interface that network-boots."),
            Attribute::string("address")
                .optional()
                .validator(validators::regex(
                    r"^(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])){3}$",
                    "an IPv4 address like 10.0.0.21",
                ))
                .description(
                    "A fixed IPv4 address on its provisioning network (a DHCP reservation); unset: one from the pool.",
                ),
        ];
        Schema::new(
            Block::new(
                "A physical machine in the inventory (site admins). tundrad reaches it through its BMC; the password is \
                 write-only and sealed in tundrad. With `manage` (the default) the create waits until tundrad has \
                 verified the BMC and the machine is `manageable`.",
            )
            .attr(id_attr("machine"))
            .attr(Attribute::string("name").required().validator(name_validator()).description("Unique name."))
            .attr(Attribute::string("resource_class").required().description("Which flavors' nodes may land here, e.g. `baremetal.gpu`."))
            .attr(Attribute::set("traits", Type::String).optional().computed().default(TfValue::Set(Vec::new())).description("e.g. `gpu`, `ib`."))
            .attr(Attribute::nested("location", Nesting::Single, location).optional().description("Where it stands."))
            .attr(Attribute::nested("bmc", Nesting::Single, bmc).required().description("How tundrad reaches the BMC."))
            .attr(Attribute::string("bmc_password").required().write_only().description("BMC password: sent on create and when `bmc_password_version` changes; never stored in state."))
            .attr(Attribute::number("bmc_password_version").optional().description("Change to send `bmc_password` again (after rotating it on the BMC)."))
            .attr(Attribute::nested("interfaces", Nesting::List, interfaces).optional().description("Network interfaces by MAC."))
            .attr(
                Attribute::bool("manage")
                    .optional()
                    .computed()
                    .default(TfValue::Bool(true))
                    .modifier(modifiers::requires_replace())
                    .description("Verify the BMC on create (enroll → manageable)."),
            )
            .attr(
                Attribute::bool("provide")
                    .optional()
                    .computed()
                    .default(TfValue::Bool(false))
                    .modifier(modifiers::requires_replace())
                    .description("On create, after verifying the BMC: inspect the hardware and clean the disks, so the machine is `available` for nodes."),
            )
            .attr(Attribute::string("provision_state").computed().description("See the machine states in the docs."))
            .attr(Attribute::string("power_state").computed().description("`on`, `off` or `unknown`."))
            .attr(Attribute::bool("maintenance").computed().description("Held out of automation (by an operator through the API, or by tundrad while the BMC is silent)."))
            .attr(Attribute::string("maintenance_reason").computed())
            .attr(Attribute::string("last_error").computed())
            .attr(created_at_attr()),
        )
    }

    fn timeouts(&self) -> Option<Timeouts> {
        Some(Timeouts { create: Some(Duration::from_secs(1800)), update: None, delete: None })
    }

    fn importable(&self) -> bool {
        true
    }

    async fn create(&self, ctx: &Ctx<Client>, plan: MachineState) -> Result<MachineState, Failed<MachineState>> {
        let c = ctx.client()?;
        let req = MachineCreate {
            name: known(&plan.name).unwrap_or_default().into(),
            resource_class: known(&plan.resource_class).unwrap_or_default().into(),
            traits: plan.traits.known().cloned().unwrap_or_default(),
            properties: serde_json::json!({}),
            location: plan.location(),
            bmc: plan.bmc_settings(),
            bmc_password: known(&plan.bmc_password).unwrap_or_default().into(),
            interfaces: plan.interfaces(),
        };
        let m: Machine = REST.create(c, &req).await?;
        let mut m = if plan.manage.known() != Some(&false) || plan.provide.known() == Some(&true) {
            act(ctx, c, m, &plan, "manage", ProvisionState::Manageable).await?
        } else {
            m
        };
        if plan.provide.known() == Some(&true) {
            m = act(ctx, c, m, &plan, "inspect", ProvisionState::Manageable).await?;
            m = act(ctx, c, m, &plan, "provide", ProvisionState::Available).await?;
        }
        Ok(MachineState::from_view(&m, Some(&plan)))
    }

    async fn read(&self, ctx: &Ctx<Client>, state: MachineState) -> Result<Option<MachineState>, Diagnostics> {
        let m: Option<Machine> = REST.find(ctx, &state.id).await?;
        Ok(m.map(|m| MachineState::from_view(&m, Some(&state))))
    }

    async fn update(
        &self,
        ctx: &Ctx<Client>,
        prior: MachineState,
        plan: MachineState,
    ) -> Result<MachineState, Failed<MachineState>> {
        let req = MachineUpdate {
            name: plan.name.known().filter(|n| Some(*n) != prior.name.known()).cloned(),
            resource_class: plan.resource_class.known().cloned(),
            traits: plan.traits.known().cloned(),
            location: Some(plan.location()),
            bmc: Some(plan.bmc_settings()),
            bmc_password: (plan.bmc_password_version != prior.bmc_password_version)
                .then(|| plan.bmc_password.known().cloned())
                .flatten(),
            interfaces: Some(plan.interfaces()),
            ..Default::default()
        };
        let m: Machine = REST.patch(ctx, &prior.id, &req).await?;
        Ok(MachineState::from_view(&m, Some(&plan)))
    }

    async fn delete(&self, ctx: &Ctx<Client>, state: MachineState) -> Result<(), Diagnostics> {
        REST.delete(ctx, &state.id).await
    }

    async fn import(&self, ctx: &Ctx<Client>, id: &str) -> Result<MachineState, Diagnostics> {
        let m: Machine = REST.import(ctx, id).await?;
        Ok(MachineState::from_view(&m, None))
    }
}
