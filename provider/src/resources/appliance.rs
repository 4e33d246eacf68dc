//! `tundra_appliance_template` and `tundra_appliance`: a platform (a Slurm
//! cluster, a Dask cluster…) declared as a versioned template and made from
//! typed parameters.
//!
//! A template's `spec` is data — its parameters, secrets, roles, outputs and
//! usage text as JSON (`jsonencode({...})` or `file("x.json")`) — checked
//! at plan time by the same rules tundrad applies, so a mistake is named
//! with its place in the spec before anything is made. Two specs that mean
//! the same (key order, spacing, defaults spelled out) are the same: no
//! diff, no replacement.
//!
//! An appliance's `parameters` is a dynamic object checked at plan time
//! against its template's schema: unknown names, wrong kinds, values out of
//! range or pattern, missing required ones and changes to immutable ones
//! are errors at `parameters.NAME`. Every other change applies in place (a
//! count adds or drains nodes). Apply waits until every role's nodes
//! reported ready; outputs and usage are computed. The generated secrets
//! (a munge key) go to the appliance's nodes only: never to state.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value as Json;
use tfplugin::schema::{Attribute, Block, Nesting, Schema};
use tfplugin::{
    AttrPath, Ctx, Diagnostic, Diagnostics, Failed, Number, PlanChange, Resource, TfValue, Timeouts, Type, Value,
    modifiers, validators,
};
use tundra_api::appliances::{
    Appliance, ApplianceCreate, ApplianceStatus, ApplianceTemplate, ApplianceTemplateCreate, ApplianceTemplateUpdate,
    ApplianceUpdate, Parameter,
};

use super::cluster::{host_label, id};
use super::keypair::project_id_attr;
use super::{created_at_attr, description_attr, id_attr, known, name_validator, uint, wait_gone};
use crate::client::{Client, ClientExt, Diag, nouns};

// ---- templates -----------------------------------------------------------

/// What `spec` holds; the rest of a template is the resource's own attributes.
const SPEC_KEYS: [&str; 5] = ["parameters", "secrets", "roles", "outputs", "usage"];

tfplugin::tf_object! {
    #[derive(Clone, Debug, PartialEq)]
    pub struct ParameterObj {
        pub name: Value<String>,
        pub kind: Value<String>,
        pub description: Value<String>,
        pub required: Value<bool>,
        pub immutable: Value<bool>,
        pub default: Value<String>,
    }
}

tfplugin::tf_object! {
    #[derive(Clone, Debug)]
    pub struct TemplateState {
        pub id: Value<String>,
        pub project_id: Value<String>,
        pub name: Value<String>,
        pub version: Value<i64>,
        pub description: Value<String>,
        pub spec: Value<String>,
        pub parameters: Value<Vec<ParameterObj>>,
        pub roles: Value<Vec<String>>,
        pub outputs: Value<Vec<String>>,
        pub created_at: Value<String>,
    }
}

/// A template's spec as tundrad holds it (pretty JSON, the keys of `SPEC_KEYS`).
fn canonical_spec(t: &ApplianceTemplate) -> String {
    let spec = serde_json::json!({
        "parameters": t.parameters,
        "secrets": t.secrets,
        "roles": t.roles,
        "outputs": t.outputs,
        "usage": t.usage,
    });
    serde_json::to_string_pretty(&spec).unwrap_or_default()
}

/// `spec` read into a template request with these name, version and
/// description; the error says what is wrong and where.
fn parse_spec(spec: &str, name: &str, version: u32, description: &str) -> Result<ApplianceTemplateCreate, String> {
    let v: Json = serde_json::from_str(spec).map_err(|e| format!("spec is not JSON: {e}"))?;
    let Json::Object(mut m) = v else {
        return Err("spec must be a JSON object with parameters, secrets, roles, outputs and usage".into());
    };
    if let Some(k) = m.keys().find(|k| !SPEC_KEYS.contains(&k.as_str())) {
        return Err(format!(
            "spec has {k:?}; it takes {} (name, version and description are attributes of the resource)",
            SPEC_KEYS.join(", ")
        ));
    }
    m.insert("name".into(), Json::String(name.into()));
    m.insert("version".into(), Json::from(version));
    m.insert("description".into(), Json::String(description.into()));
    serde_json::from_value(Json::Object(m)).map_err(|e| format!("spec: {e}"))
}

/// The parts of a template a spec decides (equal specs mean the same template).
fn spec_parts(t: &ApplianceTemplateCreate) -> impl PartialEq + '_ {
    (&t.parameters, &t.secrets, &t.roles, &t.outputs, &t.usage)
}

