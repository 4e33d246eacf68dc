//! Machines (site admins only): inventory, BMC credentials (write-only,
//! sealed), and actions that start operations.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use tundra_api::identity::Role;
use tundra_api::machines::{
    BmcDriver, BmcSettings, Interface, Machine, MachineAction, MachineCreate, MachineUpdate, ProvisionState,
};
use tundra_api::ops::Operation;
use tundra_api::{ListQuery, Page, Problem, SecretId, paths};
use tundra_conductor::machines::actions::{self, Action};
use tundra_conductor::secrets::Plaintext;
use tundra_store::{MachineChanges, NewMachine, Store, StoreError};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::crud::{
    Object, Owner, as_is, check_name, check_resource_class, check_traits, find, idempotent, json, list_params,
};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Body, IdempotencyKey, IfMatch, Query};
use crate::principal::Principal;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_machines, create_machine))
        .routes(routes!(get_machine, update_machine, delete_machine))
        .routes(routes!(machine_action))
}

impl Object for Machine {
    const NOUN: &'static str = "machine";
    const KIND: &'static str = "machine";
    const SITE_ONLY: bool = true;
    async fn fetch(store: &Store, id: &str) -> Result<Self, StoreError> {
        store.machine(id).await
    }
    fn owner(&self) -> Owner {
        Owner::Site
    }
}

/// States a machine may be deleted from (nothing runs on it, nothing deployed).
const DELETABLE: [ProvisionState; 6] = [
    ProvisionState::Enroll,
    ProvisionState::Manageable,
    ProvisionState::Available,
    ProvisionState::InspectFailed,
    ProvisionState::CleanFailed,
    ProvisionState::AdoptFailed,
];

/// Query of `GET /v1/machines`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MachineQuery {
    pub limit: Option<u32>,
    pub after: Option<String>,
    pub name: Option<String>,
    /// Only machines in this provision state.
    pub provision_state: Option<ProvisionState>,
    /// Only machines of this resource class.
    pub resource_class: Option<String>,
    /// Only machines in this rack…
    pub rack: Option<String>,
    /// …or island.
    pub island: Option<String>,
    /// Only machines whose BMC address contains this (e.g. `10.0.4.17`).
    pub bmc: Option<String>,
    /// Only the machine with an interface of this MAC.
    pub mac: Option<String>,
    /// Only machines in (`true`) or out of (`false`) maintenance.
    pub maintenance: Option<bool>,
}

impl MachineQuery {
    /// The store's filter; a malformed MAC is the caller's mistake.
    pub fn filter(&self) -> ApiResult<tundra_store::MachineFilter> {
        Ok(tundra_store::MachineFilter {
            provision_state: self.provision_state,
            resource_class: self.resource_class.clone(),
            rack: self.rack.clone(),
            island: self.island.clone(),
            bmc_address: self.bmc.clone().filter(|b| !b.is_empty()),
            mac: self.mac.as_deref().map(|m| normalize_mac("/mac", m)).transpose()?,
            maintenance: self.maintenance,
        })
    }
}

fn normalize_mac(pointer: &str, mac: &str) -> ApiResult<String> {
    let m = mac.trim().to_ascii_lowercase().replace('-', ":");
    let ok = m.len() == 17
        && m.split(':').count() == 6
        && m.split(':').all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()));
    if ok {
        Ok(m)
    } else {
        Err(ApiError::field(pointer, format!("{mac:?} is not a MAC address like 52:54:00:12:34:56")))
    }
}

fn check_interfaces(ifs: &[Interface]) -> ApiResult<Vec<Interface>> {
    let mut out = Vec::new();
    for (i, itf) in ifs.iter().enumerate() {
        let mac = normalize_mac(&format!("/interfaces/{i}/mac"), &itf.mac)?;
        if out.iter().any(|o: &Interface| o.mac == mac) {
            return Err(ApiError::field(&format!("/interfaces/{i}/mac"), format!("{mac} is listed twice")));
        }
        if let Some(a) = &itf.address
            && a.parse::<std::net::Ipv4Addr>().is_err()
        {
            return Err(ApiError::field(
                &format!("/interfaces/{i}/address"),
                format!("{a:?} is not an IPv4 address like 10.0.0.21"),
            ));
        }
        if let Some(sw) = &itf.switch {
            tundra_engine::names::check(sw).map_err(|e| ApiError::field(&format!("/interfaces/{i}/switch"), e))?;
        }
        if let Some(p) = &itf.port {
            tundra_engine::names::switch_port(p).map_err(|e| ApiError::field(&format!("/interfaces/{i}/port"), e))?;
            if itf.switch.is_some() && out.iter().any(|o: &Interface| o.switch == itf.switch && o.port == itf.port) {
                return Err(ApiError::field(&format!("/interfaces/{i}/port"), format!("port {p} is listed twice")));
            }
        }
        if let Some(a) = &itf.address
            && out.iter().any(|o: &Interface| o.address.as_ref() == Some(a))
        {
            return Err(ApiError::field(&format!("/interfaces/{i}/address"), format!("{a} is listed twice")));
        }
        out.push(Interface { mac, ..itf.clone() });
    }
    if out.iter().filter(|i| i.pxe).count() > 1 {
        return Err(ApiError::field("/interfaces", "at most one interface can be the PXE interface"));
    }
    Ok(out)
}

