//! The fabric: physical networks and switches (site admins; everyone may
//! read physical networks), networks, subnets and ports (projects; shared
//! networks are site admins'), and the repairs (`…/sync`).

use std::net::Ipv4Addr;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tundra_api::fabric::{
    AllocationPool, FabricKind, FixedIp, Network, NetworkCreate, NetworkUpdate, PhysicalNetwork, PhysicalNetworkCreate,
    PhysicalNetworkUpdate, Port, PortCreate, PortUpdate, Subnet, SubnetCreate, SubnetUpdate, Switch, SwitchCreate,
    SwitchPortState, SwitchPortView, SwitchUpdate, SyncStarted,
};
use tundra_api::identity::Role;
use tundra_api::{
    ListQuery, NetworkId, Page, PhysicalNetworkId, PortId, Problem, ProjectId, SecretId, SubnetId, SwitchId,
};
use tundra_store::{
    NewNetwork, NewPhysicalNetwork, NewPort, NewSubnet, NewSwitch, SecretRecord, SegmentChoice, SwitchChanges,
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::identity::list_params;
use super::{check_description, check_name, idempotent, json, path_id};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Body, IdempotencyKey, IfMatch, Query};
use crate::secrets::Plaintext;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_physical_networks, create_physical_network))
        .routes(routes!(get_physical_network, update_physical_network, delete_physical_network))
        .routes(routes!(list_switches, create_switch))
        .routes(routes!(get_switch, update_switch, delete_switch))
        .routes(routes!(sync_switch))
        .routes(routes!(switch_ports))
        .routes(routes!(list_networks, create_network))
        .routes(routes!(get_network, update_network, delete_network))
        .routes(routes!(list_subnets, create_subnet))
        .routes(routes!(get_subnet, update_subnet, delete_subnet))
        .routes(routes!(list_ports, create_port))
        .routes(routes!(get_port, update_port, delete_port))
        .routes(routes!(sync_port))
}

fn seal(state: &AppState, secret: &str) -> SecretRecord {
    state.keyring.seal(SecretId::generate(), &Plaintext(secret.as_bytes().to_vec()))
}

// ---- physical networks ----

fn check_physical_network(r: &PhysicalNetworkCreate) -> ApiResult<u32> {
    let (lo, hi) = r.kind.segment_limits();
    let [a, b] = r.segment_range;
    if a < lo || b > hi || a > b {
        return Err(ApiError::field(
            "/segment_range",
            format!("[{a}, {b}] is not a range within {lo}–{hi} for {}", r.kind.as_str()),
        ));
    }
    match (r.kind, r.provisioning_segment) {
        (FabricKind::Ethernet, None) => {
            return Err(ApiError::field(
                "/provisioning_segment",
                "an ethernet physical network needs the VLAN its ports sit on while machines deploy or are cleaned",
            ));
        }
        (FabricKind::Ethernet, Some(p)) if !(1..=4094).contains(&p) || (a..=b).contains(&p) => {
            return Err(ApiError::field(
                "/provisioning_segment",
                format!("{p}: a VLAN 1–4094 outside segment_range [{a}, {b}] (projects must never get it)"),
            ));
        }
        (FabricKind::Infiniband, Some(_)) => {
            return Err(ApiError::field(
                "/provisioning_segment",
                "InfiniBand ports are not switch-programmed; leave it out",
            ));
        }
        _ => {}
    }
    let mtu = r.mtu.unwrap_or(match r.kind {
        FabricKind::Ethernet => 1500,
        FabricKind::Infiniband => 2044,
    });
    if !(68..=65520).contains(&mtu) {
        return Err(ApiError::field("/mtu", format!("{mtu}: an MTU 68–65520")));
    }
    Ok(mtu)
}

/// Physical networks (everyone may read them: projects pick one for a network).
#[utoipa::path(get, path = "/v1/physical-networks", tag = "fabric", params(ListQuery), responses((status = 200, body = Page<PhysicalNetwork>), (status = "4XX", body = Problem)))]
async fn list_physical_networks(
    State(state): State<AppState>,
    _p: Principal,
    Query(q): Query<ListQuery>,
) -> ApiResult<axum::Json<Page<PhysicalNetwork>>> {
    Ok(axum::Json(state.store.list_physical_networks(&list_params(&q)?).await?))
}