fn same_spec(a: &str, b: &str) -> bool {
    match (parse_spec(a, "x", 1, ""), parse_spec(b, "x", 1, "")) {
        (Ok(a), Ok(b)) => spec_parts(&a) == spec_parts(&b),
        _ => false,
    }
}

impl TemplateState {
    /// The view as state; `prior_spec` is kept when it means what tundrad holds.
    pub(crate) fn from_view(t: &ApplianceTemplate, prior_spec: Option<&str>) -> Self {
        let canonical = canonical_spec(t);
        let spec = match prior_spec {
            Some(p) if p == canonical || same_spec(p, &canonical) => p.to_string(),
            _ => canonical,
        };
        TemplateState {
            id: Value::Known(t.id.to_string()),
            project_id: t.project_id.map(|p| p.to_string()).into(),
            name: Value::Known(t.name.clone()),
            version: Value::Known(i64::from(t.version)),
            description: Value::Known(t.description.clone()),
            spec: Value::Known(spec),
            parameters: Value::Known(t.parameters.iter().map(parameter_obj).collect()),
            roles: Value::Known(t.roles.iter().map(|r| r.name.clone()).collect()),
            outputs: Value::Known(t.outputs.iter().map(|o| o.name.clone()).collect()),
            created_at: Value::Known(t.created_at.clone()),
        }
    }
}

fn parameter_obj(p: &Parameter) -> ParameterObj {
    ParameterObj {
        name: Value::Known(p.name.clone()),
        kind: Value::Known(p.kind.as_str().into()),
        description: Value::Known(p.description.clone()),
        required: Value::Known(!p.optional && p.default.is_none()),
        immutable: Value::Known(p.immutable),
        default: p.default.as_ref().map(|d| d.to_string()).into(),
    }
}

const TEMPLATE_FIELDS: &[(&str, &str)] =
    &[("/project_id", "project_id"), ("/name", "name"), ("/version", "version"), ("/description", "description")];

/// The service's refusal of a template: at the attribute it names, or at
/// `spec` with the place in it.
fn template_failed(e: tundra_client::ApiError, what: &str) -> Diagnostic {
    let d = e.diag_at(what, TEMPLATE_FIELDS);
    match e.pointer() {
        Some(p) if !TEMPLATE_FIELDS.iter().any(|(ptr, _)| *ptr == p) => {
            Diagnostic::error(what, format!("{} (at {p} in spec)", e.detail())).at(AttrPath::attr_root("spec"))
        }
        _ => d,
    }
}

pub struct ApplianceTemplateResource;

impl Resource<Client> for ApplianceTemplateResource {
    type State = TemplateState;