/// BMC settings: the driver allowed on this site, the address well-formed.
fn check_bmc(state: &AppState, b: &BmcSettings) -> ApiResult<()> {
    if b.driver == BmcDriver::Fake && !state.conductor.settings().fake_hardware {
        return Err(ApiError::field(
            "/bmc/driver",
            "the fake driver is off on this site; use redfish or ipmi, or set fake_hardware = true in tundrad's configuration (benchmarks and dry runs)",
        ));
    }
    tundra_conductor::bmc::validate(b).map_err(|e| ApiError::field("/bmc/address", e))
}

fn check_password(pointer: &str, p: &str, driver: BmcDriver) -> ApiResult<()> {
    if p.is_empty() || p.len() > 256 {
        return Err(ApiError::field(pointer, "the BMC password must be 1–256 bytes"));
    }
    if driver == BmcDriver::Ipmi && p.len() > 20 {
        return Err(ApiError::field(pointer, "IPMI 2.0 passwords are at most 20 bytes; set a shorter one on the BMC"));
    }
    Ok(())
}

fn check_properties(p: &serde_json::Value) -> ApiResult<()> {
    if !p.is_object() {
        return Err(ApiError::field(
            "/properties",
            "must be a JSON object, e.g. {\"cpus\": 64, \"memory_mib\": 262144}",
        ));
    }
    Ok(())
}

fn seal(state: &AppState, password: &str) -> tundra_store::SecretRecord {
    state.conductor.keyring().seal(SecretId::generate(), &Plaintext(password.as_bytes().to_vec()))
}

/// Machines (site admins).
#[utoipa::path(get, path = paths::MACHINES, tag = "machines", params(MachineQuery), responses((status = 200, body = Page<Machine>), (status = "4XX", body = Problem)))]
async fn list_machines(
    State(state): State<AppState>,
    p: Principal,
    Query(q): Query<MachineQuery>,
) -> ApiResult<axum::Json<Page<Machine>>> {
    p.require_admin()?;
    let f = q.filter()?;
    let lq = ListQuery { limit: q.limit, after: q.after, name: q.name, project: None };
    Ok(axum::Json(state.store().list_machines(&list_params(&lq)?, &f).await?))
}

/// Enroll a machine by its BMC (and MACs, if known); it starts in `enroll`.
#[utoipa::path(post, path = paths::MACHINES, tag = "machines", request_body = MachineCreate, params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe create")), responses((status = 201, body = Machine), (status = "4XX", body = Problem)))]
async fn create_machine(
    State(state): State<AppState>,
    p: Principal,
    key: IdempotencyKey,
    body: Body<MachineCreate>,
) -> ApiResult<Response> {
    p.require_admin()?;
    let req = body.value;
    check_name("/name", &req.name)?;
    check_resource_class(&req.resource_class)?;
    let traits = check_traits("/traits", &req.traits)?;
    check_properties(&req.properties)?;
    check_bmc(&state, &req.bmc)?;
    check_password("/bmc_password", &req.bmc_password, req.bmc.driver)?;
    let interfaces = check_interfaces(&req.interfaces)?;
    idempotent(
        &state,
        &p,
        key,
        paths::MACHINES,
        &body.digest,
        async {
            Ok(state
                .store()
                .create_machine(
                    &p.actor(),
                    NewMachine {
                        name: req.name,
                        resource_class: req.resource_class,
                        traits,
                        properties: req.properties,
                        location: req.location,
                        bmc: req.bmc,
                        interfaces,
                        secret: seal(&state, &req.bmc_password),
                    },
                )
                .await?)
        },
        as_is(StatusCode::CREATED, |m: &Machine| m.revision),
    )
    .await
}

/// A machine, by ID or name.
#[utoipa::path(get, path = paths::MACHINE, tag = "machines", params(("machine" = String, Path, description = "ID or name")), responses((status = 200, body = Machine), (status = "4XX", body = Problem)))]
async fn get_machine(State(state): State<AppState>, p: Principal, Path(id): Path<String>) -> ApiResult<Response> {
    let m = find::<Machine>(&state, &p, &id, Role::Admin).await?;
    Ok(json(StatusCode::OK, &m, Some(m.revision)))
}

