//! What a provider author implements: [`Provider`], [`Resource`],
//! [`DataSource`] and [`EphemeralResource`].
//!
//! The required surface is small (schema + CRUD); import, state upgrade, plan
//! modification, config validation and timeouts are opt-in methods with
//! defaults. Every method gets a [`Ctx`] with the configured client, the
//! operation's deadline and the stop signal. State types are declared with
//! [`tf_object!`](crate::tf_object); fields that come from configuration should
//! be [`Value<T>`](crate::Value) because Terraform may not know them at plan time.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use tokio_util::sync::CancellationToken;

use crate::diag::{Diagnostic, Diagnostics};
use crate::path::AttrPath;
use crate::schema::Schema;
use crate::timeouts::Timeouts;
use crate::types::Type;
use crate::value::{FromTf, IntoTf, TfValue};

/// Per-call context.
pub struct Ctx<C> {
    client: Option<Arc<C>>,
    deadline: Option<Instant>,
    stop: CancellationToken,
}

impl<C> Ctx<C> {
    pub(crate) fn new(client: Option<Arc<C>>, deadline: Option<Instant>, stop: CancellationToken) -> Self {
        Self { client, deadline, stop }
    }
    /// The client built by `Provider::configure`.
    pub fn client(&self) -> Result<&C, Diagnostic> {
        self.client.as_deref().ok_or_else(|| {
            Diagnostic::error(
                "Provider not configured",
                "This operation needs the provider configuration, which Terraform has not sent yet. \
                 If the provider block depends on values only known after apply, apply those first.",
            )
        })
    }
    /// When the operation must be finished (from the resource's `timeouts`).
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }
    /// True once Terraform asked the provider to stop (Ctrl-C).
    pub fn stopping(&self) -> bool {
        self.stop.is_cancelled()
    }
    /// Completes when Terraform asks the provider to stop.
    pub async fn stopped(&self) {
        self.stop.cancelled().await
    }
}

/// A failed create or update. `partial` is the state of whatever was made
/// before the failure; Terraform stores it (tainted on create), so the object
/// is never orphaned and the next apply can resume or replace it.
#[derive(Debug)]
pub struct Failed<T> {
    pub diagnostics: Diagnostics,
    pub partial: Option<T>,
}

impl<T> Failed<T> {
    pub fn with_state(diagnostics: impl Into<Diagnostics>, partial: T) -> Self {
        Self { diagnostics: diagnostics.into(), partial: Some(partial) }
    }
    fn map<U>(self, f: impl FnOnce(T) -> U) -> Failed<U> {
        Failed { diagnostics: self.diagnostics, partial: self.partial.map(f) }
    }
}

impl<T> From<Diagnostic> for Failed<T> {
    fn from(d: Diagnostic) -> Self {
        Self { diagnostics: d.into(), partial: None }
    }
}

impl<T> From<Diagnostics> for Failed<T> {
    fn from(d: Diagnostics) -> Self {
        Self { diagnostics: d, partial: None }
    }
}

/// A plan being made, for `Resource::modify_plan`.
#[derive(Debug)]
pub struct PlanChange<T> {
    /// `None` when the resource is being created.
    pub prior: Option<T>,
    pub config: T,
    /// What will be planned; change it to adjust the plan.
    pub planned: T,
    /// Attributes whose change forces replacement.
    pub requires_replace: Vec<AttrPath>,
    pub diagnostics: Diagnostics,
}

/// Converts stored state written under an older schema version directly to
/// the current one.
pub struct StateUpgrader {
    pub from_version: i64,
    /// The object type of the schema at `from_version` (to decode the stored JSON).
    pub prior_type: Type,
    pub upgrade: Box<dyn Fn(TfValue) -> Result<TfValue, Diagnostics> + Send + Sync>,
}

pub trait Resource<C: Send + Sync + 'static>: Send + Sync + 'static {
    type State: FromTf + IntoTf + Clone + Send + Sync + 'static;

    /// Full type name, e.g. `tundra_node`.
    fn type_name(&self) -> &'static str;
    fn schema(&self) -> Schema;

    /// Creates the object. `plan` carries write-only attributes from the
    /// configuration; they are dropped from what is stored.
    fn create(
        &self,
        ctx: &Ctx<C>,
        plan: Self::State,
    ) -> impl Future<Output = Result<Self::State, Failed<Self::State>>> + Send;

    /// Refreshes from the real object; `Ok(None)` when it no longer exists.
    fn read(
        &self,
        ctx: &Ctx<C>,
        state: Self::State,
    ) -> impl Future<Output = Result<Option<Self::State>, Diagnostics>> + Send;

    fn update(
        &self,
        ctx: &Ctx<C>,
        prior: Self::State,
        plan: Self::State,
    ) -> impl Future<Output = Result<Self::State, Failed<Self::State>>> + Send;