    fn type_name(&self) -> &'static str {
        "tundra_appliance_template"
    }

    fn schema(&self) -> Schema {
        let replace = modifiers::requires_replace;
        let keep = modifiers::use_state_for_unknown;
        Schema::new(
            Block::new(
                "An appliance template version: typed parameters, generated secrets, roles whose nodes get \
                 files rendered from the parameters and the other roles' addresses, outputs and a usage text. \
                 Templates are data: a version never changes once made (only its description); a new version \
                 is a new template, and one in use cannot be deleted. See the appliances guide for the spec.",
            )
            .attr(id_attr("appliance template"))
            .attr(
                Attribute::string("project_id")
                    .optional()
                    .modifier(replace())
                    .description("A project's own template; omit for a site template (site admins)."),
            )
            .attr(Attribute::string("name").required().validator(name_validator()).modifier(replace()))
            .attr(
                Attribute::number("version")
                    .required()
                    .validator(validators::range(1.0, 4_294_967_295.0))
                    .modifier(replace())
                    .description("From 1; a name and version are taken once."),
            )
            .attr(description_attr())
            .attr(Attribute::string("spec").required().modifier(replace()).description(
                "The template as JSON: `parameters`, `secrets`, `roles`, `outputs` and `usage` \
                         (`jsonencode({...})` or `file(\"slurm.json\")`). Checked at plan time; a spec that \
                         means the same (other spacing or key order) is no change.",
            ))
            .attr(
                Attribute::nested(
                    "parameters",
                    Nesting::List,
                    vec![
                        Attribute::string("name").computed(),
                        Attribute::string("kind").computed(),
                        Attribute::string("description").computed(),
                        Attribute::bool("required").computed(),
                        Attribute::bool("immutable").computed(),
                        Attribute::string("default").computed().description("JSON."),
                    ],
                )
                .computed()
                .modifier(keep())
                .description("The parameters an appliance of it takes."),
            )
            .attr(Attribute::list("roles", Type::String).computed().modifier(keep()))
            .attr(Attribute::list("outputs", Type::String).computed().modifier(keep()))
            .attr(created_at_attr()),
        )
    }

    fn importable(&self) -> bool {
        true
    }

    fn validate_config(&self, config: &TemplateState, diags: &mut Diagnostics) {
        let Some(spec) = known(&config.spec) else { return };
        // The checks of name and version are their attributes' own.
        let t = match parse_spec(spec, "template", 1, "") {
            Ok(t) => t,
            Err(e) => {
                diags.push(Diagnostic::error("Invalid appliance template", e).at(AttrPath::attr_root("spec")));
                return;
            }
        };
        if let Err((pointer, msg)) = tundra_engine::appliances::check_template(&t) {
            diags.push(
                Diagnostic::error("Invalid appliance template", format!("{msg} (at {pointer} in spec)"))
                    .at(AttrPath::attr_root("spec")),
            );
        }
    }

    async fn modify_plan(&self, _ctx: &Ctx<Client>, change: &mut PlanChange<TemplateState>) {
        let Some(prior) = &change.prior else { return };
        if let (Some(was), Some(now)) = (known(&prior.spec), known(&change.planned.spec))
            && was != now
            && same_spec(was, now)
        {
            change.planned.spec = prior.spec.clone();
            let p = AttrPath::attr_root("spec");
            change.requires_replace.retain(|r| *r != p);
        }
    }

    async fn create(&self, ctx: &Ctx<Client>, plan: TemplateState) -> Result<TemplateState, Failed<TemplateState>> {
        let c = ctx.client()?;
        let spec = known(&plan.spec).unwrap_or_default();
        let mut req = parse_spec(
            spec,
            known(&plan.name).unwrap_or_default(),
            uint(&plan.version).unwrap_or(0),
            known(&plan.description).unwrap_or_default(),
        )
        .map_err(|e| Diagnostic::error("Invalid appliance template", e).at(AttrPath::attr_root("spec")))?;
        req.project_id = match known(&plan.project_id) {
            Some(p) => Some(c.project_id(Some(p)).await?),
            None => None,
        };
        let t: ApplianceTemplate = c
            .create(&nouns::APPLIANCE_TEMPLATES, &req)
            .await
            .map_err(|e| template_failed(e, "Could not create the appliance template"))?;
        Ok(TemplateState::from_view(&t, Some(spec)))
    }

    async fn read(&self, ctx: &Ctx<Client>, state: TemplateState) -> Result<Option<TemplateState>, Diagnostics> {
        let t: Option<ApplianceTemplate> = ctx
            .client()?
            .find(&nouns::APPLIANCE_TEMPLATES, &super::state_id(&state.id))
            .await
            .map_err(|e| e.diag("Could not read the appliance template"))?;
        Ok(t.map(|t| TemplateState::from_view(&t, known(&state.spec))))
    }

    async fn update(
        &self,
        ctx: &Ctx<Client>,
        prior: TemplateState,
        plan: TemplateState,
    ) -> Result<TemplateState, Failed<TemplateState>> {
        let req = ApplianceTemplateUpdate { description: plan.description.known().cloned() };
        let t: ApplianceTemplate = ctx
            .client()?
            .update(&nouns::APPLIANCE_TEMPLATES, &super::state_id(&prior.id), &req)
            .await
            .map_err(|e| template_failed(e, "Could not update the appliance template"))?;
        Ok(TemplateState::from_view(&t, known(&plan.spec)))
    }

    async fn delete(&self, ctx: &Ctx<Client>, state: TemplateState) -> Result<(), Diagnostics> {
        ctx.client()?
            .delete(&nouns::APPLIANCE_TEMPLATES, &super::state_id(&state.id))
            .await
            .map_err(|e| e.diag("Could not delete the appliance template"))?;
        Ok(())
    }

    async fn import(&self, ctx: &Ctx<Client>, id: &str) -> Result<TemplateState, Diagnostics> {
        let t: ApplianceTemplate = ctx
            .client()?
            .get(&nouns::APPLIANCE_TEMPLATES, id)
            .await
            .map_err(|e| e.diag(&format!("Cannot import appliance template {id:?}")))?;
        Ok(TemplateState::from_view(&t, None))
    }
}

// ---- parameters as Terraform values --------------------------------------

/// A Terraform value as JSON; `None` where any part is unknown.
pub(crate) fn to_json(v: &TfValue) -> Option<Json> {
    Some(match v.untyped() {
        TfValue::Unknown => return None,
        TfValue::Null => Json::Null,
        TfValue::Bool(b) => Json::Bool(*b),
        TfValue::Number(n) => match n.as_i64() {
            Some(i) => Json::from(i),
            None => serde_json::Number::from_f64(n.as_f64()).map(Json::Number).unwrap_or(Json::Null),
        },
        TfValue::String(s) => Json::String(s.clone()),
        TfValue::List(l) | TfValue::Set(l) | TfValue::Tuple(l) => {
            Json::Array(l.iter().map(to_json).collect::<Option<Vec<_>>>()?)
        }
        TfValue::Map(m) | TfValue::Object(m) => {
            let mut o = serde_json::Map::new();
            for (k, x) in m {
                o.insert(k.clone(), to_json(x)?);
            }
            Json::Object(o)
        }
        TfValue::Typed(..) => unreachable!("untyped"),
    })
}

