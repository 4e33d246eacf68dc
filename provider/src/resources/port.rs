//! `tundra_port`: a place on a network (fixed addresses from its subnets),
//! bound to a machine interface when a node names it in `networks`. Its
//! `drift` says when the switch port is not where tundrad put it (changed
//! by hand on the switch, or refused): `terraform plan` shows an update
//! that clears it, and `apply` programs the switch port again and waits
//! until it reads back right.

use std::time::{Duration, Instant};

use tfplugin::schema::{Attribute, Block, Schema};
use tfplugin::{AttrPath, Ctx, Diagnostic, Diagnostics, Failed, Nesting, PlanChange, Resource, Value, modifiers};
use tundra_api::fabric::{FixedIp, Port, PortCreate, PortUpdate, SwitchPortState};

use super::keypair::project_id_attr;
use super::{Rest, created_at_attr, description_attr, id_attr, known, name_validator};
use crate::client::{Client, ClientExt, Diag, nouns};

tfplugin::tf_object! {
    #[derive(Clone, Debug, PartialEq)]
    pub struct FixedIpObj {
        pub subnet_id: Value<String>,
        pub address: Value<String>,
    }
}

tfplugin::tf_object! {
    #[derive(Clone, Debug)]
    pub struct PortState {
        pub id: Value<String>,
        pub project_id: Value<String>,
        pub network_id: Value<String>,
        pub name: Value<String>,
        pub description: Value<String>,
        pub fixed_ips: Value<Vec<FixedIpObj>>,
        pub node_id: Value<String>,
        pub mac: Value<String>,
        pub drift: Value<String>,
        pub created_at: Value<String>,
    }
}

impl PortState {
    pub fn from_view(p: &Port) -> Self {
        PortState {
            id: Value::Known(p.id.to_string()),
            project_id: Value::Known(p.project_id.to_string()),
            network_id: Value::Known(p.network_id.to_string()),
            name: Value::Known(p.name.clone()),
            description: Value::Known(p.description.clone()),
            fixed_ips: Value::Known(
                p.fixed_ips
                    .iter()
                    .map(|f| FixedIpObj {
                        subnet_id: Value::Known(f.subnet_id.to_string()),
                        address: f.address.clone().into(),
                    })
                    .collect(),
            ),
            node_id: p.node_id.map(|n| n.to_string()).into(),
            mac: p.mac.clone().into(),
            drift: p.drift.clone().into(),
            created_at: Value::Known(p.created_at.clone()),
        }
    }
}

const FIELDS: &[(&str, &str)] =
    &[("/network_id", "network_id"), ("/name", "name"), ("/description", "description"), ("/fixed_ips", "fixed_ips")];

const REST: Rest<Port> = Rest { noun: &nouns::PORTS, fields: FIELDS };

/// The drift attribute: shown while the switch disagrees; a plan clears it.
pub fn drift_attr(what: &str) -> Attribute {
    Attribute::string("drift").computed().description(&format!(
        "Set when {what}'s switch port is not where tundrad put it (changed on the switch by hand, or refused); \
         `terraform plan` then shows an update clearing it, and `apply` programs the switch port again."
    ))
}

/// Plan the repair: a drift in state is planned away (an update).
pub fn plan_repair<T: Clone>(change: &mut PlanChange<T>, drift: impl Fn(&mut T) -> &mut Value<String>) {
    let Some(mut prior) = change.prior.clone() else { return };
    if let Some(d) = drift(&mut prior).known().cloned() {
        *drift(&mut change.planned) = Value::Null;
        change.diagnostics.push(Diagnostic::warning("Switch port drift will be repaired", d));
    }
}

pub struct PortResource;

impl Resource<Client> for PortResource {
    type State = PortState;