/// Add a physical network (site admins).
#[utoipa::path(post, path = "/v1/physical-networks", tag = "fabric", request_body = PhysicalNetworkCreate, params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe create")), responses((status = 201, body = PhysicalNetwork), (status = "4XX", body = Problem)))]
async fn create_physical_network(
    State(state): State<AppState>,
    p: Principal,
    key: IdempotencyKey,
    body: Body<PhysicalNetworkCreate>,
) -> ApiResult<Response> {
    p.require_admin()?;
    let r = body.value;
    check_name("/name", &r.name)?;
    check_description("/description", &r.description)?;
    let mtu = check_physical_network(&r)?;
    idempotent(&state, &p, key, "POST /v1/physical-networks", &body.digest, async {
        let x = state
            .store
            .create_physical_network(
                &p.actor(),
                NewPhysicalNetwork {
                    name: r.name,
                    description: r.description,
                    kind: r.kind,
                    segment_range: r.segment_range,
                    provisioning_segment: r.provisioning_segment,
                    mtu,
                },
            )
            .await?;
        let rev = x.revision;
        Ok((StatusCode::CREATED, x, Some(rev)))
    })
    .await
}

/// A physical network.
#[utoipa::path(get, path = "/v1/physical-networks/{physical_network}", tag = "fabric", params(("physical_network" = String, Path)), responses((status = 200, body = PhysicalNetwork), (status = "4XX", body = Problem)))]
async fn get_physical_network(
    State(state): State<AppState>,
    _p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let x = state.store.physical_network(path_id::<PhysicalNetworkId>("physical network", &id)?).await?;
    Ok(json(StatusCode::OK, &x, Some(x.revision)))
}

/// Change a physical network's description (site admins).
#[utoipa::path(patch, path = "/v1/physical-networks/{physical_network}", tag = "fabric", request_body = PhysicalNetworkUpdate, params(("physical_network" = String, Path), ("If-Match" = Option<String>, Header, description = "ETag of a GET")), responses((status = 200, body = PhysicalNetwork), (status = "4XX", body = Problem)))]
async fn update_physical_network(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    IfMatch(rev): IfMatch,
    body: Body<PhysicalNetworkUpdate>,
) -> ApiResult<Response> {
    p.require_admin()?;
    if let Some(d) = &body.value.description {
        check_description("/description", d)?;
    }
    let id = path_id::<PhysicalNetworkId>("physical network", &id)?;
    let x = state.store.update_physical_network(&p.actor(), id, body.value.description, rev).await?;
    Ok(json(StatusCode::OK, &x, Some(x.revision)))
}

/// Delete a physical network without switches or networks (site admins).
#[utoipa::path(delete, path = "/v1/physical-networks/{physical_network}", tag = "fabric", params(("physical_network" = String, Path)), responses((status = 204), (status = "4XX", body = Problem)))]
async fn delete_physical_network(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    p.require_admin()?;
    let id = path_id::<PhysicalNetworkId>("physical network", &id)?;
    state.store.delete_physical_network(&p.actor(), id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---- switches ----

fn check_address(a: &str) -> ApiResult<()> {
    let ok = a.rsplit_once(':').is_some_and(|(h, port)| {
        !h.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) && !h.chars().any(|c| c.is_whitespace() || c == '/')
    });
    if ok {
        Ok(())
    } else {
        Err(ApiError::field("/address", format!("{a:?}: give HOST:PORT of its SSH server, e.g. \"10.0.0.2:22\"")))
    }
}

fn check_host_key(k: &str) -> ApiResult<()> {
    let ok = k
        .strip_prefix("SHA256:")
        .is_some_and(|b| b.len() == 43 && b.chars().all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::field(
            "/host_key",
            "the host key's fingerprint as `ssh-keygen -lf KEY.pub` prints it: SHA256: and 43 base64 characters",
        ))
    }
}

fn check_private_key(k: &str) -> ApiResult<()> {
    if k.trim_start().starts_with("-----BEGIN ") && k.contains("PRIVATE KEY-----") {
        Ok(())
    } else {
        Err(ApiError::field(
            "/private_key",
            "an unencrypted private key in OpenSSH or PEM form (-----BEGIN … PRIVATE KEY-----)",
        ))
    }
}

fn check_limits(max_sessions: Option<u32>, min_interval_ms: Option<u32>) -> ApiResult<()> {
    if max_sessions.is_some_and(|m| !(1..=64).contains(&m)) {
        return Err(ApiError::field("/max_sessions", "1–64 sessions at once"));
    }
    if min_interval_ms.is_some_and(|m| m > 600_000) {
        return Err(ApiError::field("/min_interval_ms", "at most 600000 (10 minutes)"));
    }
    Ok(())
}

fn check_dialect(d: &str) -> ApiResult<()> {
    let names = crate::fabric::dialect_names();
    if names.iter().any(|n| n == d) {
        Ok(())
    } else {
        Err(ApiError::field("/dialect", format!("{d:?} is not a dialect tundrad speaks; one of {}", names.join(", "))))
    }
}