/// JSON as the Terraform value HCL would write for it (objects, tuples).
pub(crate) fn from_json(v: &Json) -> TfValue {
    match v {
        Json::Null => TfValue::Null,
        Json::Bool(b) => TfValue::Bool(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => TfValue::Number(Number::Int(i)),
            None => TfValue::Number(Number::Float(n.as_f64().unwrap_or_default())),
        },
        Json::String(s) => TfValue::String(s.clone()),
        Json::Array(l) => TfValue::Tuple(l.iter().map(from_json).collect()),
        Json::Object(m) => TfValue::Object(m.iter().map(|(k, x)| (k.clone(), from_json(x))).collect()),
    }
}

/// The parameters given: each name with its value (`None` while unknown).
/// Null (none given) is empty; anything but an object or map is an error.
fn given(v: &TfValue) -> Result<Option<BTreeMap<String, Option<Json>>>, Diagnostic> {
    match v.untyped() {
        TfValue::Null => Ok(Some(BTreeMap::new())),
        TfValue::Unknown => Ok(None),
        TfValue::Map(m) | TfValue::Object(m) => Ok(Some(m.iter().map(|(k, x)| (k.clone(), to_json(x))).collect())),
        other => Err(Diagnostic::error(
            "Invalid parameters",
            format!(
                "parameters takes an object of the template's parameters (e.g. {{ compute_count = 3 }}), not a {}.",
                other.kind()
            ),
        )
        .at(AttrPath::attr_root("parameters"))),
    }
}

fn at_param(name: &str) -> AttrPath {
    AttrPath::attr_root("parameters").attr(name)
}

/// What plan time can tell of `new` against the template (`old` being the
/// parameters the appliance has): the service's own rules, for every value
/// known yet.
fn check_given(
    t: &ApplianceTemplate,
    new: &BTreeMap<String, Option<Json>>,
    old: Option<&BTreeMap<String, Option<Json>>>,
) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let invalid = |name: &str, msg: String| Diagnostic::error("Invalid appliance parameter", msg).at(at_param(name));
    for k in new.keys().filter(|k| !t.parameters.iter().any(|p| &p.name == *k)) {
        let names: Vec<&str> = t.parameters.iter().map(|p| p.name.as_str()).collect();
        out.push(invalid(
            k,
            format!("Template {} v{} has no parameter {k:?}; it has: {}.", t.name, t.version, names.join(", ")),
        ));
    }
    let filled = |m: &BTreeMap<String, Option<Json>>, p: &Parameter| -> Option<Json> {
        match m.get(&p.name) {
            Some(v) => v.clone(),
            None => Some(p.default.clone().unwrap_or(Json::Null)),
        }
    };
    for p in &t.parameters {
        let Some(v) = filled(new, p) else { continue };
        if let Err(e) = tundra_engine::appliances::check_value(p, &v) {
            let d = invalid(&p.name, format!("{e}."));
            out.push(if new.contains_key(&p.name) { d } else { d.at(AttrPath::attr_root("parameters")) });
            continue;
        }
        if p.immutable
            && let Some(Some(was)) = old.map(|o| filled(o, p))
            && was != v
        {
            out.push(invalid(
                &p.name,
                format!(
                    "{} is immutable: it was {was} and cannot become {v}. Make a new appliance for another value.",
                    p.name
                ),
            ));
        }
    }
    out
}

// ---- appliances ----------------------------------------------------------

tfplugin::tf_object! {
    #[derive(Clone, Debug, PartialEq)]
    pub struct RoleObj {
        pub name: Value<String>,
        pub count: Value<i64>,
        pub ready: Value<i64>,
        pub status: Value<String>,
        pub reason: Value<String>,
    }
}

tfplugin::tf_object! {
    #[derive(Clone, Debug, PartialEq)]
    pub struct MemberObj {
        pub name: Value<String>,
        pub role: Value<String>,
        pub node_id: Value<String>,
        pub state: Value<String>,
        pub reason: Value<String>,
        pub address: Value<String>,
    }
}

