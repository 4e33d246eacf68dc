//! The tfplugin6 `Provider` gRPC service: decodes each request against the
//! right schema, calls the provider's resources, and encodes the answer.
//!
//! Terraform calls RPCs concurrently (parallelism 10 by default) and may start
//! a process with any RPC (the schema is cached by core), so everything here is
//! shared, immutable after start, or behind a lock.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::diag::{Diagnostic, Diagnostics};
use crate::json;
use crate::path::AttrPath;
use crate::plan;
use crate::proto::tfplugin6 as pb;
use crate::resource::{ConfigureInfo, Ctx, DynDataSource, DynEphemeral, DynResource, PlanChange, Provider};
use crate::schema::Schema;
use crate::timeouts::{Op, Timeouts};
use crate::types::Type;
use crate::value::{FromTf, TfValue};
use crate::wire;

/// Extra time past an operation's deadline before the framework gives up on
/// it, so a resource that watches `Ctx::deadline` can return partial state.
const DEADLINE_GRACE: Duration = Duration::from_secs(2);

struct ResourceEntry<C> {
    imp: Box<dyn DynResource<C>>,
    /// User schema plus the `timeouts` block when the resource opted in.
    schema: Schema,
    ty: Type,
    timeouts: Option<Timeouts>,
}

type Registry<T> = HashMap<&'static str, Entry<Box<T>>>;
type DataEntry<C> = Entry<Box<dyn DynDataSource<C>>>;
type EphemeralEntry<C> = Entry<Box<dyn DynEphemeral<C>>>;

struct Entry<T> {
    imp: T,
    schema: Schema,
    ty: Type,
}

pub(crate) struct Server<P: Provider> {
    provider: P,
    provider_schema: Schema,
    provider_ty: Type,
    resources: HashMap<&'static str, ResourceEntry<P::Client>>,
    data_sources: Registry<dyn DynDataSource<P::Client>>,
    ephemerals: Registry<dyn DynEphemeral<P::Client>>,
    schema_response: pb::get_provider_schema::Response,
    client: RwLock<Option<Arc<P::Client>>>,
    stop: CancellationToken,
}

