//! `tundra_keypair`: an SSH public key nodes of the project get in
//! `authorized_keys`. The key never changes in place: a new key is a new
//! keypair.

use tfplugin::schema::{Attribute, Block, Schema};
use tfplugin::{Ctx, Diagnostics, Failed, Resource, Value, modifiers};
use tundra_api::catalog::{Keypair, KeypairCreate, KeypairUpdate};

use super::{Rest, created_at_attr, description_attr, id_attr, known, name_validator};
use crate::client::{Client, ClientExt, nouns};

tfplugin::tf_object! {
    #[derive(Clone, Debug)]
    pub struct KeypairState {
        pub id: Value<String>,
        pub project_id: Value<String>,
        pub name: Value<String>,
        pub description: Value<String>,
        pub public_key: Value<String>,
        pub key_type: Value<String>,
        pub fingerprint: Value<String>,
        pub created_at: Value<String>,
    }
}

/// `file("~/.ssh/id.pub")` ends with a newline; tundrad stores the key
/// normalised. Equal after normalising means equal.
fn same_key(a: &str, b: &str) -> bool {
    a.split_whitespace().eq(b.split_whitespace())
}

impl KeypairState {
    pub fn from_view(k: &Keypair, configured_key: Option<&str>) -> Self {
        let public_key = match configured_key {
            Some(c) if same_key(c, &k.public_key) => c.to_string(),
            _ => k.public_key.clone(),
        };
        KeypairState {
            id: Value::Known(k.id.to_string()),
            project_id: Value::Known(k.project_id.to_string()),
            name: Value::Known(k.name.clone()),
            description: Value::Known(k.description.clone()),
            public_key: Value::Known(public_key),
            key_type: Value::Known(k.key_type.clone()),
            fingerprint: Value::Known(k.fingerprint.clone()),
            created_at: Value::Known(k.created_at.clone()),
        }
    }
}

const FIELDS: &[(&str, &str)] =
    &[("/name", "name"), ("/description", "description"), ("/public_key", "public_key"), ("/project_id", "project_id")];

const REST: Rest<Keypair> = Rest { noun: &nouns::KEYPAIRS, fields: FIELDS };

pub struct KeypairResource;

pub fn project_id_attr(what: &str) -> Attribute {
    Attribute::string("project_id")
        .optional()
        .computed()
        .modifier(modifiers::use_state_for_unknown())
        .modifier(modifiers::requires_replace())
        .validator(tfplugin::validators::uuid())
        .description(&format!("Project that owns the {what}; defaults to the provider's `project`."))
}

impl Resource<Client> for KeypairResource {
    type State = KeypairState;

    fn type_name(&self) -> &'static str {
        "tundra_keypair"
    }

    fn schema(&self) -> Schema {
        Schema::new(
            Block::new(
                "An SSH public key of a project, injected into its nodes. Paste the `.pub` file's line \
                 (`file(\"~/.ssh/id_ed25519.pub\")`); ed25519, ECDSA and RSA ≥ 2048 bits are accepted.",
            )
            .attr(id_attr("keypair"))
            .attr(project_id_attr("keypair"))
            .attr(
                Attribute::string("name")
                    .required()
                    .validator(name_validator())
                    .modifier(modifiers::requires_replace())
                    .description("Unique within the project."),
            )
            .attr(description_attr())
            .attr(
                Attribute::string("public_key")
                    .required()
                    .modifier(modifiers::requires_replace())
                    .description("The public key in OpenSSH form: `TYPE BASE64 [COMMENT]`."),
            )
            .attr(
                Attribute::string("key_type")
                    .computed()
                    .modifier(modifiers::use_state_for_unknown())
                    .description("E.g. `ssh-ed25519`."),
            )
            .attr(
                Attribute::string("fingerprint")
                    .computed()
                    .modifier(modifiers::use_state_for_unknown())
                    .description("`SHA256:…`, as `ssh-keygen -l` prints it."),
            )
            .attr(created_at_attr()),
        )
    }

    fn importable(&self) -> bool {
        true
    }

    async fn create(&self, ctx: &Ctx<Client>, plan: KeypairState) -> Result<KeypairState, Failed<KeypairState>> {
        let c = ctx.client()?;
        let project = c.project_id(known(&plan.project_id)).await?;
        let req = KeypairCreate {
            project_id: project,
            name: known(&plan.name).unwrap_or_default().to_string(),
            description: known(&plan.description).unwrap_or_default().to_string(),
            public_key: known(&plan.public_key).unwrap_or_default().to_string(),
        };
        let k: Keypair = REST.create(c, &req).await?;
        Ok(KeypairState::from_view(&k, known(&plan.public_key)))
    }

    async fn read(&self, ctx: &Ctx<Client>, state: KeypairState) -> Result<Option<KeypairState>, Diagnostics> {
        let k: Option<Keypair> = REST.find(ctx, &state.id).await?;
        Ok(k.map(|k| KeypairState::from_view(&k, known(&state.public_key))))
    }

    async fn update(
        &self,
        ctx: &Ctx<Client>,
        prior: KeypairState,
        plan: KeypairState,
    ) -> Result<KeypairState, Failed<KeypairState>> {
        let req = KeypairUpdate { description: plan.description.known().cloned() };
        let k: Keypair = REST.patch(ctx, &prior.id, &req).await?;
        Ok(KeypairState::from_view(&k, known(&plan.public_key)))
    }

    async fn delete(&self, ctx: &Ctx<Client>, state: KeypairState) -> Result<(), Diagnostics> {
        REST.delete(ctx, &state.id).await
    }

    async fn import(&self, ctx: &Ctx<Client>, id: &str) -> Result<KeypairState, Diagnostics> {
        let x: Keypair = REST.import(ctx, id).await?;
        Ok(KeypairState::from_view(&x, None))
    }
}