tfplugin::tf_object! {
    #[derive(Clone, Debug)]
    pub struct ApplianceState {
        pub id: Value<String>,
        pub project_id: Value<String>,
        pub name: Value<String>,
        pub template_id: Value<String>,
        pub keypair_id: Value<String>,
        pub parameters: TfValue,
        pub status: Value<String>,
        pub status_reason: Value<String>,
        pub roles: Value<Vec<RoleObj>>,
        pub members: Value<Vec<MemberObj>>,
        pub outputs: Value<BTreeMap<String, String>>,
        pub usage: Value<String>,
        pub created_at: Value<String>,
    }
}

impl ApplianceState {
    /// The view as state, with `parameters` as given (the service's view of
    /// them is compared in `read`).
    pub(crate) fn from_view(a: &Appliance, parameters: TfValue) -> Self {
        ApplianceState {
            id: Value::Known(a.id.to_string()),
            project_id: Value::Known(a.project_id.to_string()),
            name: Value::Known(a.name.clone()),
            template_id: Value::Known(a.template_id.to_string()),
            keypair_id: a.keypair_id.map(|k| k.to_string()).into(),
            parameters,
            status: Value::Known(a.status.as_str().into()),
            status_reason: a.status_reason.clone().into(),
            roles: Value::Known(
                a.roles
                    .iter()
                    .map(|r| RoleObj {
                        name: Value::Known(r.name.clone()),
                        count: Value::Known(i64::from(r.count)),
                        ready: Value::Known(i64::from(r.ready)),
                        status: Value::Known(r.status.as_str().into()),
                        reason: r.reason.clone().into(),
                    })
                    .collect(),
            ),
            members: Value::Known(
                a.members
                    .iter()
                    .map(|m| MemberObj {
                        name: Value::Known(m.name.clone()),
                        role: Value::Known(m.role.clone()),
                        node_id: m.node_id.map(|n| n.to_string()).into(),
                        state: Value::Known(m.state.as_str().into()),
                        reason: m.reason.clone().into(),
                        address: m.address.clone().into(),
                    })
                    .collect(),
            ),
            outputs: Value::Known(a.outputs.clone()),
            usage: a.usage.clone().into(),
            created_at: Value::Known(a.created_at.clone()),
        }
    }

    /// The parameters to send: those given, known.
    fn request_parameters(&self) -> Result<BTreeMap<String, Json>, Diagnostic> {
        let Some(m) = given(&self.parameters)? else {
            return Err(Diagnostic::error("Parameters not known", "parameters must be known at apply time.")
                .at(AttrPath::attr_root("parameters")));
        };
        m.into_iter()
            .map(|(k, v)| match v {
                Some(v) => Ok((k, v)),
                None => Err(Diagnostic::error("Parameter not known", format!("{k} is not known at apply time."))
                    .at(at_param(&k))),
            })
            .collect()
    }
}

/// What the service holds, as the parameters Terraform would write: those
/// `given` (whatever their value now), and those no longer at their default.
fn service_parameters(a: &Appliance, t: &ApplianceTemplate, given: &BTreeMap<String, Option<Json>>) -> TfValue {
    let mut out = BTreeMap::new();
    for p in &t.parameters {
        let have = a.parameters.get(&p.name).cloned().unwrap_or(Json::Null);
        let default = p.default.clone().unwrap_or(Json::Null);
        if given.contains_key(&p.name) || have != default {
            out.insert(p.name.clone(), from_json(&have));
        }
    }
    if out.is_empty() && given.is_empty() { TfValue::Null } else { TfValue::Object(out) }
}

/// Whether what Terraform gave still holds in the service, defaults filled.
fn in_step(a: &Appliance, t: &ApplianceTemplate, given: &BTreeMap<String, Option<Json>>) -> bool {
    t.parameters.iter().all(|p| {
        let want = match given.get(&p.name) {
            Some(Some(v)) => v.clone(),
            Some(None) => return true,
            None => p.default.clone().unwrap_or(Json::Null),
        };
        a.parameters.get(&p.name).cloned().unwrap_or(Json::Null) == want
    })
}

fn failed(e: tundra_client::ApiError, what: &str) -> Diagnostic {
    let d = e.diag(what);
    let Some(p) = e.pointer().map(|p| p.trim_start_matches('/')) else { return d };
    match p.split_once('/') {
        Some(("parameters", name)) => d.at(at_param(name)),
        None if ["project_id", "name", "template_id", "keypair_id", "parameters"].contains(&p) => {
            d.at(AttrPath::attr_root(p))
        }
        _ => d,
    }
}