    fn type_name(&self) -> &'static str {
        "tundra_port"
    }

    fn schema(&self) -> Schema {
        let replace = modifiers::requires_replace;
        let keep = modifiers::use_state_for_unknown;
        Schema::new(
            Block::new(
                "A port on a network with fixed addresses; a node uses it by naming it in `networks` \
                 (its switch port then moves into the network's VLAN while the node is active).",
            )
            .attr(id_attr("port"))
            .attr(project_id_attr("port"))
            .attr(Attribute::string("network_id").required().modifier(replace()))
            .attr(
                Attribute::string("name").required().validator(name_validator()).description("Unique in the project."),
            )
            .attr(description_attr())
            .attr(
                Attribute::nested(
                    "fixed_ips",
                    Nesting::List,
                    vec![
                        Attribute::string("subnet_id").required(),
                        Attribute::string("address")
                            .optional()
                            .computed()
                            .description("Default: the subnet's next free address."),
                    ],
                )
                .optional()
                .computed()
                .modifier(keep())
                .modifier(replace())
                .description("Addresses (default: one from each of the network's subnets)."),
            )
            .attr(Attribute::string("node_id").computed().description("The node using it."))
            .attr(Attribute::string("mac").computed().description("The machine interface it is bound to."))
            .attr(drift_attr("the port"))
            .attr(created_at_attr()),
        )
    }

    fn importable(&self) -> bool {
        true
    }

    async fn modify_plan(&self, _ctx: &Ctx<Client>, change: &mut PlanChange<PortState>) {
        plan_repair(change, |s| &mut s.drift);
    }

    async fn create(&self, ctx: &Ctx<Client>, plan: PortState) -> Result<PortState, Failed<PortState>> {
        let c = ctx.client()?;
        let bad = |what: &str| Diagnostic::error(format!("Invalid {what}"), "Not an ID.").at(AttrPath::attr_root(what));
        let fixed_ips = match plan.fixed_ips.known() {
            Some(v) => Some(
                v.iter()
                    .map(|f| {
                        Ok(FixedIp {
                            subnet_id: known(&f.subnet_id).unwrap_or_default().parse().map_err(|_| bad("fixed_ips"))?,
                            address: f.address.known().cloned(),
                        })
                    })
                    .collect::<Result<Vec<_>, Diagnostic>>()?,
            ),
            None => None,
        };
        let req = PortCreate {
            project_id: c.project_id(known(&plan.project_id)).await?,
            network_id: known(&plan.network_id).unwrap_or_default().parse().map_err(|_| bad("network_id"))?,
            name: known(&plan.name).unwrap_or_default().into(),
            description: known(&plan.description).unwrap_or_default().into(),
            fixed_ips,
        };
        let x: Port = REST.create(c, &req).await?;
        Ok(PortState::from_view(&x))
    }

    async fn read(&self, ctx: &Ctx<Client>, state: PortState) -> Result<Option<PortState>, Diagnostics> {
        let x: Option<Port> = REST.find(ctx, &state.id).await?;
        Ok(x.as_ref().map(PortState::from_view))
    }

    async fn update(
        &self,
        ctx: &Ctx<Client>,
        prior: PortState,
        plan: PortState,
    ) -> Result<PortState, Failed<PortState>> {
        let c = ctx.client()?;
        let req = PortUpdate {
            name: plan.name.known().filter(|n| Some(*n) != prior.name.known()).cloned(),
            description: plan.description.known().cloned(),
        };
        let mut x: Port = REST.patch(ctx, &prior.id, &req).await?;
        if prior.drift.is_known() {
            let id = x.id.to_string();
            c.sync_port(&id).await.map_err(|e| Failed::from(e.diag("Could not repair the port's switch port")))?;
            x = wait_in_sync(ctx, c, &id).await?;
        }
        Ok(PortState::from_view(&x))
    }

    async fn delete(&self, ctx: &Ctx<Client>, state: PortState) -> Result<(), Diagnostics> {
        REST.delete(ctx, &state.id).await
    }

    async fn import(&self, ctx: &Ctx<Client>, id: &str) -> Result<PortState, Diagnostics> {
        let x: Port = REST.import(ctx, id).await?;
        Ok(PortState::from_view(&x))
    }
}

/// Poll the port until its switch port reads back right (or failed).
async fn wait_in_sync(ctx: &Ctx<Client>, c: &Client, id: &str) -> Result<Port, Diagnostic> {
    loop {
        let x = c.get(&nouns::PORTS, id).await.map_err(|e| e.diag("Could not read the port"))?;
        match x.binding.as_ref().map(|b| b.state) {
            None | Some(SwitchPortState::InSync) => return Ok(x),
            Some(SwitchPortState::Failed) => {
                return Err(Diagnostic::error(
                    "The switch refused",
                    x.drift.unwrap_or_else(|| "the switch port could not be programmed".into()),
                ));
            }
            _ => {}
        }
        if ctx.deadline().is_some_and(|d| Instant::now() + Duration::from_secs(2) >= d) || ctx.stopping() {
            return Err(Diagnostic::error(
                "Switch port still being programmed",
                format!("Port {} is not back in sync yet; apply again to wait for it.", x.name),
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