/// Collects every schema a provider declares, with the framework's additions.
pub(crate) struct Schemas {
    pub provider: Schema,
    pub resources: Vec<(&'static str, Schema)>,
    pub data_sources: Vec<(&'static str, Schema)>,
    pub ephemerals: Vec<(&'static str, Schema)>,
}

fn full_schema<C>(r: &dyn DynResource<C>) -> Schema {
    let mut s = r.user_schema();
    if let Some(t) = r.timeouts() {
        s.block.blocks.push(t.block());
    }
    s
}

impl<P: Provider> Server<P> {
    pub(crate) fn new(provider: P) -> Self {
        let provider_schema = provider.schema();
        let mut resources = HashMap::new();
        for imp in provider.resources() {
            let schema = full_schema(imp.as_ref());
            check(imp.type_name(), &schema);
            let ty = schema.object_type();
            let timeouts = imp.timeouts();
            resources.insert(imp.type_name(), ResourceEntry { imp, schema, ty, timeouts });
        }
        let mut data_sources = HashMap::new();
        for imp in provider.data_sources() {
            let schema = imp.schema();
            check(imp.type_name(), &schema);
            data_sources.insert(imp.type_name(), Entry { ty: schema.object_type(), schema, imp });
        }
        let mut ephemerals = HashMap::new();
        for imp in provider.ephemeral_resources() {
            let schema = imp.schema();
            check(imp.type_name(), &schema);
            ephemerals.insert(imp.type_name(), Entry { ty: schema.object_type(), schema, imp });
        }
        check(provider.type_name(), &provider_schema);
        let schema_response = pb::get_provider_schema::Response {
            provider: Some(wire::schema(&provider_schema)),
            resource_schemas: resources.iter().map(|(k, e)| (k.to_string(), wire::schema(&e.schema))).collect(),
            data_source_schemas: data_sources.iter().map(|(k, e)| (k.to_string(), wire::schema(&e.schema))).collect(),
            ephemeral_resource_schemas: ephemerals
                .iter()
                .map(|(k, e)| (k.to_string(), wire::schema(&e.schema)))
                .collect(),
            diagnostics: Vec::new(),
            provider_meta: None,
            server_capabilities: Some(capabilities()),
            functions: HashMap::new(),
        };
        Self {
            provider_ty: provider_schema.object_type(),
            provider_schema,
            provider,
            resources,
            data_sources,
            ephemerals,
            schema_response,
            client: RwLock::new(None),
            stop: CancellationToken::new(),
        }
    }

    pub(crate) fn schemas(&self) -> Schemas {
        let mut resources: Vec<_> = self.resources.iter().map(|(k, e)| (*k, e.schema.clone())).collect();
        let mut data_sources: Vec<_> = self.data_sources.iter().map(|(k, e)| (*k, e.schema.clone())).collect();
        let mut ephemerals: Vec<_> = self.ephemerals.iter().map(|(k, e)| (*k, e.schema.clone())).collect();
        resources.sort_by_key(|(k, _)| *k);
        data_sources.sort_by_key(|(k, _)| *k);
        ephemerals.sort_by_key(|(k, _)| *k);
        Schemas { provider: self.provider_schema.clone(), resources, data_sources, ephemerals }
    }

    pub(crate) fn provider_name(&self) -> &'static str {
        self.provider.type_name()
    }

    pub(crate) fn importable(&self, type_name: &str) -> bool {
        self.resources.get(type_name).is_some_and(|e| e.imp.importable())
    }

    pub(crate) fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    fn ctx(&self, deadline: Option<Instant>) -> Ctx<P::Client> {
        Ctx::new(self.client.read().expect("client lock").clone(), deadline, self.stop.clone())
    }

    fn resource(&self, name: &str) -> Result<&ResourceEntry<P::Client>, Diagnostic> {
        self.resources.get(name).ok_or_else(|| unknown_type("resource", name))
    }

    fn data_source(&self, name: &str) -> Result<&DataEntry<P::Client>, Diagnostic> {
        self.data_sources.get(name).ok_or_else(|| unknown_type("data source", name))
    }

    fn ephemeral(&self, name: &str) -> Result<&EphemeralEntry<P::Client>, Diagnostic> {
        self.ephemerals.get(name).ok_or_else(|| unknown_type("ephemeral resource", name))
    }
}

fn check(name: &str, s: &Schema) {
    if let Err(e) = s.check() {
        panic!("schema of {name} is invalid: {e}");
    }
}

fn capabilities() -> pb::ServerCapabilities {
    pb::ServerCapabilities {
        plan_destroy: true,
        get_provider_schema_optional: true,
        move_resource_state: false,
        generate_resource_config: false,
    }
}

fn unknown_type(kind: &str, name: &str) -> Diagnostic {
    Diagnostic::error(
        format!("Unknown {kind} type"),
        format!("This provider has no {kind} type {name:?}. Check the spelling, or upgrade the provider."),
    )
}

/// Runs `fut` against an optional deadline (plus grace).
async fn with_deadline<T>(deadline: Option<Instant>, op: &str, fut: impl Future<Output = T>) -> Result<T, Diagnostic> {
    match deadline {
        None => Ok(fut.await),
        Some(d) => tokio::time::timeout_at((d + DEADLINE_GRACE).into(), fut).await.map_err(|_| {
            Diagnostic::error(
                format!("Timed out during {op}"),
                format!("The {op} did not finish within its timeout. Raise timeouts.{op} in the resource, or check the service."),
            )
        }),
    }
}

fn dv(v: &TfValue, ty: &Type, diags: &mut Diagnostics) -> Option<pb::DynamicValue> {
    match wire::encode(v, ty) {
        Ok(d) => Some(d),
        Err(e) => {
            diags.push(e);
            None
        }
    }
}

macro_rules! try_diag {
    ($e:expr, $diags:ident, $resp:expr) => {
        match $e {
            Ok(v) => v,
            Err(d) => {
                $diags.extend(Diagnostics::from(d));
                return Ok(Response::new($resp($diags)));
            }
        }
    };
}

/// Conforms a provider-produced value to the schema and restores `timeouts`.
fn finish(e: &ResourceEntry<impl Sized>, v: TfValue, timeouts: Option<&TfValue>) -> Result<TfValue, Diagnostic> {
    let mut v = v.conform(&e.ty, &AttrPath::root())?;
    if let (Some(t), Some(slot)) = (timeouts, v.get_mut(crate::timeouts::BLOCK)) {
        *slot = t.clone();
    }
    Ok(plan::without_write_only(&e.schema.block, v))
}

#[tonic::async_trait]
impl<P: Provider> pb::provider_server::Provider for Arc<Server<P>> {
    async fn get_metadata(
        &self,
        _: Request<pb::get_metadata::Request>,
    ) -> Result<Response<pb::get_metadata::Response>, Status> {
        use pb::get_metadata::{DataSourceMetadata, EphemeralMetadata, ResourceMetadata};
        Ok(Response::new(pb::get_metadata::Response {
            server_capabilities: Some(capabilities()),
            diagnostics: Vec::new(),
            resources: self.resources.keys().map(|k| ResourceMetadata { type_name: k.to_string() }).collect(),
            data_sources: self.data_sources.keys().map(|k| DataSourceMetadata { type_name: k.to_string() }).collect(),
            ephemeral_resources: self
                .ephemerals
                .keys()
                .map(|k| EphemeralMetadata { type_name: k.to_string() })
                .collect(),
        }))
    }

    async fn get_provider_schema(
        &self,
        _: Request<pb::get_provider_schema::Request>,
    ) -> Result<Response<pb::get_provider_schema::Response>, Status> {
        Ok(Response::new(self.schema_response.clone()))
    }

    async fn get_resource_identity_schemas(
        &self,
        _: Request<pb::get_resource_identity_schemas::Request>,
    ) -> Result<Response<pb::get_resource_identity_schemas::Response>, Status> {
        Ok(Response::new(pb::get_resource_identity_schemas::Response::default()))
    }

    async fn get_functions(
        &self,
        _: Request<pb::get_functions::Request>,
    ) -> Result<Response<pb::get_functions::Response>, Status> {
        Ok(Response::new(pb::get_functions::Response::default()))
    }

    async fn validate_provider_config(
        &self,
        req: Request<pb::validate_provider_config::Request>,
    ) -> Result<Response<pb::validate_provider_config::Response>, Status> {
        let req = req.into_inner();
        let mut diags = Diagnostics::new();
        let resp = |d| pb::validate_provider_config::Response { diagnostics: wire::diagnostics(d) };
        let config = try_diag!(wire::decode(req.config.as_ref(), &self.provider_ty), diags, resp);
        diags.extend(plan::validate(&self.provider_schema.block, &config, true));
        let typed = try_diag!(P::Config::from_tf(config, &AttrPath::root()), diags, resp);
        self.provider.validate_config(&typed, &mut diags);
        Ok(Response::new(resp(diags)))
    }

    async fn configure_provider(
        &self,
        req: Request<pb::configure_provider::Request>,
    ) -> Result<Response<pb::configure_provider::Response>, Status> {
        let req = req.into_inner();
        let mut diags = Diagnostics::new();
        let resp = |d| pb::configure_provider::Response { diagnostics: wire::diagnostics(d) };
        let config = try_diag!(wire::decode(req.config.as_ref(), &self.provider_ty), diags, resp);
        let typed = try_diag!(P::Config::from_tf(config, &AttrPath::root()), diags, resp);
        let info = ConfigureInfo { terraform_version: req.terraform_version };
        match self.provider.configure(typed, info).await {
            Ok((client, warnings)) => {
                *self.client.write().expect("client lock") = Some(Arc::new(client));
                diags.extend(warnings);
            }
            Err(d) => diags.extend(d),
        }
        Ok(Response::new(resp(diags)))
    }

    async fn validate_resource_config(
        &self,
        req: Request<pb::validate_resource_config::Request>,
    ) -> Result<Response<pb::validate_resource_config::Response>, Status> {
        let req = req.into_inner();
        let mut diags = Diagnostics::new();
        let resp = |d| pb::validate_resource_config::Response { diagnostics: wire::diagnostics(d) };
        let e = try_diag!(self.resource(&req.type_name), diags, resp);
        let config = try_diag!(wire::decode(req.config.as_ref(), &e.ty), diags, resp);
        let wo_ok = req.client_capabilities.is_some_and(|c| c.write_only_attributes_allowed);
        diags.extend(plan::validate(&e.schema.block, &config, wo_ok));
        e.imp.validate(config, &mut diags);
        Ok(Response::new(resp(diags)))
    }

    async fn validate_data_resource_config(
        &self,
        req: Request<pb::validate_data_resource_config::Request>,
    ) -> Result<Response<pb::validate_data_resource_config::Response>, Status> {
        let req = req.into_inner();
        let mut diags = Diagnostics::new();
        let resp = |d| pb::validate_data_resource_config::Response { diagnostics: wire::diagnostics(d) };
        let e = try_diag!(self.data_source(&req.type_name), diags, resp);
        let config = try_diag!(wire::decode(req.config.as_ref(), &e.ty), diags, resp);
        diags.extend(plan::validate(&e.schema.block, &config, true));
        e.imp.validate(config, &mut diags);
        Ok(Response::new(resp(diags)))
    }

    async fn upgrade_resource_state(
        &self,
        req: Request<pb::upgrade_resource_state::Request>,
    ) -> Result<Response<pb::upgrade_resource_state::Response>, Status> {
        let req = req.into_inner();
        let mut diags = Diagnostics::new();
        let resp = |d| pb::upgrade_resource_state::Response { upgraded_state: None, diagnostics: wire::diagnostics(d) };
        let e = try_diag!(self.resource(&req.type_name), diags, resp);
        let raw = req.raw_state.map(|r| r.json).unwrap_or_default();
        if raw.is_empty() {
            diags.error(
                "State in an unsupported format",
                "This resource's state is in the pre-0.12 flatmap format; remove it from state and import it again.",
            );
            return Ok(Response::new(resp(diags)));
        }
        let current = e.schema.version;
        let upgraded = if req.version == current {
            json::decode(&raw, &e.ty).map_err(|err| {
                Diagnostic::error(
                    "Stored state does not match the schema",
                    format!("{err}. Remove the resource from state and import it again."),
                )
            })
        } else if req.version > current {
            Err(Diagnostic::error(
                "State written by a newer provider",
                format!(
                    "{} state has schema version {} but this provider knows only up to {current}. Upgrade the provider.",
                    req.type_name, req.version
                ),
            ))
        } else {
            let ups = e.imp.upgraders();
            match ups.into_iter().find(|u| u.from_version == req.version) {
                None => Err(Diagnostic::error(
                    "No state upgrade path",
                    format!(
                        "{} cannot upgrade state from schema version {}; use an intermediate provider release.",
                        req.type_name, req.version
                    ),
                )),
                Some(u) => json::decode(&raw, &u.prior_type)
                    .map_err(|err| Diagnostic::error("Stored state does not match its schema version", err.to_string()))
                    .and_then(|old| {
                        (u.upgrade)(old).map_err(|d| {
                            d.0.into_iter().next().unwrap_or_else(|| Diagnostic::error("State upgrade failed", ""))
                        })
                    })
                    .and_then(|new| {
                        // Carry `timeouts` across: upgraders need not know about it.
                        let t = e.schema.block.blocks.iter().find(|b| b.type_name == crate::timeouts::BLOCK).and_then(
                            |b| {
                                let only = Type::object([(crate::timeouts::BLOCK, b.value_type())]);
                                json::decode(&raw, &only).ok()?.get(crate::timeouts::BLOCK).cloned()
                            },
                        );
                        finish(e, new, t.as_ref())
                    }),
            }
        };
        let upgraded = try_diag!(upgraded, diags, resp);
        let upgraded_state = dv(&upgraded, &e.ty, &mut diags);
        Ok(Response::new(pb::upgrade_resource_state::Response {
            upgraded_state,
            diagnostics: wire::diagnostics(diags),
        }))
    }

    async fn read_resource(
        &self,
        req: Request<pb::read_resource::Request>,
    ) -> Result<Response<pb::read_resource::Response>, Status> {
        let req = req.into_inner();
        let mut diags = Diagnostics::new();
        let private = req.private.clone();
        let resp = |d| pb::read_resource::Response {
            new_state: req.current_state.clone(),
            diagnostics: wire::diagnostics(d),
            private: private.clone(),
            deferred: None,
            new_identity: None,
        };
        let e = try_diag!(self.resource(&req.type_name), diags, resp);
        let state = try_diag!(wire::decode(req.current_state.as_ref(), &e.ty), diags, resp);
        if state.is_null() {
            return Ok(Response::new(resp(diags)));
        }
        let timeouts = plan::timeouts_of(&state, &e.schema.block.blocks);
        let ctx = self.ctx(None);
        let read = try_diag!(e.imp.read(&ctx, state).await, diags, resp);
        let new_state = match read {
            None => TfValue::Null,
            Some(v) => try_diag!(finish(e, v, timeouts.as_ref()), diags, resp),
        };
        diags.extend(plan::check_known(&e.schema.block, &new_state, &req.type_name));
        let new_state = dv(&new_state, &e.ty, &mut diags);
        Ok(Response::new(pb::read_resource::Response {
            new_state,
            diagnostics: wire::diagnostics(diags),
            private: req.private,
            deferred: None,
            new_identity: None,
        }))
    }

    async fn plan_resource_change(
        &self,
        req: Request<pb::plan_resource_change::Request>,
    ) -> Result<Response<pb::plan_resource_change::Response>, Status> {
        let req = req.into_inner();
        let mut diags = Diagnostics::new();
        let resp = |d| pb::plan_resource_change::Response { diagnostics: wire::diagnostics(d), ..Default::default() };
        let e = try_diag!(self.resource(&req.type_name), diags, resp);
        let prior = try_diag!(wire::decode(req.prior_state.as_ref(), &e.ty), diags, resp);
        let proposed = try_diag!(wire::decode(req.proposed_new_state.as_ref(), &e.ty), diags, resp);
        let config = try_diag!(wire::decode(req.config.as_ref(), &e.ty), diags, resp);
        if proposed.is_null() {
            // Destroy: nothing to plan.
            return Ok(Response::new(pb::plan_resource_change::Response {
                planned_state: req.proposed_new_state,
                planned_private: req.prior_private,
                ..Default::default()
            }));
        }
        let planned = plan::plan(&e.schema.block, &prior, proposed, &config);
        diags.extend(planned.diagnostics);
        let change = PlanChange {
            prior: (!prior.is_null()).then_some(prior),
            config,
            planned: planned.planned,
            requires_replace: planned.requires_replace,
            diagnostics: Diagnostics::new(),
        };
        let ctx = self.ctx(None);
        let change = e.imp.modify_plan(&ctx, change).await;
        diags.extend(change.diagnostics);
        let timeouts = plan::timeouts_of(&change.config, &e.schema.block.blocks);
        let planned = try_diag!(finish(e, change.planned, timeouts.as_ref()), diags, resp);
        let planned_state = dv(&planned, &e.ty, &mut diags);
        Ok(Response::new(pb::plan_resource_change::Response {
            planned_state,
            requires_replace: change.requires_replace.into_iter().map(wire::path).collect(),
            planned_private: req.prior_private,
            diagnostics: wire::diagnostics(diags),
            deferred: None,
            planned_identity: None,
        }))
    }

    async fn apply_resource_change(
        &self,
        req: Request<pb::apply_resource_change::Request>,
    ) -> Result<Response<pb::apply_resource_change::Response>, Status> {
        let req = req.into_inner();
        let mut diags = Diagnostics::new();
        let prior_dv = req.prior_state.clone();
        let resp = |d| pb::apply_resource_change::Response {
            new_state: prior_dv.clone(),
            diagnostics: wire::diagnostics(d),
            ..Default::default()
        };
        let e = try_diag!(self.resource(&req.type_name), diags, resp);
        let prior = try_diag!(wire::decode(req.prior_state.as_ref(), &e.ty), diags, resp);
        let planned = try_diag!(wire::decode(req.planned_state.as_ref(), &e.ty), diags, resp);
        let config = try_diag!(wire::decode(req.config.as_ref(), &e.ty), diags, resp);

        let op = if planned.is_null() {
            Op::Delete
        } else if prior.is_null() {
            Op::Create
        } else {
            Op::Update
        };
        let basis = if op == Op::Delete { &prior } else { &planned };
        let deadline = e.timeouts.and_then(|t| t.resolve(op, basis)).map(|d| Instant::now() + d);
        let ctx = self.ctx(deadline);
        let timeouts = plan::timeouts_of(basis, &e.schema.block.blocks);

        let new_state = match op {
            Op::Delete => {
                let r = with_deadline(deadline, op.name(), e.imp.delete(&ctx, prior.clone())).await;
                match r {
                    Ok(Ok(())) => TfValue::Null,
                    Ok(Err(d)) => {
                        diags.extend(d);
                        prior
                    }
                    Err(d) => {
                        diags.push(d);
                        prior
                    }
                }
            }
            Op::Create | Op::Update => {
                let input = plan::with_write_only(&e.schema.block, planned.clone(), &config);
                let fut = async {
                    if op == Op::Create {
                        e.imp.create(&ctx, input).await
                    } else {
                        e.imp.update(&ctx, prior.clone(), input).await
                    }
                };
                let fallback = if op == Op::Create { TfValue::Null } else { prior.clone() };
                let produced = match with_deadline(deadline, op.name(), fut).await {
                    Ok(Ok(v)) => Some(v),
                    Ok(Err(failed)) => {
                        diags.extend(failed.diagnostics);
                        failed.partial
                    }
                    Err(d) => {
                        diags.push(d);
                        None
                    }
                };
                match produced {
                    Some(v) => match finish(e, v, timeouts.as_ref()) {
                        Ok(v) => {
                            let unknown = plan::check_known(&e.schema.block, &v, &req.type_name);
                            if unknown.has_errors() {
                                diags.extend(unknown);
                                fallback
                            } else {
                                v
                            }
                        }
                        Err(d) => {
                            diags.push(d);
                            fallback
                        }
                    },
                    None => fallback,
                }
            }
        };
        let new_state = dv(&new_state, &e.ty, &mut diags);
        Ok(Response::new(pb::apply_resource_change::Response {
            new_state,
            private: req.planned_private,
            diagnostics: wire::diagnostics(diags),
            new_identity: None,
        }))
    }

    async fn import_resource_state(
        &self,
        req: Request<pb::import_resource_state::Request>,
    ) -> Result<Response<pb::import_resource_state::Response>, Status> {
        let req = req.into_inner();
        let mut diags = Diagnostics::new();
        let resp = |d| pb::import_resource_state::Response { diagnostics: wire::diagnostics(d), ..Default::default() };
        let e = try_diag!(self.resource(&req.type_name), diags, resp);
        if !e.imp.importable() {
            diags.error(
                "Resource cannot be imported",
                format!("{} does not support import; declare it and run terraform apply instead.", req.type_name),
            );
            return Ok(Response::new(resp(diags)));
        }
        let ctx = self.ctx(None);
        let state = try_diag!(e.imp.import(&ctx, &req.id).await, diags, resp);
        let state = try_diag!(finish(e, state, None), diags, resp);
        let state = dv(&state, &e.ty, &mut diags);
        Ok(Response::new(pb::import_resource_state::Response {
            imported_resources: vec![pb::import_resource_state::ImportedResource {
                type_name: req.type_name,
                state,
                private: Vec::new(),
                identity: None,
            }],
            diagnostics: wire::diagnostics(diags),
            deferred: None,
        }))
    }

    async fn read_data_source(
        &self,
        req: Request<pb::read_data_source::Request>,
    ) -> Result<Response<pb::read_data_source::Response>, Status> {
        let req = req.into_inner();
        let mut diags = Diagnostics::new();
        let resp = |d| pb::read_data_source::Response { diagnostics: wire::diagnostics(d), ..Default::default() };
        let e = try_diag!(self.data_source(&req.type_name), diags, resp);
        let config = try_diag!(wire::decode(req.config.as_ref(), &e.ty), diags, resp);
        let ctx = self.ctx(None);
        let state = try_diag!(e.imp.read(&ctx, config).await, diags, resp);
        let state = try_diag!(state.conform(&e.ty, &AttrPath::root()), diags, resp);
        diags.extend(plan::check_known(&e.schema.block, &state, &req.type_name));
        let state = dv(&state, &e.ty, &mut diags);
        Ok(Response::new(pb::read_data_source::Response {
            state,
            diagnostics: wire::diagnostics(diags),
            deferred: None,
        }))
    }

    async fn validate_ephemeral_resource_config(
        &self,
        req: Request<pb::validate_ephemeral_resource_config::Request>,
    ) -> Result<Response<pb::validate_ephemeral_resource_config::Response>, Status> {
        let req = req.into_inner();
        let mut diags = Diagnostics::new();
        let resp = |d| pb::validate_ephemeral_resource_config::Response { diagnostics: wire::diagnostics(d) };
        let e = try_diag!(self.ephemeral(&req.type_name), diags, resp);
        let config = try_diag!(wire::decode(req.config.as_ref(), &e.ty), diags, resp);
        diags.extend(plan::validate(&e.schema.block, &config, true));
        e.imp.validate(config, &mut diags);
        Ok(Response::new(resp(diags)))
    }

    async fn open_ephemeral_resource(
        &self,
        req: Request<pb::open_ephemeral_resource::Request>,
    ) -> Result<Response<pb::open_ephemeral_resource::Response>, Status> {
        let req = req.into_inner();
        let mut diags = Diagnostics::new();
        let resp =
            |d| pb::open_ephemeral_resource::Response { diagnostics: wire::diagnostics(d), ..Default::default() };
        let e = try_diag!(self.ephemeral(&req.type_name), diags, resp);
        let config = try_diag!(wire::decode(req.config.as_ref(), &e.ty), diags, resp);
        let ctx = self.ctx(None);
        let opened = try_diag!(e.imp.open(&ctx, config).await, diags, resp);
        let result = try_diag!(opened.result.conform(&e.ty, &AttrPath::root()), diags, resp);
        let result = dv(&result, &e.ty, &mut diags);
        Ok(Response::new(pb::open_ephemeral_resource::Response {
            diagnostics: wire::diagnostics(diags),
            renew_at: opened.renew_at.map(wire::timestamp),
            result,
            private: opened.private,
            deferred: None,
        }))
    }

    async fn renew_ephemeral_resource(
        &self,
        req: Request<pb::renew_ephemeral_resource::Request>,
    ) -> Result<Response<pb::renew_ephemeral_resource::Response>, Status> {
        let req = req.into_inner();
        let mut diags = Diagnostics::new();
        let resp =
            |d| pb::renew_ephemeral_resource::Response { diagnostics: wire::diagnostics(d), ..Default::default() };
        let e = try_diag!(self.ephemeral(&req.type_name), diags, resp);
        let ctx = self.ctx(None);
        let r = try_diag!(e.imp.renew(&ctx, req.private).await, diags, resp);
        Ok(Response::new(pb::renew_ephemeral_resource::Response {
            diagnostics: wire::diagnostics(diags),
            renew_at: r.renew_at.map(wire::timestamp),
            private: r.private,
        }))
    }

    async fn close_ephemeral_resource(
        &self,
        req: Request<pb::close_ephemeral_resource::Request>,
    ) -> Result<Response<pb::close_ephemeral_resource::Response>, Status> {
        let req = req.into_inner();
        let mut diags = Diagnostics::new();
        let resp = |d| pb::close_ephemeral_resource::Response { diagnostics: wire::diagnostics(d) };
        let e = try_diag!(self.ephemeral(&req.type_name), diags, resp);
        let ctx = self.ctx(None);
        try_diag!(e.imp.close(&ctx, req.private).await, diags, resp);
        Ok(Response::new(resp(diags)))
    }

    async fn stop_provider(
        &self,
        _: Request<pb::stop_provider::Request>,
    ) -> Result<Response<pb::stop_provider::Response>, Status> {
        tracing::info!("Terraform asked the provider to stop; cancelling operations in flight");
        self.stop.cancel();
        Ok(Response::new(pb::stop_provider::Response { error: String::new() }))
    }
}