/// Wait until tundrad judges the appliance active; degraded is an error
/// naming the nodes and why (the appliance stays in state).
async fn wait_active(
    ctx: &Ctx<Client>,
    a: Appliance,
    parameters: &TfValue,
) -> Result<ApplianceState, Failed<ApplianceState>> {
    let id = a.id.to_string();
    super::wait_judged(
        ctx,
        &nouns::APPLIANCES,
        &id,
        a,
        |a| match a.status {
            ApplianceStatus::Active => Some(Ok(())),
            ApplianceStatus::Degraded => Some(Err(Diagnostic::error(
                "Appliance degraded",
                format!(
                    "Appliance {}: {}. The other nodes are left as they are; fix the cause and apply again.",
                    a.name,
                    a.status_reason.clone().unwrap_or_else(|| "no reason given".into())
                ),
            ))),
            _ => None,
        },
        |a| {
            Diagnostic::error(
                "Appliance not active yet",
                format!(
                    "Appliance {} is {}: {}. It stays in state; apply again to wait, or raise the timeouts.",
                    a.name,
                    a.status.as_str(),
                    a.status_reason.clone().unwrap_or_default()
                ),
            )
        },
        |a| ApplianceState::from_view(a, parameters.clone()),
    )
    .await
}

async fn template_of(c: &Client, id: &str) -> Result<ApplianceTemplate, Diagnostic> {
    c.get(&nouns::APPLIANCE_TEMPLATES, id).await.map_err(|e| {
        e.diag(&format!("Could not read appliance template {id:?}")).at(AttrPath::attr_root("template_id"))
    })
}

pub struct ApplianceResource;

impl Resource<Client> for ApplianceResource {
    type State = ApplianceState;