/// Switches (site admins).
#[utoipa::path(get, path = "/v1/switches", tag = "fabric", params(ListQuery), responses((status = 200, body = Page<Switch>), (status = "4XX", body = Problem)))]
async fn list_switches(
    State(state): State<AppState>,
    p: Principal,
    Query(q): Query<ListQuery>,
) -> ApiResult<axum::Json<Page<Switch>>> {
    p.require_admin()?;
    Ok(axum::Json(state.store.list_switches(&list_params(&q)?).await?))
}

/// Add a switch tundrad programs (site admins). Its password or key is
/// sealed at rest and never returned; its host key is pinned.
#[utoipa::path(post, path = "/v1/switches", tag = "fabric", request_body = SwitchCreate, params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe create")), responses((status = 201, body = Switch), (status = "4XX", body = Problem)))]
async fn create_switch(
    State(state): State<AppState>,
    p: Principal,
    key: IdempotencyKey,
    body: Body<SwitchCreate>,
) -> ApiResult<Response> {
    p.require_admin()?;
    let r = body.value;
    check_name("/name", &r.name)?;
    check_description("/description", &r.description)?;
    check_dialect(&r.dialect)?;
    check_address(&r.address)?;
    if r.username.is_empty() || r.username.len() > 64 {
        return Err(ApiError::field("/username", "1–64 characters"));
    }
    match (&r.password, &r.private_key) {
        (None, None) => return Err(ApiError::field("/password", "give a password or a private_key to log in with")),
        (_, Some(k)) => check_private_key(k)?,
        _ => {}
    }
    check_host_key(&r.host_key)?;
    check_limits(r.max_sessions, r.min_interval_ms)?;
    let pn = state.store.physical_network(r.physical_network_id).await.map_err(|_| {
        ApiError::field("/physical_network_id", format!("no physical network {}", r.physical_network_id))
    })?;
    if pn.kind != FabricKind::Ethernet {
        return Err(ApiError::field(
            "/physical_network_id",
            format!("{} is InfiniBand: its switches are not programmed", pn.name),
        ));
    }
    idempotent(&state, &p, key, "POST /v1/switches", &body.digest, async {
        let x = state
            .store
            .create_switch(
                &p.actor(),
                NewSwitch {
                    name: r.name,
                    description: r.description,
                    physical_network_id: pn.id,
                    dialect: r.dialect,
                    address: r.address,
                    username: r.username,
                    password: r.password.as_deref().map(|s| seal(&state, s)),
                    private_key: r.private_key.as_deref().map(|s| seal(&state, s)),
                    host_key: r.host_key,
                    max_sessions: r.max_sessions.unwrap_or(1),
                    min_interval_ms: r.min_interval_ms.unwrap_or(0),
                },
            )
            .await?;
        state.fabric.changed.notify_one();
        let rev = x.revision;
        Ok((StatusCode::CREATED, x, Some(rev)))
    })
    .await
}

async fn find_switch(state: &AppState, p: &Principal, id: &str) -> ApiResult<Switch> {
    p.require_admin()?;
    Ok(state.store.switch(path_id::<SwitchId>("switch", id)?).await?)
}

/// A switch (site admins).
#[utoipa::path(get, path = "/v1/switches/{switch}", tag = "fabric", params(("switch" = String, Path)), responses((status = 200, body = Switch), (status = "4XX", body = Problem)))]
async fn get_switch(State(state): State<AppState>, p: Principal, Path(id): Path<String>) -> ApiResult<Response> {
    let x = find_switch(&state, &p, &id).await?;
    Ok(json(StatusCode::OK, &x, Some(x.revision)))
}

/// Change a switch (site admins): credentials are replaced when given.
#[utoipa::path(patch, path = "/v1/switches/{switch}", tag = "fabric", request_body = SwitchUpdate, params(("switch" = String, Path), ("If-Match" = Option<String>, Header, description = "ETag of a GET")), responses((status = 200, body = Switch), (status = "4XX", body = Problem)))]
async fn update_switch(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    IfMatch(rev): IfMatch,
    body: Body<SwitchUpdate>,
) -> ApiResult<Response> {
    let cur = find_switch(&state, &p, &id).await?;
    let r = body.value;
    if let Some(d) = &r.description {
        check_description("/description", d)?;
    }
    if let Some(a) = &r.address {
        check_address(a)?;
    }
    if let Some(k) = &r.host_key {
        check_host_key(k)?;
    }
    if let Some(k) = &r.private_key {
        check_private_key(k)?;
    }
    if r.username.as_ref().is_some_and(|u| u.is_empty() || u.len() > 64) {
        return Err(ApiError::field("/username", "1–64 characters"));
    }
    check_limits(r.max_sessions, r.min_interval_ms)?;
    let c = SwitchChanges {
        description: r.description,
        address: r.address,
        username: r.username,
        password: r.password.as_deref().map(|s| seal(&state, s)),
        private_key: r.private_key.as_deref().map(|s| seal(&state, s)),
        host_key: r.host_key,
        max_sessions: r.max_sessions,
        min_interval_ms: r.min_interval_ms,
    };
    let x = state.store.update_switch(&p.actor(), cur.id, c, rev).await?;
    state.fabric.changed.notify_one();
    Ok(json(StatusCode::OK, &x, Some(x.revision)))
}

