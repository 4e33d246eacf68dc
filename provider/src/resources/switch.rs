//! `tundra_switch` (site admins): a switch tundrad programs over SSH. The
//! password or private key is write-only — sent on create and when
//! `credentials_version` changes, never in state; tundrad seals it at rest
//! and never returns it. The host key is pinned.

use tfplugin::schema::{Attribute, Block, Schema};
use tfplugin::{Ctx, Diagnostics, Failed, Resource, Value, modifiers, validators};
use tundra_api::fabric::{Switch, SwitchCreate, SwitchUpdate};

use super::{Rest, created_at_attr, description_attr, id_attr, known, name_validator, uint};
use crate::client::{Client, nouns};

tfplugin::tf_object! {
    #[derive(Clone, Debug)]
    pub struct SwitchState {
        pub id: Value<String>,
        pub name: Value<String>,
        pub description: Value<String>,
        pub physical_network_id: Value<String>,
        pub dialect: Value<String>,
        pub address: Value<String>,
        pub username: Value<String>,
        pub password: Value<String>,
        pub private_key: Value<String>,
        pub credentials_version: Value<i64>,
        pub host_key: Value<String>,
        pub max_sessions: Value<i64>,
        pub min_interval_ms: Value<i64>,
        pub created_at: Value<String>,
    }
}

impl SwitchState {
    pub fn from_view(s: &Switch, prior: Option<&SwitchState>) -> Self {
        SwitchState {
            id: Value::Known(s.id.to_string()),
            name: Value::Known(s.name.clone()),
            description: Value::Known(s.description.clone()),
            physical_network_id: Value::Known(s.physical_network_id.to_string()),
            dialect: Value::Known(s.dialect.clone()),
            address: Value::Known(s.address.clone()),
            username: Value::Known(s.username.clone()),
            password: Value::Null,
            private_key: Value::Null,
            credentials_version: prior.map(|p| p.credentials_version.clone()).unwrap_or(Value::Null),
            host_key: Value::Known(s.host_key.clone()),
            max_sessions: Value::Known(s.max_sessions as i64),
            min_interval_ms: Value::Known(s.min_interval_ms as i64),
            created_at: Value::Known(s.created_at.clone()),
        }
    }
}

const FIELDS: &[(&str, &str)] = &[
    ("/name", "name"),
    ("/description", "description"),
    ("/physical_network_id", "physical_network_id"),
    ("/dialect", "dialect"),
    ("/address", "address"),
    ("/username", "username"),
    ("/password", "password"),
    ("/private_key", "private_key"),
    ("/host_key", "host_key"),
    ("/max_sessions", "max_sessions"),
    ("/min_interval_ms", "min_interval_ms"),
];

const REST: Rest<Switch> = Rest { noun: &nouns::SWITCHES, fields: FIELDS };

pub struct SwitchResource;

impl Resource<Client> for SwitchResource {
    type State = SwitchState;