    fn type_name(&self) -> &'static str {
        "tundra_appliance"
    }

    fn schema(&self) -> Schema {
        let replace = modifiers::requires_replace;
        let computed =
            |names: &[&str]| -> Vec<Attribute> { names.iter().map(|n| Attribute::string(n).computed()).collect() };
        let mut role = computed(&["name", "status", "reason"]);
        role.insert(1, Attribute::number("count").computed());
        role.insert(2, Attribute::number("ready").computed().description("How many reported ready."));
        Schema::new(
            Block::new(
                "An appliance: an appliance template made with parameters. tundrad makes and owns each role's \
                 nodes, generates the template's secrets and gives them to those nodes only, and renders each \
                 node's files; apply waits until every node reported ready. A changed parameter applies in \
                 place (a count adds nodes, or drains and removes them); an immutable one cannot change. No \
                 generated secret is ever in state.",
            )
            .attr(id_attr("appliance"))
            .attr(project_id_attr("appliance"))
            .attr(
                Attribute::string("name")
                    .required()
                    .validator(host_label())
                    .modifier(replace())
                    .description("Unique in the project; its nodes are `NAME-ROLE-N`."),
            )
            .attr(
                Attribute::string("template_id")
                    .required()
                    .modifier(replace())
                    .description("`tundra_appliance_template.id`."),
            )
            .attr(Attribute::string("keypair_id").optional().modifier(replace()).description("SSH key for its nodes."))
            .attr(Attribute::new("parameters", Type::Dynamic).optional().description(
                "The template's parameters as an object (`{ compute_count = 3, flavor = ... }`), checked \
                         against its schema at plan time; one left out takes its default.",
            ))
            .attr(Attribute::string("status").computed().description("`active` after apply."))
            .attr(
                Attribute::string("status_reason")
                    .computed()
                    .description("What it waits for, or which nodes failed and why."),
            )
            .attr(Attribute::nested("roles", Nesting::List, role).computed().description("Each role's status."))
            .attr(
                Attribute::nested(
                    "members",
                    Nesting::List,
                    computed(&["name", "role", "node_id", "state", "reason", "address"]),
                )
                .computed()
                .description("Its nodes, each with its state and its address on the role's traffic network."),
            )
            .attr(Attribute::map("outputs", Type::String).computed().description("The template's outputs, rendered."))
            .attr(
                Attribute::string("usage")
                    .computed()
                    .description("The template's usage text, rendered from the outputs."),
            )
            .attr(created_at_attr()),
        )
    }

    fn timeouts(&self) -> Option<Timeouts> {
        Some(Timeouts {
            create: Some(Duration::from_secs(3600)),
            update: Some(Duration::from_secs(3600)),
            delete: Some(Duration::from_secs(3600)),
        })
    }

    fn importable(&self) -> bool {
        true
    }

    fn validate_config(&self, config: &ApplianceState, diags: &mut Diagnostics) {
        if let Err(d) = given(&config.parameters) {
            diags.push(d);
        }
    }

    async fn modify_plan(&self, ctx: &Ctx<Client>, change: &mut PlanChange<ApplianceState>) {
        let config_null = change.config.project_id.is_null();
        super::keep_project(change, |s| &mut s.project_id, config_null);
        let (Some(template_id), Ok(Some(new))) =
            (known(&change.planned.template_id), given(&change.planned.parameters))
        else {
            return;
        };
        // (Destroy plans and a template replaced with the appliance need no check.)
        let replacing = change.prior.as_ref().is_some_and(|p| known(&p.template_id) != Some(template_id));
        let Ok(c) = ctx.client() else { return };
        let t = match template_of(c, template_id).await {
            Ok(t) => t,
            Err(d) => {
                change.diagnostics.push(d);
                return;
            }
        };
        let old = match &change.prior {
            Some(p) if !replacing => given(&p.parameters).ok().flatten(),
            _ => None,
        };
        for d in check_given(&t, &new, old.as_ref()) {
            change.diagnostics.push(d);
        }
    }

    async fn create(&self, ctx: &Ctx<Client>, plan: ApplianceState) -> Result<ApplianceState, Failed<ApplianceState>> {
        let c = ctx.client()?;
        let req = ApplianceCreate {
            project_id: c.project_id(known(&plan.project_id)).await?,
            name: known(&plan.name).unwrap_or_default().into(),
            template_id: id(&plan.template_id, AttrPath::attr_root("template_id"))?,
            keypair_id: match plan.keypair_id.known() {
                Some(_) => Some(id(&plan.keypair_id, AttrPath::attr_root("keypair_id"))?),
                None => None,
            },
            parameters: plan.request_parameters()?,
        };
        let a: Appliance =
            c.create(&nouns::APPLIANCES, &req).await.map_err(|e| failed(e, "Could not create the appliance"))?;
        wait_active(ctx, a, &plan.parameters).await
    }

    async fn read(&self, ctx: &Ctx<Client>, state: ApplianceState) -> Result<Option<ApplianceState>, Diagnostics> {
        let c = ctx.client()?;
        let a: Option<Appliance> = c
            .find(&nouns::APPLIANCES, &super::state_id(&state.id))
            .await
            .map_err(|e| e.diag("Could not read the appliance"))?;
        let Some(a) = a.filter(|a| a.status != ApplianceStatus::Deleting) else { return Ok(None) };
        // Parameters changed behind Terraform's back show as a change to
        // make; what Terraform gave, unchanged, stays as it wrote it.
        let parameters = match given(&state.parameters) {
            Ok(Some(g)) => {
                let t = template_of(c, &a.template_id.to_string()).await?;
                if in_step(&a, &t, &g) { state.parameters.clone() } else { service_parameters(&a, &t, &g) }
            }
            _ => state.parameters.clone(),
        };
        Ok(Some(ApplianceState::from_view(&a, parameters)))
    }

    async fn update(
        &self,
        ctx: &Ctx<Client>,
        prior: ApplianceState,
        plan: ApplianceState,
    ) -> Result<ApplianceState, Failed<ApplianceState>> {
        let c = ctx.client()?;
        let req = ApplianceUpdate { parameters: Some(plan.request_parameters()?) };
        let a: Appliance = c
            .update(&nouns::APPLIANCES, &super::state_id(&prior.id), &req)
            .await
            .map_err(|e| failed(e, "Could not update the appliance"))?;
        wait_active(ctx, a, &plan.parameters).await
    }

    async fn delete(&self, ctx: &Ctx<Client>, state: ApplianceState) -> Result<(), Diagnostics> {
        let id = super::state_id(&state.id);
        let c = ctx.client()?;
        c.delete(&nouns::APPLIANCES, &id).await.map_err(|e| e.diag("Could not delete the appliance"))?;
        // (Its nodes' machines are cleaned before it goes.)
        wait_gone(ctx, &nouns::APPLIANCES, &id, "appliance").await
    }

    async fn import(&self, ctx: &Ctx<Client>, id: &str) -> Result<ApplianceState, Diagnostics> {
        let c = ctx.client()?;
        let a: Appliance =
            c.get(&nouns::APPLIANCES, id).await.map_err(|e| e.diag(&format!("Cannot import appliance {id:?}")))?;
        let t = template_of(c, &a.template_id.to_string()).await?;
        Ok(ApplianceState::from_view(&a, service_parameters(&a, &t, &BTreeMap::new())))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const SPEC: &str = r#"{"parameters": [{"name": "n", "kind": "count", "default": 1, "maximum": 4},
        {"name": "flavor", "kind": "flavor"}, {"name": "image", "kind": "image"},
        {"name": "site", "kind": "string", "pattern": "[a-z]+", "immutable": true}],
        "roles": [{"name": "worker", "count_parameter": "n", "flavor_parameter": "flavor", "image_parameter": "image"}]}"#;

    fn template() -> ApplianceTemplate {
        let t = parse_spec(SPEC, "t", 1, "").unwrap();
        serde_json::from_value(json!({
            "id": "0190d6a0-0000-7000-8000-0000000000aa", "name": "t", "version": 1, "description": "",
            "parameters": t.parameters, "secrets": [], "roles": t.roles, "outputs": [], "usage": "",
            "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z", "revision": 1
        }))
        .unwrap()
    }

    #[test]
    fn specs_that_mean_the_same_are_the_same_and_others_are_named() {
        let reordered = r#"{"roles": [{"image_parameter": "image", "flavor_parameter": "flavor", "count_parameter": "n",
            "name": "worker", "count": 1}], "parameters": [{"name": "n", "kind": "count", "default": 1, "maximum": 4},
            {"name": "flavor", "kind": "flavor"}, {"name": "image", "kind": "image"},
            {"name": "site", "kind": "string", "pattern": "[a-z]+", "immutable": true}], "secrets": []}"#;
        assert!(same_spec(SPEC, reordered));
        assert!(same_spec(SPEC, &canonical_spec(&template())), "tundrad's view of it means the same");
        assert!(!same_spec(SPEC, &SPEC.replace("\"maximum\": 4", "\"maximum\": 5")));
        let e = parse_spec(r#"{"roles": [], "name": "x"}"#, "t", 1, "").unwrap_err();
        assert!(e.contains("\"name\"") && e.contains("attributes of the resource"), "{e}");
        let e = parse_spec(r#"{"roles": [{"nme": "w"}]}"#, "t", 1, "").unwrap_err();
        assert!(e.contains("nme"), "{e}");
        assert!(parse_spec("{", "t", 1, "").unwrap_err().contains("not JSON"));
    }

    #[test]
    fn parameters_are_checked_at_their_name_with_unknowns_left_for_later() {
        let t = template();
        let flavor = Some(json!("0190d6a0-0000-7000-8000-000000000001"));
        let image = Some(json!("0190d6a0-0000-7000-8000-000000000002"));
        let good: BTreeMap<String, Option<Json>> =
            [("flavor".into(), flavor.clone()), ("image".into(), None), ("site".into(), Some(json!("lab")))].into();
        assert!(check_given(&t, &good, None).is_empty(), "an unknown image is checked at apply");
        let msgs = |m: BTreeMap<String, Option<Json>>, old: Option<&BTreeMap<String, Option<Json>>>| {
            check_given(&t, &m, old).into_iter().map(|d| format!("{d:?}")).collect::<Vec<_>>()
        };
        let mut bad = good.clone();
        bad.insert("n".into(), Some(json!(9)));
        bad.insert("colour".into(), Some(json!("red")));
        let m = msgs(bad, None);
        assert_eq!(m.len(), 2, "{m:?}");
        assert!(m[0].contains("colour") && m[0].contains("has no parameter"), "{m:?}");
        assert!(m[1].contains("from 0 to 4"), "{m:?}");
        let mut missing = good.clone();
        missing.remove("site");
        assert!(msgs(missing, None)[0].contains("site is required"));
        // Immutable: a change is refused, the same value (or one unknown yet) is not.
        let old: BTreeMap<String, Option<Json>> =
            [("flavor".into(), flavor), ("image".into(), image), ("site".into(), Some(json!("lab")))].into();
        let mut renamed = good.clone();
        renamed.insert("site".into(), Some(json!("cloud")));
        let m = msgs(renamed, Some(&old));
        assert!(m.len() == 1 && m[0].contains("immutable"), "{m:?}");
        assert!(msgs(good.clone(), Some(&old)).is_empty());
    }

    #[test]
    fn parameters_round_trip_and_drift_is_seen_with_defaults_filled() {
        let t = template();
        let v = json!({"n": 2, "site": "lab", "nets": ["a", "b"], "ok": true});
        assert_eq!(to_json(&from_json(&v)), Some(v));
        let mut a: Appliance = serde_json::from_value(json!({
            "id": "0190d6a0-0000-7000-8000-0000000000bb", "project_id": "0190d6a0-0000-7000-8000-0000000000cc",
            "name": "a", "template_id": "0190d6a0-0000-7000-8000-0000000000aa",
            "parameters": {"n": 1, "flavor": "f", "image": "i", "site": "lab"},
            "status": "active", "roles": [], "outputs": {}, "created_at": "", "updated_at": "", "revision": 1
        }))
        .unwrap();
        let g: BTreeMap<String, Option<Json>> = [
            ("flavor".into(), Some(json!("f"))),
            ("image".into(), Some(json!("i"))),
            ("site".into(), Some(json!("lab"))),
        ]
        .into();
        assert!(in_step(&a, &t, &g), "n left out is at its default");
        a.parameters.insert("n".into(), json!(3));
        assert!(!in_step(&a, &t, &g));
        let seen = to_json(&service_parameters(&a, &t, &g)).unwrap();
        assert_eq!(seen, json!({"n": 3, "flavor": "f", "image": "i", "site": "lab"}));
    }
}