/// Delete a switch no node's port is bound through (site admins).
#[utoipa::path(delete, path = "/v1/switches/{switch}", tag = "fabric", params(("switch" = String, Path)), responses((status = 204), (status = "4XX", body = Problem)))]
async fn delete_switch(State(state): State<AppState>, p: Principal, Path(id): Path<String>) -> ApiResult<Response> {
    let cur = find_switch(&state, &p, &id).await?;
    state.store.delete_switch(&p.actor(), cur.id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Program every drifted or failed port of the switch again (site admins).
#[utoipa::path(post, path = "/v1/switches/{switch}/sync", tag = "fabric", params(("switch" = String, Path)), responses((status = 202, body = SyncStarted), (status = "4XX", body = Problem)))]
async fn sync_switch(State(state): State<AppState>, p: Principal, Path(id): Path<String>) -> ApiResult<Response> {
    let cur = find_switch(&state, &p, &id).await?;
    let ports: Vec<(SwitchId, String)> = state
        .store
        .switch_ports()
        .await?
        .into_iter()
        .filter(|r| r.switch_id == cur.id && matches!(r.state, SwitchPortState::Drifted | SwitchPortState::Failed))
        .map(|r| (r.switch_id, r.port))
        .collect();
    let n = state.store.resync_switch_ports(&p.actor(), &ports).await?;
    state.fabric.changed.notify_one();
    Ok(json(StatusCode::ACCEPTED, &SyncStarted { ports: n }, None))
}

/// The switch's managed ports: desired and actual segment, state (site admins).
#[utoipa::path(get, path = "/v1/switches/{switch}/ports", tag = "fabric", params(("switch" = String, Path)), responses((status = 200, body = Vec<SwitchPortView>), (status = "4XX", body = Problem)))]
async fn switch_ports(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Vec<SwitchPortView>>> {
    let cur = find_switch(&state, &p, &id).await?;
    Ok(axum::Json(
        state
            .store
            .switch_ports()
            .await?
            .into_iter()
            .filter(|r| r.switch_id == cur.id)
            .map(|r| SwitchPortView {
                port: r.port,
                desired_segment: r.desired,
                actual_segment: r.actual,
                state: r.state,
                message: r.message,
                checked_at: r.checked_at,
                changed_at: r.changed_at,
            })
            .collect(),
    ))
}

// ---- networks ----

/// Networks of your projects, and shared ones.
#[utoipa::path(get, path = "/v1/networks", tag = "fabric", params(ListQuery), responses((status = 200, body = Page<Network>), (status = "4XX", body = Problem)))]
async fn list_networks(
    State(state): State<AppState>,
    p: Principal,
    Query(q): Query<ListQuery>,
) -> ApiResult<axum::Json<Page<Network>>> {
    let v = p.list_filter(&state.store, q.project.as_deref()).await?;
    Ok(axum::Json(state.store.list_networks(&list_params(&q)?, &v).await?))
}

/// Make a network: the next free segment of the physical network (site
/// admins may name one, or make it flat, or shared by leaving out `project_id`).
#[utoipa::path(post, path = "/v1/networks", tag = "fabric", request_body = NetworkCreate, params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe create")), responses((status = 201, body = Network), (status = "4XX", body = Problem)))]
async fn create_network(
    State(state): State<AppState>,
    p: Principal,
    key: IdempotencyKey,
    body: Body<NetworkCreate>,
) -> ApiResult<Response> {
    let r = body.value;
    match r.project_id {
        Some(pid) => {
            p.require(pid, Role::Member, "project", &pid.to_string())?;
        }
        None => p
            .require_admin()
            .map_err(|_| ApiError::field("/project_id", "only site admins make shared networks; name your project"))?,
    }
    check_name("/name", &r.name)?;
    check_description("/description", &r.description)?;
    let pn = state.store.physical_network(r.physical_network_id).await.map_err(|_| {
        ApiError::field("/physical_network_id", format!("no physical network {}", r.physical_network_id))
    })?;
    let segment = match (r.segment, r.flat) {
        (Some(_), true) => return Err(ApiError::field("/flat", "a flat network has no segment; leave one out")),
        (None, false) => SegmentChoice::Next,
        (s, flat) => {
            if !p.is_admin() {
                return Err(ApiError::field(
                    if flat { "/flat" } else { "/segment" },
                    "only site admins choose segments; leave it out to get the next free one",
                ));
            }
            match s {
                Some(s) => {
                    let (lo, hi) = pn.kind.segment_limits();
                    if !(lo..=hi).contains(&s) || Some(s) == pn.provisioning_segment {
                        return Err(ApiError::field(
                            "/segment",
                            format!("{s}: a segment {lo}–{hi}, not the provisioning segment"),
                        ));
                    }
                    SegmentChoice::Exactly(s)
                }
                None => SegmentChoice::Flat,
            }
        }
    };
    if let Some(m) = r.mtu
        && !(68..=pn.mtu).contains(&m)
    {
        return Err(ApiError::field("/mtu", format!("{m}: 68 up to the physical network's {}", pn.mtu)));
    }
    idempotent(&state, &p, key, "POST /v1/networks", &body.digest, async {
        let x = state
            .store
            .create_network(
                &p.actor(),
                NewNetwork {
                    project_id: r.project_id,
                    name: r.name,
                    description: r.description,
                    physical_network_id: pn.id,
                    segment,
                    mtu: r.mtu,
                },
            )
            .await?;
        let rev = x.revision;
        Ok((StatusCode::CREATED, x, Some(rev)))
    })
    .await
}

/// A network the caller may see (its project's, or shared) with `min` role
/// (writes to shared networks are site admins').
async fn find_network(state: &AppState, p: &Principal, id: &str, min: Role) -> ApiResult<Network> {
    let n = state.store.network(path_id::<NetworkId>("network", id)?).await?;
    require_shared(p, n.project_id, min, "network", id)?;
    Ok(n)
}

/// `min` role on an object of a project — or, for a shared one (no
/// project), anyone reads and site admins change it.
fn require_shared(p: &Principal, project: Option<ProjectId>, min: Role, noun: &'static str, id: &str) -> ApiResult<()> {
    match project {
        Some(pid) => p.require(pid, min, noun, id).map(|_| ()),
        None if min != Role::Reader => p.require_admin(),
        None => Ok(()),
    }
}

/// A network.
#[utoipa::path(get, path = "/v1/networks/{network}", tag = "fabric", params(("network" = String, Path)), responses((status = 200, body = Network), (status = "4XX", body = Problem)))]
async fn get_network(State(state): State<AppState>, p: Principal, Path(id): Path<String>) -> ApiResult<Response> {
    let x = find_network(&state, &p, &id, Role::Reader).await?;
    Ok(json(StatusCode::OK, &x, Some(x.revision)))
}

/// Rename a network or change its description.
#[utoipa::path(patch, path = "/v1/networks/{network}", tag = "fabric", request_body = NetworkUpdate, params(("network" = String, Path), ("If-Match" = Option<String>, Header, description = "ETag of a GET")), responses((status = 200, body = Network), (status = "4XX", body = Problem)))]
async fn update_network(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    IfMatch(rev): IfMatch,
    body: Body<NetworkUpdate>,
) -> ApiResult<Response> {
    let cur = find_network(&state, &p, &id, Role::Member).await?;
    if let Some(n) = &body.value.name {
        check_name("/name", n)?;
    }
    if let Some(d) = &body.value.description {
        check_description("/description", d)?;
    }
    let x = state.store.update_network(&p.actor(), cur.id, body.value.name, body.value.description, rev).await?;
    Ok(json(StatusCode::OK, &x, Some(x.revision)))
}

/// Delete a network without ports (its subnets go with it; its segment is free again).
#[utoipa::path(delete, path = "/v1/networks/{network}", tag = "fabric", params(("network" = String, Path)), responses((status = 204), (status = "4XX", body = Problem)))]
async fn delete_network(State(state): State<AppState>, p: Principal, Path(id): Path<String>) -> ApiResult<Response> {
    let cur = find_network(&state, &p, &id, Role::Member).await?;
    state.store.delete_network(&p.actor(), cur.id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---- subnets ----

/// `a.b.c.d/p` → (network, prefix), the network address exact.
fn parse_cidr(pointer: &str, s: &str) -> ApiResult<(u32, u8)> {
    let bad = || ApiError::field(pointer, format!("{s:?} is not an IPv4 CIDR like \"10.1.0.0/24\" (prefix 8–30)"));
    let (a, p) = s.split_once('/').ok_or_else(bad)?;
    let a: Ipv4Addr = a.parse().map_err(|_| bad())?;
    let p: u8 = p.parse().map_err(|_| bad())?;
    if !(8..=30).contains(&p) {
        return Err(bad());
    }
    let mask = u32::MAX << (32 - p);
    if u32::from(a) & !mask != 0 {
        return Err(ApiError::field(
            pointer,
            format!("{s}: host bits are set; the network is {}/{p}", Ipv4Addr::from(u32::from(a) & mask)),
        ));
    }
    Ok((u32::from(a), p))
}

fn parse_ip(pointer: &str, s: &str) -> ApiResult<u32> {
    s.parse::<Ipv4Addr>().map(u32::from).map_err(|_| ApiError::field(pointer, format!("{s:?} is not an IPv4 address")))
}

/// The subnet's pools: given ones checked, else the whole range but the
/// gateway.
fn pools(r: &SubnetCreate, net: u32, prefix: u8, gateway: Option<u32>) -> ApiResult<Vec<AllocationPool>> {
    let (first, last) = (net + 1, net + ((1u32 << (32 - prefix)) - 2));
    let inside = |v: u32| (first..=last).contains(&v);
    if r.allocation_pools.is_empty() {
        let ranges: Vec<(u32, u32)> = match gateway {
            Some(g) if g == first => vec![(first + 1, last)],
            Some(g) if g == last => vec![(first, last - 1)],
            Some(g) => vec![(first, g - 1), (g + 1, last)],
            None => vec![(first, last)],
        };
        return Ok(ranges
            .into_iter()
            .map(|(a, b)| AllocationPool { start: Ipv4Addr::from(a).to_string(), end: Ipv4Addr::from(b).to_string() })
            .collect());
    }
    let mut seen: Vec<(u32, u32)> = Vec::new();
    for (i, p) in r.allocation_pools.iter().enumerate() {
        let a = parse_ip(&format!("/allocation_pools/{i}/start"), &p.start)?;
        let b = parse_ip(&format!("/allocation_pools/{i}/end"), &p.end)?;
        if !inside(a) || !inside(b) || a > b {
            return Err(ApiError::field(
                &format!("/allocation_pools/{i}"),
                format!("{}–{}: a range of host addresses of {}", p.start, p.end, r.cidr),
            ));
        }
        if gateway.is_some_and(|g| (a..=b).contains(&g)) {
            return Err(ApiError::field(&format!("/allocation_pools/{i}"), "contains the gateway"));
        }
        if seen.iter().any(|(x, y)| a <= *y && *x <= b) {
            return Err(ApiError::field(&format!("/allocation_pools/{i}"), "overlaps another pool"));
        }
        seen.push((a, b));
    }
    Ok(r.allocation_pools.clone())
}

/// Subnets of your projects' networks, and of shared ones.
#[utoipa::path(get, path = "/v1/subnets", tag = "fabric", params(ListQuery), responses((status = 200, body = Page<Subnet>), (status = "4XX", body = Problem)))]
async fn list_subnets(
    State(state): State<AppState>,
    p: Principal,
    Query(q): Query<ListQuery>,
) -> ApiResult<axum::Json<Page<Subnet>>> {
    let v = p.list_filter(&state.store, q.project.as_deref()).await?;
    Ok(axum::Json(state.store.list_subnets(&list_params(&q)?, &v).await?))
}

/// Add an IPv4 subnet to a network: its ports get addresses from the pools.
#[utoipa::path(post, path = "/v1/subnets", tag = "fabric", request_body = SubnetCreate, params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe create")), responses((status = 201, body = Subnet), (status = "4XX", body = Problem)))]
async fn create_subnet(
    State(state): State<AppState>,
    p: Principal,
    key: IdempotencyKey,
    body: Body<SubnetCreate>,
) -> ApiResult<Response> {
    let r = body.value;
    // Someone else's network is not found (404), as on every route.
    let net = find_network(&state, &p, &r.network_id.to_string(), Role::Member).await?;
    check_name("/name", &r.name)?;
    check_description("/description", &r.description)?;
    let (base, prefix) = parse_cidr("/cidr", &r.cidr)?;
    let mask = u32::MAX << (32 - prefix);
    let gateway = match &r.gateway {
        Some(g) => {
            let v = parse_ip("/gateway", g)?;
            if v & mask != base || v == base || v == base | !mask {
                return Err(ApiError::field("/gateway", format!("{g} is not a host address of {}", r.cidr)));
            }
            Some(v)
        }
        None => None,
    };
    if r.dns.len() > 8 {
        return Err(ApiError::field("/dns", "at most 8 servers"));
    }
    for (i, d) in r.dns.iter().enumerate() {
        parse_ip(&format!("/dns/{i}"), d)?;
    }
    if r.dhcp && net.kind == FabricKind::Infiniband {
        return Err(ApiError::field(
            "/dhcp",
            "InfiniBand has no DHCP: addresses go to the config drive; leave dhcp off",
        ));
    }
    for other in state.store.subnets_of(net.id).await? {
        if let Ok((b, q)) = parse_cidr("/cidr", &other.cidr) {
            let m = u32::MAX << (32 - prefix.min(q));
            if b & m == base & m {
                return Err(ApiError::field(
                    "/cidr",
                    format!("{} overlaps subnet {} ({})", r.cidr, other.name, other.cidr),
                ));
            }
        }
    }
    let allocation_pools = pools(&r, base, prefix, gateway)?;
    idempotent(&state, &p, key, "POST /v1/subnets", &body.digest, async {
        let x = state
            .store
            .create_subnet(
                &p.actor(),
                NewSubnet {
                    network_id: net.id,
                    name: r.name,
                    description: r.description,
                    cidr: r.cidr,
                    gateway: r.gateway,
                    dns: r.dns,
                    allocation_pools,
                    dhcp: r.dhcp,
                },
            )
            .await?;
        let rev = x.revision;
        Ok((StatusCode::CREATED, x, Some(rev)))
    })
    .await
}

async fn find_subnet(state: &AppState, p: &Principal, id: &str, min: Role) -> ApiResult<Subnet> {
    let s = state.store.subnet(path_id::<SubnetId>("subnet", id)?).await?;
    require_shared(p, s.project_id, min, "subnet", id)?;
    Ok(s)
}

/// A subnet.
#[utoipa::path(get, path = "/v1/subnets/{subnet}", tag = "fabric", params(("subnet" = String, Path)), responses((status = 200, body = Subnet), (status = "4XX", body = Problem)))]
async fn get_subnet(State(state): State<AppState>, p: Principal, Path(id): Path<String>) -> ApiResult<Response> {
    let x = find_subnet(&state, &p, &id, Role::Reader).await?;
    Ok(json(StatusCode::OK, &x, Some(x.revision)))
}

/// Rename a subnet, change its description or DNS servers.
#[utoipa::path(patch, path = "/v1/subnets/{subnet}", tag = "fabric", request_body = SubnetUpdate, params(("subnet" = String, Path), ("If-Match" = Option<String>, Header, description = "ETag of a GET")), responses((status = 200, body = Subnet), (status = "4XX", body = Problem)))]
async fn update_subnet(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    IfMatch(rev): IfMatch,
    body: Body<SubnetUpdate>,
) -> ApiResult<Response> {
    let cur = find_subnet(&state, &p, &id, Role::Member).await?;
    let r = body.value;
    if let Some(n) = &r.name {
        check_name("/name", n)?;
    }
    if let Some(d) = &r.description {
        check_description("/description", d)?;
    }
    if let Some(dns) = &r.dns {
        if dns.len() > 8 {
            return Err(ApiError::field("/dns", "at most 8 servers"));
        }
        for (i, d) in dns.iter().enumerate() {
            parse_ip(&format!("/dns/{i}"), d)?;
        }
    }
    let x = state.store.update_subnet(&p.actor(), cur.id, r.name, r.description, r.dns, rev).await?;
    Ok(json(StatusCode::OK, &x, Some(x.revision)))
}

/// Delete a subnet no port holds an address of.
#[utoipa::path(delete, path = "/v1/subnets/{subnet}", tag = "fabric", params(("subnet" = String, Path)), responses((status = 204), (status = "4XX", body = Problem)))]
async fn delete_subnet(State(state): State<AppState>, p: Principal, Path(id): Path<String>) -> ApiResult<Response> {
    let cur = find_subnet(&state, &p, &id, Role::Member).await?;
    state.store.delete_subnet(&p.actor(), cur.id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---- ports ----

/// Ports of your projects.
#[utoipa::path(get, path = "/v1/ports", tag = "fabric", params(ListQuery), responses((status = 200, body = Page<Port>), (status = "4XX", body = Problem)))]
async fn list_ports(
    State(state): State<AppState>,
    p: Principal,
    Query(q): Query<ListQuery>,
) -> ApiResult<axum::Json<Page<Port>>> {
    let v = p.list_filter(&state.store, q.project.as_deref()).await?;
    let mut page = state.store.list_ports(&list_params(&q)?, &v).await?;
    page.items = page.items.into_iter().map(|x| port_view(&p, x)).collect();
    Ok(axum::Json(page))
}

/// Make a port on a network (addresses from its subnets); a node uses it
/// through its `networks`.
#[utoipa::path(post, path = "/v1/ports", tag = "fabric", request_body = PortCreate, params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe create")), responses((status = 201, body = Port), (status = "4XX", body = Problem)))]
async fn create_port(
    State(state): State<AppState>,
    p: Principal,
    key: IdempotencyKey,
    body: Body<PortCreate>,
) -> ApiResult<Response> {
    let r = body.value;
    p.require(r.project_id, Role::Member, "project", &r.project_id.to_string())?;
    check_name("/name", &r.name)?;
    check_description("/description", &r.description)?;
    let net = state.store.network(r.network_id).await.ok().filter(|n| n.project_id.is_none_or(|x| x == r.project_id));
    let net =
        net.ok_or_else(|| ApiError::field("/network_id", format!("no network {} the project may use", r.network_id)))?;
    if let Some(ips) = &r.fixed_ips {
        for (i, f) in ips.iter().enumerate() {
            let s = state.store.subnet(f.subnet_id).await.ok().filter(|s| s.network_id == net.id).ok_or_else(|| {
                ApiError::field(
                    &format!("/fixed_ips/{i}/subnet_id"),
                    format!("no subnet {} of network {}", f.subnet_id, net.name),
                )
            })?;
            if let Some(a) = &f.address {
                let v = parse_ip(&format!("/fixed_ips/{i}/address"), a)?;
                let (base, prefix) = parse_cidr("/cidr", &s.cidr)?;
                let mask = u32::MAX << (32 - prefix);
                if v & mask != base || v == base || v == base | !mask || s.gateway.as_deref() == Some(a.as_str()) {
                    return Err(ApiError::field(
                        &format!("/fixed_ips/{i}/address"),
                        format!("{a} is not a free host address of {} (not its gateway)", s.cidr),
                    ));
                }
            }
        }
    }
    idempotent(&state, &p, key, "POST /v1/ports", &body.digest, async {
        let x = state
            .store
            .create_port(
                &p.actor(),
                NewPort {
                    project_id: r.project_id,
                    network_id: net.id,
                    name: r.name,
                    description: r.description,
                    fixed_ips: r.fixed_ips.map(|v| {
                        v.into_iter().map(|f| FixedIp { subnet_id: f.subnet_id, address: f.address }).collect()
                    }),
                },
            )
            .await?;
        let rev = x.revision;
        Ok((StatusCode::CREATED, x, Some(rev)))
    })
    .await
}

/// A port as the caller may see it: its switch details only for site admins.
fn port_view(p: &Principal, x: Port) -> Port {
    if p.is_admin() { x } else { tundra_store::redact_port(x) }
}

async fn find_port(state: &AppState, p: &Principal, id: &str, min: Role) -> ApiResult<Port> {
    let x = state.store.port(path_id::<PortId>("port", id)?).await?;
    p.require(x.project_id, min, "port", id)?;
    Ok(x)
}

/// A port, with its binding and drift.
#[utoipa::path(get, path = "/v1/ports/{port}", tag = "fabric", params(("port" = String, Path)), responses((status = 200, body = Port), (status = "4XX", body = Problem)))]
async fn get_port(State(state): State<AppState>, p: Principal, Path(id): Path<String>) -> ApiResult<Response> {
    let x = find_port(&state, &p, &id, Role::Reader).await?;
    let rev = x.revision;
    Ok(json(StatusCode::OK, &port_view(&p, x), Some(rev)))
}

/// Rename a port or change its description.
#[utoipa::path(patch, path = "/v1/ports/{port}", tag = "fabric", request_body = PortUpdate, params(("port" = String, Path), ("If-Match" = Option<String>, Header, description = "ETag of a GET")), responses((status = 200, body = Port), (status = "4XX", body = Problem)))]
async fn update_port(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    IfMatch(rev): IfMatch,
    body: Body<PortUpdate>,
) -> ApiResult<Response> {
    let cur = find_port(&state, &p, &id, Role::Member).await?;
    if let Some(n) = &body.value.name {
        check_name("/name", n)?;
    }
    if let Some(d) = &body.value.description {
        check_description("/description", d)?;
    }
    let x = state.store.update_port(&p.actor(), cur.id, body.value.name, body.value.description, rev).await?;
    let rev = x.revision;
    Ok(json(StatusCode::OK, &port_view(&p, x), Some(rev)))
}

/// Delete a port no node uses.
#[utoipa::path(delete, path = "/v1/ports/{port}", tag = "fabric", params(("port" = String, Path)), responses((status = 204), (status = "4XX", body = Problem)))]
async fn delete_port(State(state): State<AppState>, p: Principal, Path(id): Path<String>) -> ApiResult<Response> {
    let cur = find_port(&state, &p, &id, Role::Member).await?;
    state.store.delete_port(&p.actor(), cur.id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Program the port's switch port again (repairs drift, retries a failure).
#[utoipa::path(post, path = "/v1/ports/{port}/sync", tag = "fabric", params(("port" = String, Path)), responses((status = 202, body = SyncStarted), (status = "4XX", body = Problem)))]
async fn sync_port(State(state): State<AppState>, p: Principal, Path(id): Path<String>) -> ApiResult<Response> {
    let cur = find_port(&state, &p, &id, Role::Member).await?;
    let ports: Vec<(SwitchId, String)> = match (cur.node_id, &cur.binding) {
        (Some(_), Some(_)) => {
            let raw = state.store.port_switch(cur.id).await?;
            raw.into_iter().collect()
        }
        _ => Vec::new(),
    };
    let n = state.store.resync_switch_ports(&p.actor(), &ports).await?;
    state.fabric.changed.notify_one();
    Ok(json(StatusCode::ACCEPTED, &SyncStarted { ports: n }, None))
}