    fn type_name(&self) -> &'static str {
        "tundra_switch"
    }

    fn schema(&self) -> Schema {
        let replace = modifiers::requires_replace;
        Schema::new(
            Block::new(
                "A switch tundrad programs over SSH (site admins): machine interfaces whose LLDP names it are \
                 moved between VLANs as nodes come and go, in batches, each change read back; drift is read \
                 every `fabric_read_interval` and shows on the nodes' and ports' `drift`.",
            )
            .attr(id_attr("switch"))
            .attr(
                Attribute::string("name")
                    .required()
                    .validator(name_validator())
                    .modifier(replace())
                    .description("As LLDP (the system name) or machine interfaces' `switch` name it."),
            )
            .attr(description_attr())
            .attr(Attribute::string("physical_network_id").required().modifier(replace()).description("The ethernet physical network it carries."))
            .attr(
                Attribute::string("dialect")
                    .required()
                    .modifier(replace())
                    .validator(validators::one_of([
                        "cisco_ios", "dell_powerconnect", "dell_os6_10g", "dell_os9", "dell_os10", "brocade_fastiron",
                        "arista_eos", "junos", "linux_bridge",
                    ]))
                    .description("How to talk to it: `cisco_ios`, `dell_powerconnect`, `dell_os6_10g`, `dell_os9`, `dell_os10`, `brocade_fastiron`, `arista_eos`, `junos` (NETCONF), `linux_bridge`."),
            )
            .attr(Attribute::string("address").required().description("`HOST:PORT` of its SSH server."))
            .attr(Attribute::string("username").required())
            .attr(Attribute::string("password").optional().write_only().description("Login (and enable) password: sent on create and when `credentials_version` changes; never stored in state."))
            .attr(Attribute::string("private_key").optional().write_only().description("An unencrypted OpenSSH private key to log in with instead; write-only like `password`."))
            .attr(Attribute::number("credentials_version").optional().description("Change to send `password` / `private_key` again."))
            .attr(Attribute::string("host_key").required().description("Its SSH host key fingerprint (`SHA256:…`, as `ssh-keygen -lf` prints it); nothing else is accepted."))
            .attr(Attribute::number("max_sessions").optional().computed().description("SSH sessions at once (default 1)."))
            .attr(Attribute::number("min_interval_ms").optional().computed().description("Milliseconds between session starts (default 0)."))
            .attr(created_at_attr()),
        )
    }

    fn importable(&self) -> bool {
        true
    }

    async fn create(&self, ctx: &Ctx<Client>, plan: SwitchState) -> Result<SwitchState, Failed<SwitchState>> {
        let c = ctx.client()?;
        let req = SwitchCreate {
            name: known(&plan.name).unwrap_or_default().into(),
            description: known(&plan.description).unwrap_or_default().into(),
            physical_network_id: known(&plan.physical_network_id).unwrap_or_default().parse().map_err(|_| {
                tfplugin::Diagnostic::error("Invalid physical_network_id", "Not an ID.")
                    .at(tfplugin::AttrPath::attr_root("physical_network_id"))
            })?,
            dialect: known(&plan.dialect).unwrap_or_default().into(),
            address: known(&plan.address).unwrap_or_default().into(),
            username: known(&plan.username).unwrap_or_default().into(),
            password: plan.password.known().cloned(),
            private_key: plan.private_key.known().cloned(),
            host_key: known(&plan.host_key).unwrap_or_default().into(),
            max_sessions: uint(&plan.max_sessions),
            min_interval_ms: uint(&plan.min_interval_ms),
        };
        let x: Switch = REST.create(c, &req).await?;
        Ok(SwitchState::from_view(&x, Some(&plan)))
    }

    async fn read(&self, ctx: &Ctx<Client>, state: SwitchState) -> Result<Option<SwitchState>, Diagnostics> {
        let x: Option<Switch> = REST.find(ctx, &state.id).await?;
        Ok(x.as_ref().map(|x| SwitchState::from_view(x, Some(&state))))
    }

    async fn update(
        &self,
        ctx: &Ctx<Client>,
        prior: SwitchState,
        plan: SwitchState,
    ) -> Result<SwitchState, Failed<SwitchState>> {
        let resend = plan.credentials_version != prior.credentials_version;
        let req = SwitchUpdate {
            description: plan.description.known().cloned(),
            address: plan.address.known().cloned(),
            username: plan.username.known().cloned(),
            password: resend.then(|| plan.password.known().cloned()).flatten(),
            private_key: resend.then(|| plan.private_key.known().cloned()).flatten(),
            host_key: plan.host_key.known().cloned(),
            max_sessions: uint(&plan.max_sessions),
            min_interval_ms: uint(&plan.min_interval_ms),
        };
        let x: Switch = REST.patch(ctx, &prior.id, &req).await?;
        Ok(SwitchState::from_view(&x, Some(&plan)))
    }

    async fn delete(&self, ctx: &Ctx<Client>, state: SwitchState) -> Result<(), Diagnostics> {
        REST.delete(ctx, &state.id).await
    }

    async fn import(&self, ctx: &Ctx<Client>, id: &str) -> Result<SwitchState, Diagnostics> {
        let x: Switch = REST.import(ctx, id).await?;
        Ok(SwitchState::from_view(&x, None))
    }
}
