//! Resources: one file per noun. Each maps its Terraform state to the
//! `tundra_api` request and view types and back; all HTTP is in `client`.

pub mod appliance;
pub mod cluster;
pub mod flavor;
pub mod image;
pub mod keypair;
pub mod machine;
pub mod network;
pub mod node;
pub mod physical_network;
pub mod port;
pub mod project;
pub mod share;
pub mod subnet;
pub mod switch;

use tfplugin::schema::Attribute;
use tfplugin::{Ctx, Diagnostic, Diagnostics, Value, modifiers};

use crate::client::{Client, Diag, Noun};

/// `id`: assigned by tundrad, stable for the object's life.
pub fn id_attr(noun: &str) -> Attribute {
    Attribute::string("id")
        .computed()
        .modifier(modifiers::use_state_for_unknown())
        .description(&format!("ID of the {noun} (a UUID), assigned by tundrad."))
}

/// `created_at`: set once.
pub fn created_at_attr() -> Attribute {
    Attribute::string("created_at")
        .computed()
        .modifier(modifiers::use_state_for_unknown())
        .description("When the object was created (RFC 3339, UTC).")
}

/// `description`: free text, empty by default.
pub fn description_attr() -> Attribute {
    Attribute::string("description")
        .optional()
        .computed()
        .default(tfplugin::TfValue::string(""))
        .description("Free text.")
}

/// Names as tundrad accepts them.
pub fn name_validator() -> std::sync::Arc<dyn tfplugin::validators::Validator> {
    tfplugin::validators::regex(
        "^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$",
        "1–63 letters, digits, '.', '_' or '-', starting with a letter or digit",
    )
}

/// The known string in a value, or `None`.
pub fn known(v: &Value<String>) -> Option<&str> {
    v.known().map(String::as_str)
}

/// A known number as a `u32` (out-of-range values clamp; tundrad then
/// refuses them with the attribute named).
pub fn uint(v: &Value<i64>) -> Option<u32> {
    v.known().map(|n| (*n).clamp(0, u32::MAX as i64) as u32)
}

/// The ID in state (empty when absent, which the service answers with 404).
pub fn state_id(v: &Value<String>) -> String {
    v.known().cloned().unwrap_or_default()
}

/// A public object's `project_id` is null in state; "use state for unknown"
/// does not carry nulls, so without this every update would plan the
/// project as unknown and force a replacement. An unset `project_id` keeps
/// whatever project the object was created in.
pub fn keep_project<T>(
    change: &mut tfplugin::PlanChange<T>,
    field: impl Fn(&mut T) -> &mut Value<String>,
    config_null: bool,
) where
    T: Clone,
{
    let Some(mut prior) = change.prior.clone() else { return };
    if config_null && field(&mut change.planned).is_unknown() {
        *field(&mut change.planned) = field(&mut prior).clone();
        let p = tfplugin::AttrPath::attr_root("project_id");
        change.requires_replace.retain(|r| *r != p);
    }
}

/// The noun behind a resource: the create, read, update, delete and
/// import calls every resource makes the same way, with failures as
/// diagnostics at the attribute the service blamed.
pub struct Rest<V: 'static> {
    pub noun: &'static Noun<V>,
    /// The service's JSON pointers and the attributes they name.
    pub fields: &'static [(&'static str, &'static str)],
}

impl<V: serde::de::DeserializeOwned> Rest<V> {
    pub async fn create(&self, c: &Client, body: &impl serde::Serialize) -> Result<V, Diagnostics> {
        let what = format!("Could not create {}", self.noun.name);
        Ok(c.create(self.noun, body).await.map_err(|e| e.diag_at(&what, self.fields))?)
    }

    /// The object, or `None` once it is gone.
    pub async fn find(&self, ctx: &Ctx<Client>, id: &Value<String>) -> Result<Option<V>, Diagnostics> {
        let what = format!("Could not read {}", self.noun.name);
        Ok(ctx.client()?.find(self.noun, &state_id(id)).await.map_err(|e| e.diag(&what))?)
    }

    pub async fn patch(
        &self,
        ctx: &Ctx<Client>,
        id: &Value<String>,
        body: &impl serde::Serialize,
    ) -> Result<V, Diagnostics> {
        let what = format!("Could not update {}", self.noun.name);
        Ok(ctx.client()?.update(self.noun, &state_id(id), body).await.map_err(|e| e.diag_at(&what, self.fields))?)
    }

    pub async fn delete(&self, ctx: &Ctx<Client>, id: &Value<String>) -> Result<(), Diagnostics> {
        let what = format!("Could not delete {}", self.noun.name);
        Ok(ctx.client()?.delete(self.noun, &state_id(id)).await.map_err(|e| e.diag(&what))?)
    }

    pub async fn import(&self, ctx: &Ctx<Client>, id: &str) -> Result<V, Diagnostics> {
        let what = format!("Cannot import {} {id:?}", self.noun.name);
        Ok(ctx.client()?.get(self.noun, id).await.map_err(|e| e.diag(&what))?)
    }
}

/// Whether the operation's deadline is two seconds away (or Terraform is
/// stopping): time to return what is there, with a diagnostic.
pub fn near_deadline(ctx: &Ctx<Client>) -> bool {
    ctx.deadline().is_some_and(|d| std::time::Instant::now() + std::time::Duration::from_secs(2) >= d) || ctx.stopping()
}

/// Poll `path` until it is gone.
pub async fn wait_gone<T: serde::de::DeserializeOwned>(
    ctx: &Ctx<Client>,
    noun: &Noun<T>,
    id: &str,
    what: &str,
) -> Result<(), Diagnostics> {
    let c = ctx.client()?;
    loop {
        let x: Option<T> = c.find(noun, id).await.map_err(|e| e.diag(&format!("Could not read the {what}")))?;
        if x.is_none() {
            return Ok(());
        }
        if near_deadline(ctx) {
            return Err(Diagnostic::error(
                format!("The {what} is still being deleted"),
                format!("{what} {id} is not gone yet; destroy again later, or raise timeouts.delete."),
            )
            .into());
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

/// Poll the object `id` (first seen as `first`) until `judge` settles it:
/// `Some(Ok(()))` done, `Some(Err(d))` failed (the object stays in state,
/// with `d`), `None` still working — past the deadline, `waiting` says how
/// it stands.
pub async fn wait_judged<V: serde::de::DeserializeOwned, S>(
    ctx: &Ctx<Client>,
    noun: &Noun<V>,
    id: &str,
    first: V,
    judge: impl Fn(&V) -> Option<Result<(), Diagnostic>>,
    waiting: impl Fn(&V) -> Diagnostic,
    state: impl Fn(&V) -> S,
) -> Result<S, tfplugin::Failed<S>> {
    let c = ctx.client()?;
    let mut x = first;
    loop {
        match judge(&x) {
            Some(Ok(())) => return Ok(state(&x)),
            Some(Err(d)) => return Err(tfplugin::Failed::with_state(d, state(&x))),
            None => {}
        }
        if near_deadline(ctx) {
            return Err(tfplugin::Failed::with_state(waiting(&x), state(&x)));
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        x = match c.get(noun, id).await {
            Ok(v) => v,
            Err(e) => {
                return Err(tfplugin::Failed::with_state(
                    e.diag(&format!("Could not read the {}", noun.name)),
                    state(&x),
                ));
            }
        };
    }
}