    fn delete(&self, ctx: &Ctx<C>, state: Self::State) -> impl Future<Output = Result<(), Diagnostics>> + Send;

    /// Opt in to `terraform import` and `import {}` blocks.
    fn importable(&self) -> bool {
        false
    }

    /// The state of an existing object named by `id` (followed by a `read`).
    fn import(&self, _ctx: &Ctx<C>, id: &str) -> impl Future<Output = Result<Self::State, Diagnostics>> + Send {
        let d = Diagnostic::error(
            "Resource cannot be imported",
            format!(
                "{} does not support import; create it with terraform apply instead (id {id:?}).",
                self.type_name()
            ),
        );
        async move { Err(d.into()) }
    }

    /// Upgraders for state stored under older `Schema::version`s.
    fn state_upgraders(&self) -> Vec<StateUpgrader> {
        Vec::new()
    }

    /// Adjusts a plan after the framework applied defaults and attribute modifiers.
    fn modify_plan(&self, _ctx: &Ctx<C>, _change: &mut PlanChange<Self::State>) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// Checks the configuration as a whole (values may be unknown).
    fn validate_config(&self, _config: &Self::State, _diags: &mut Diagnostics) {}

    /// Opt in to a `timeouts` block with these defaults.
    fn timeouts(&self) -> Option<Timeouts> {
        None
    }
}

pub trait DataSource<C: Send + Sync + 'static>: Send + Sync + 'static {
    type State: FromTf + IntoTf + Send + 'static;
    fn type_name(&self) -> &'static str;
    fn schema(&self) -> Schema;
    /// Fills the computed attributes of `config`.
    fn read(&self, ctx: &Ctx<C>, config: Self::State) -> impl Future<Output = Result<Self::State, Diagnostics>> + Send;
    fn validate_config(&self, _config: &Self::State, _diags: &mut Diagnostics) {}
}

/// The result of opening an ephemeral resource.
#[derive(Debug)]
pub struct Opened<T> {
    pub result: T,
    /// When Terraform should call `renew` if it still needs the value.
    pub renew_at: Option<SystemTime>,
    /// Opaque data handed back to `renew` and `close`.
    pub private: Option<Vec<u8>>,
}

#[derive(Debug)]
pub struct Renewed {
    pub renew_at: Option<SystemTime>,
    pub private: Option<Vec<u8>>,
}

/// A value that exists only during one Terraform run and never reaches
/// state or plan files: tokens, kubeconfigs, join secrets.
pub trait EphemeralResource<C: Send + Sync + 'static>: Send + Sync + 'static {
    type State: FromTf + IntoTf + Send + 'static;
    fn type_name(&self) -> &'static str;
    fn schema(&self) -> Schema;
    fn open(
        &self,
        ctx: &Ctx<C>,
        config: Self::State,
    ) -> impl Future<Output = Result<Opened<Self::State>, Diagnostics>> + Send;
    fn renew(
        &self,
        _ctx: &Ctx<C>,
        private: Option<Vec<u8>>,
    ) -> impl Future<Output = Result<Renewed, Diagnostics>> + Send {
        async move { Ok(Renewed { renew_at: None, private }) }
    }
    fn close(&self, _ctx: &Ctx<C>, _private: Option<Vec<u8>>) -> impl Future<Output = Result<(), Diagnostics>> + Send {
        async { Ok(()) }
    }
    fn validate_config(&self, _config: &Self::State, _diags: &mut Diagnostics) {}
}

/// Information Terraform gives at configuration time.
#[derive(Debug, Clone)]
pub struct ConfigureInfo {
    pub terraform_version: String,
}

pub trait Provider: Send + Sync + 'static {
    /// What `configure` builds and every resource call gets through `Ctx::client`.
    type Client: Send + Sync + 'static;
    type Config: FromTf + Send + 'static;

    /// The provider's local name, the prefix of its type names (`tundra`).
    fn type_name(&self) -> &'static str;
    fn schema(&self) -> Schema;
    /// The client, with any warnings for the user (e.g. an old server).
    fn configure(
        &self,
        config: Self::Config,
        info: ConfigureInfo,
    ) -> impl Future<Output = Result<(Self::Client, Diagnostics), Diagnostics>> + Send;
    fn validate_config(&self, _config: &Self::Config, _diags: &mut Diagnostics) {}
    fn resources(&self) -> Vec<Box<dyn DynResource<Self::Client>>>;
    fn data_sources(&self) -> Vec<Box<dyn DynDataSource<Self::Client>>> {
        Vec::new()
    }
    fn ephemeral_resources(&self) -> Vec<Box<dyn DynEphemeral<Self::Client>>> {
        Vec::new()
    }
}

// ---- type erasure: what the server calls ------------------------------------

pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Boxes a resource for `Provider::resources`.
pub fn resource<C: Send + Sync + 'static, R: Resource<C>>(r: R) -> Box<dyn DynResource<C>> {
    Box::new(r)
}
/// Boxes a data source for `Provider::data_sources`.
pub fn data_source<C: Send + Sync + 'static, D: DataSource<C>>(d: D) -> Box<dyn DynDataSource<C>> {
    Box::new(d)
}
/// Boxes an ephemeral resource for `Provider::ephemeral_resources`.
pub fn ephemeral<C: Send + Sync + 'static, E: EphemeralResource<C>>(e: E) -> Box<dyn DynEphemeral<C>> {
    Box::new(e)
}

fn root() -> AttrPath {
    AttrPath::root()
}

fn decode<T: FromTf>(v: TfValue) -> Result<T, Diagnostics> {
    T::from_tf(v, &root()).map_err(Diagnostics::from)
}

#[doc(hidden)]
pub trait DynResource<C>: Send + Sync {
    fn type_name(&self) -> &'static str;
    fn user_schema(&self) -> Schema;
    fn timeouts(&self) -> Option<Timeouts>;
    fn importable(&self) -> bool;
    fn upgraders(&self) -> Vec<StateUpgrader>;
    fn validate(&self, config: TfValue, diags: &mut Diagnostics);
    fn create<'a>(&'a self, ctx: &'a Ctx<C>, plan: TfValue) -> BoxFut<'a, Result<TfValue, Failed<TfValue>>>;
    fn read<'a>(&'a self, ctx: &'a Ctx<C>, state: TfValue) -> BoxFut<'a, Result<Option<TfValue>, Diagnostics>>;
    fn update<'a>(
        &'a self,
        ctx: &'a Ctx<C>,
        prior: TfValue,
        plan: TfValue,
    ) -> BoxFut<'a, Result<TfValue, Failed<TfValue>>>;
    fn delete<'a>(&'a self, ctx: &'a Ctx<C>, state: TfValue) -> BoxFut<'a, Result<(), Diagnostics>>;
    fn import<'a>(&'a self, ctx: &'a Ctx<C>, id: &'a str) -> BoxFut<'a, Result<TfValue, Diagnostics>>;
    fn modify_plan<'a>(&'a self, ctx: &'a Ctx<C>, change: PlanChange<TfValue>) -> BoxFut<'a, PlanChange<TfValue>>;
}

impl<C: Send + Sync + 'static, R: Resource<C>> DynResource<C> for R {
    fn type_name(&self) -> &'static str {
        Resource::type_name(self)
    }
    fn user_schema(&self) -> Schema {
        Resource::schema(self)
    }
    fn timeouts(&self) -> Option<Timeouts> {
        Resource::timeouts(self)
    }
    fn importable(&self) -> bool {
        Resource::importable(self)
    }
    fn upgraders(&self) -> Vec<StateUpgrader> {
        self.state_upgraders()
    }
    fn validate(&self, config: TfValue, diags: &mut Diagnostics) {
        match R::State::from_tf(config, &root()) {
            Ok(c) => self.validate_config(&c, diags),
            Err(d) => diags.push(d),
        }
    }
    fn create<'a>(&'a self, ctx: &'a Ctx<C>, plan: TfValue) -> BoxFut<'a, Result<TfValue, Failed<TfValue>>> {
        Box::pin(async move {
            let plan: R::State = decode(plan)?;
            Resource::create(self, ctx, plan).await.map(IntoTf::into_tf).map_err(|f| f.map(IntoTf::into_tf))
        })
    }
    fn read<'a>(&'a self, ctx: &'a Ctx<C>, state: TfValue) -> BoxFut<'a, Result<Option<TfValue>, Diagnostics>> {
        Box::pin(async move {
            let state: R::State = decode(state)?;
            Ok(Resource::read(self, ctx, state).await?.map(IntoTf::into_tf))
        })
    }
    fn update<'a>(
        &'a self,
        ctx: &'a Ctx<C>,
        prior: TfValue,
        plan: TfValue,
    ) -> BoxFut<'a, Result<TfValue, Failed<TfValue>>> {
        Box::pin(async move {
            let prior: R::State = decode(prior)?;
            let plan: R::State = decode(plan)?;
            Resource::update(self, ctx, prior, plan).await.map(IntoTf::into_tf).map_err(|f| f.map(IntoTf::into_tf))
        })
    }
    fn delete<'a>(&'a self, ctx: &'a Ctx<C>, state: TfValue) -> BoxFut<'a, Result<(), Diagnostics>> {
        Box::pin(async move { Resource::delete(self, ctx, decode(state)?).await })
    }
    fn import<'a>(&'a self, ctx: &'a Ctx<C>, id: &'a str) -> BoxFut<'a, Result<TfValue, Diagnostics>> {
        Box::pin(async move { Resource::import(self, ctx, id).await.map(IntoTf::into_tf) })
    }
    fn modify_plan<'a>(&'a self, ctx: &'a Ctx<C>, change: PlanChange<TfValue>) -> BoxFut<'a, PlanChange<TfValue>> {
        Box::pin(async move {
            let typed = (|| -> Result<PlanChange<R::State>, Diagnostics> {
                Ok(PlanChange {
                    prior: change.prior.clone().map(decode).transpose()?,
                    config: decode(change.config.clone())?,
                    planned: decode(change.planned.clone())?,
                    requires_replace: change.requires_replace.clone(),
                    diagnostics: Diagnostics::new(),
                })
            })();
            let mut typed = match typed {
                Ok(t) => t,
                Err(d) => {
                    let mut change = change;
                    change.diagnostics.extend(d);
                    return change;
                }
            };
            let before = typed.planned.clone().into_tf();
            Resource::modify_plan(self, ctx, &mut typed).await;
            let after = typed.planned.into_tf();
            let mut diagnostics = change.diagnostics;
            diagnostics.extend(typed.diagnostics);
            PlanChange {
                prior: change.prior,
                config: change.config,
                // Typed values may be less precise than the plan (partially
                // unknown collections); keep the plan unless the hook changed it.
                planned: if after == before { change.planned } else { after },
                requires_replace: typed.requires_replace,
                diagnostics,
            }
        })
    }
}