/// Change a machine's inventory, BMC settings or password, or maintenance.
#[utoipa::path(patch, path = paths::MACHINE, tag = "machines", request_body = MachineUpdate, params(("machine" = String, Path, description = "ID or name"), ("If-Match" = Option<String>, Header, description = "ETag of a GET")), responses((status = 200, body = Machine), (status = "4XX", body = Problem)))]
async fn update_machine(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    IfMatch(rev): IfMatch,
    body: Body<MachineUpdate>,
) -> ApiResult<Response> {
    let m = find::<Machine>(&state, &p, &id, Role::Admin).await?;
    let req = body.value;
    if let Some(n) = &req.name {
        check_name("/name", n)?;
    }
    if let Some(rc) = &req.resource_class {
        check_resource_class(rc)?;
    }
    let traits = req.traits.as_deref().map(|t| check_traits("/traits", t)).transpose()?;
    if let Some(props) = &req.properties {
        check_properties(props)?;
    }
    if let Some(b) = &req.bmc {
        check_bmc(&state, b)?;
    }
    if let Some(pw) = &req.bmc_password {
        check_password("/bmc_password", pw, req.bmc.as_ref().unwrap_or(&m.bmc).driver)?;
    }
    let interfaces = req.interfaces.as_deref().map(check_interfaces).transpose()?;
    let maintenance = match (req.maintenance, &req.maintenance_reason) {
        (Some(true), r) => Some((true, Some(r.clone().unwrap_or_else(|| "set by an operator".into())))),
        (Some(false), _) => Some((false, None)),
        (None, Some(_)) => return Err(ApiError::field("/maintenance_reason", "goes with \"maintenance\": true")),
        (None, None) => None,
    };
    let changes = MachineChanges {
        name: req.name,
        resource_class: req.resource_class,
        traits,
        properties: req.properties,
        location: req.location,
        bmc: req.bmc,
        secret: req.bmc_password.as_deref().map(|pw| seal(&state, pw)),
        interfaces,
        maintenance,
    };
    let m = state.store().update_machine(&p.actor(), m.id, changes, rev).await?;
    Ok(json(StatusCode::OK, &m, Some(m.revision)))
}

/// Remove a machine from the inventory (only when nothing runs or is deployed on it).
#[utoipa::path(delete, path = paths::MACHINE, tag = "machines", params(("machine" = String, Path, description = "ID or name")), responses((status = 204), (status = "4XX", body = Problem)))]
async fn delete_machine(State(state): State<AppState>, p: Principal, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let m = find::<Machine>(&state, &p, &id, Role::Admin).await?;
    if !DELETABLE.contains(&m.provision_state) || m.operation_id.is_some() {
        let states: Vec<&str> = DELETABLE.iter().map(|s| s.as_str()).collect();
        return Err(ApiError::Conflict(format!(
            "machine {} is {}{}; delete it from one of {} (undeploy or wait first)",
            m.name,
            m.provision_state,
            if m.operation_id.is_some() { " with an operation running" } else { "" },
            states.join(", ")
        )));
    }
    state.store().delete_machine(&p.actor(), m.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Start an action: `manage` (verify the BMC), `inspect` (boot the agent,
/// record the hardware, apply the inspection rules), `provide` (clean, then
/// available), `deploy` (write `image_id` to the root disk, boot it),
/// `delete` (power off, clean, available), `abort` (stop a waiting step), or
/// `power_on`, `power_off`, `soft_power_off`, `reboot`. Answers 202 with the
/// operation.
#[utoipa::path(post, path = paths::MACHINE_ACTIONS, tag = "machines", request_body = MachineAction, params(("machine" = String, Path, description = "ID or name")), responses((status = 202, body = Operation), (status = "4XX", body = Problem)))]
async fn machine_action(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    body: Body<MachineAction>,
) -> ApiResult<Response> {
    let m = find::<Machine>(&state, &p, &id, Role::Admin).await?;
    let image = match body.value.image_id {
        Some(id) => {
            let img = state.store().image(id).await.map_err(|e| match e {
                StoreError::NotFound { .. } => ApiError::field("/image_id", format!("image {id} does not exist")),
                e => e.into(),
            })?;
            if img.raw_sha256.is_none() {
                return Err(ApiError::field(
                    "/image_id",
                    format!("image {} is {}; deploy it once it is active", img.name, img.status.as_str()),
                ));
            }
            Some(img)
        }
        None => None,
    };
    let action = Action::parse(&body.value.action)?;
    let op = actions::start(&state.conductor, &p.actor(), &m, action, image.as_ref()).await?;
    Ok(json(StatusCode::ACCEPTED, &state.store().operation(op).await?, None))
}