#[doc(hidden)]
pub trait DynDataSource<C>: Send + Sync {
    fn type_name(&self) -> &'static str;
    fn schema(&self) -> Schema;
    fn validate(&self, config: TfValue, diags: &mut Diagnostics);
    fn read<'a>(&'a self, ctx: &'a Ctx<C>, config: TfValue) -> BoxFut<'a, Result<TfValue, Diagnostics>>;
}

impl<C: Send + Sync + 'static, D: DataSource<C>> DynDataSource<C> for D {
    fn type_name(&self) -> &'static str {
        DataSource::type_name(self)
    }
    fn schema(&self) -> Schema {
        DataSource::schema(self)
    }
    fn validate(&self, config: TfValue, diags: &mut Diagnostics) {
        match D::State::from_tf(config, &root()) {
            Ok(c) => self.validate_config(&c, diags),
            Err(d) => diags.push(d),
        }
    }
    fn read<'a>(&'a self, ctx: &'a Ctx<C>, config: TfValue) -> BoxFut<'a, Result<TfValue, Diagnostics>> {
        Box::pin(async move { Ok(DataSource::read(self, ctx, decode(config)?).await?.into_tf()) })
    }
}

#[doc(hidden)]
pub trait DynEphemeral<C>: Send + Sync {
    fn type_name(&self) -> &'static str;
    fn schema(&self) -> Schema;
    fn validate(&self, config: TfValue, diags: &mut Diagnostics);
    fn open<'a>(&'a self, ctx: &'a Ctx<C>, config: TfValue) -> BoxFut<'a, Result<Opened<TfValue>, Diagnostics>>;
    fn renew<'a>(&'a self, ctx: &'a Ctx<C>, private: Option<Vec<u8>>) -> BoxFut<'a, Result<Renewed, Diagnostics>>;
    fn close<'a>(&'a self, ctx: &'a Ctx<C>, private: Option<Vec<u8>>) -> BoxFut<'a, Result<(), Diagnostics>>;
}

impl<C: Send + Sync + 'static, E: EphemeralResource<C>> DynEphemeral<C> for E {
    fn type_name(&self) -> &'static str {
        EphemeralResource::type_name(self)
    }
    fn schema(&self) -> Schema {
        EphemeralResource::schema(self)
    }
    fn validate(&self, config: TfValue, diags: &mut Diagnostics) {
        match E::State::from_tf(config, &root()) {
            Ok(c) => self.validate_config(&c, diags),
            Err(d) => diags.push(d),
        }
    }
    fn open<'a>(&'a self, ctx: &'a Ctx<C>, config: TfValue) -> BoxFut<'a, Result<Opened<TfValue>, Diagnostics>> {
        Box::pin(async move {
            let o = EphemeralResource::open(self, ctx, decode(config)?).await?;
            Ok(Opened { result: o.result.into_tf(), renew_at: o.renew_at, private: o.private })
        })
    }
    fn renew<'a>(&'a self, ctx: &'a Ctx<C>, private: Option<Vec<u8>>) -> BoxFut<'a, Result<Renewed, Diagnostics>> {
        Box::pin(EphemeralResource::renew(self, ctx, private))
    }
    fn close<'a>(&'a self, ctx: &'a Ctx<C>, private: Option<Vec<u8>>) -> BoxFut<'a, Result<(), Diagnostics>> {
        Box::pin(EphemeralResource::close(self, ctx, private))
    }
}
