//! The dashboard's pages: each reads the store as the signed-in principal
//! may (the same checks as the API's handlers) and renders a template.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Serialize;
use serde_json::{Value, json};
use tundra_api::identity::Role;
use tundra_api::machines::{Machine, ProvisionState};
use tundra_api::ops::Operation;
use tundra_conductor::machines::actions::{self, Action};
use tundra_store::{ListParams, MachineChanges, MachineFilter, MachinePlace, Visibility};

use super::render::{Form, Viewer, age, api_error, error_page};
use crate::error::ApiError;
use crate::state::AppState;

/// States that hold a machine until an operator acts (the failure queue).
const FAILED: [&str; 7] =
    ["clean_failed", "inspect_failed", "deploy_failed", "adopt_failed", "rescue_failed", "unrescue_failed", "error"];
/// States of a machine given to a node (or on its way there or back).
const ALLOCATED: [&str; 4] = ["deploying", "deploy_wait", "active", "deleting"];
const PAGE: u32 = 50;

/// The first 500 of a list: the small site-wide lists (projects, switches,
/// a project's objects) a page shows whole.
fn first_500() -> ListParams {
    ListParams { limit: 500, after: None, name: None }
}

type Page = Result<Response, Response>;

fn done(r: Page) -> Response {
    r.unwrap_or_else(|e| e)
}

fn query(raw: &Option<String>) -> HashMap<String, String> {
    form_urlencoded::parse(raw.as_deref().unwrap_or("").as_bytes())
        .into_owned()
        .filter(|(_, v)| !v.is_empty())
        .collect()
}

fn machine_row(m: &Machine) -> Value {
    json!({
        "id": m.id, "name": m.name, "state": m.provision_state.as_str(), "power": m.power_state,
        "maintenance": m.maintenance, "class": m.resource_class, "rack": m.location.rack, "island": m.location.island,
        "bmc": m.bmc.address, "reason": m.last_error.clone().or(m.maintenance_reason.clone()),
        "maintenance_reason": m.maintenance_reason, "maintenance_by": m.maintenance_by, "last_error": m.last_error,
        "age": age(&m.updated_at), "updated_at": m.updated_at,
    })
}

fn op_row(o: &Operation) -> Value {
    let pct = o.progress_total.filter(|t| *t > 0).map(|t| o.progress_done.clamp(0, t) * 100 / t);
    json!({
        "id": o.id, "kind": o.kind, "target_type": o.target_type, "target_id": o.target_id, "state": o.state.as_str(),
        "message": o.message, "error": o.error, "percent": pct, "created_by": o.created_by, "age": age(&o.updated_at),
        "attempts": o.attempts,
    })
}

pub async fn overview(v: Viewer, State(state): State<AppState>) -> Response {
    done(overview_page(&v, &state).await)
}

async fn overview_page(v: &Viewer, state: &AppState) -> Page {
    let store = state.store();
    let e = api_error;
    let projects = visible_projects(v, state).await?;
    if !v.p.is_admin() {
        return Ok(v.render("Overview", "overview.html", json!({"admin": false, "projects": projects})));
    }
    let counts = store.machine_state_counts().await.map_err(|x| e(x.into()))?;
    let total: i64 = counts.iter().map(|c| c.1).sum();
    let maintenance: i64 = counts.iter().map(|c| c.2).sum();
    let counts: Vec<Value> = counts
        .iter()
        .map(|(s, n, m)| json!({"state": s, "count": n, "maintenance": m, "failed": FAILED.contains(&s.as_str())}))
        .collect();
    let queue = store.machines_needing_attention(&FAILED, 100).await.map_err(|x| e(x.into()))?;
    let queue: Vec<Value> = queue.iter().map(machine_row).collect();
    let ops = store.recent_operations(&Visibility::All, 200).await.map_err(|x| e(x.into()))?;
    let running = ops.iter().filter(|o| !o.state.is_terminal()).count();
    let replicas = replicas(state).await?;
    Ok(v.render(
        "Overview",
        "overview.html",
        json!({"admin": true, "counts": counts, "total": total, "maintenance": maintenance, "queue": queue,
               "running": running, "projects": projects, "replicas": replicas}),
    ))
}

/// The replicas that run now, by their heartbeats: since when, what each
/// runs (loops and provisioning networks, by their leases), how many
/// operations it holds, and which one answered.
async fn replicas(state: &AppState) -> Result<Vec<Value>, Response> {
    let store = state.store();
    let e = |x: tundra_store::StoreError| api_error(x.into());
    let live = store.live_replicas().await.map_err(e)?;
    let loops = store.lease_holders().await.map_err(e)?;
    let ops: BTreeMap<String, i64> = store.operations_by_owner().await.map_err(e)?.into_iter().collect();
    let now = tundra_store::now();
    let me = state.conductor.replica();
    Ok(live
        .iter()
        .map(|r| {
            let runs: Vec<&str> =
                loops.iter().filter(|l| l.owner == r.owner && l.expires_at > now).map(|l| l.name.as_str()).collect();
            json!({"name": r.owner, "since": age(&r.acquired_at), "runs": runs,
                   "operations": ops.get(&r.owner).copied().unwrap_or(0), "here": r.owner == me})
        })
        .collect())
}

/// The projects the viewer has a role in (all, for site admins), with node counts.
async fn visible_projects(v: &Viewer, state: &AppState) -> Result<Vec<Value>, Response> {
    let store = state.store();
    let only: Option<Vec<tundra_api::ProjectId>> = match v.p.visibility() {
        Visibility::All => None,
        Visibility::Projects(ps) => Some(ps),
        Visibility::Project(p) => Some(vec![p]),
        Visibility::PublicOnly => Some(vec![]),
    };
    let params = first_500();
    let projects = store.list_projects(&params, only.as_deref()).await.map_err(|x| api_error(x.into()))?;
    let mut out = Vec::new();
    for p in projects.items {
        let nodes =
            store.list_nodes(&first_500(), &Visibility::Project(p.id)).await.map_err(|x| api_error(x.into()))?;
        let mut by: BTreeMap<&str, usize> = BTreeMap::new();
        for n in &nodes.items {
            *by.entry(n.status.as_str()).or_default() += 1;
        }
        out.push(json!({"id": p.id, "name": p.name, "nodes": nodes.items.len(), "by_status": by}));
    }
    Ok(out)
}

pub async fn machines(v: Viewer, State(state): State<AppState>, RawQuery(raw): RawQuery) -> Response {
    done(machines_page(&v, &state, &raw).await)
}

async fn machines_page(v: &Viewer, state: &AppState, raw: &Option<String>) -> Page {
    v.require_admin()?;
    let q = query(raw);
    let get = |k: &str| q.get(k).cloned();
    let provision_state = match get("state") {
        Some(s) => Some(ProvisionState::parse(&s).ok_or_else(|| {
            error_page(StatusCode::BAD_REQUEST, &format!("{s:?} is not a provision state; pick one from the list"))
        })?),
        None => None,
    };
    let mac = get("mac").map(|m| m.trim().to_ascii_lowercase().replace('-', ":"));
    let filter = MachineFilter {
        provision_state,
        resource_class: get("class"),
        rack: get("rack"),
        island: get("island"),
        bmc_address: get("bmc"),
        mac,
        maintenance: get("maintenance").and_then(|m| m.parse().ok()),
    };
    let params = ListParams { limit: PAGE, after: get("after"), name: get("name") };
    let page = state.store().list_machines(&params, &filter).await.map_err(|x| api_error(x.into()))?;
    let rows: Vec<Value> = page.items.iter().map(machine_row).collect();
    // The next page keeps the filters.
    let next = page.next.map(|n| {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in q.iter().filter(|(k, _)| k.as_str() != "after") {
            s.append_pair(k, v);
        }
        s.append_pair("after", &n);
        format!("/ui/machines?{}", s.finish())
    });
    let states: Vec<&str> = ProvisionState::ALL.iter().map(|s| s.as_str()).collect();
    Ok(v.render(
        "Machines",
        "machines.html",
        json!({"rows": rows, "next": next, "q": q, "states": states, "first": get("after").is_none()}),
    ))
}

pub async fn machine(
    v: Viewer,
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    done(machine_page(&v, &state, &id, &raw).await)
}

async fn machine_page(v: &Viewer, state: &AppState, id: &str, raw: &Option<String>) -> Page {
    v.require_admin()?;
    let store = state.store();
    let m = store.machine(id).await.map_err(|x| api_error(x.into()))?;
    let switches = store.list_switches(&first_500()).await.map_err(|x| api_error(x.into()))?;
    let by_name: HashMap<String, tundra_api::SwitchId> =
        switches.items.iter().map(|s| (s.name.clone(), s.id)).collect();
    let ports = store.switch_ports().await.map_err(|x| api_error(x.into()))?;
    let interfaces: Vec<Value> = m
        .interfaces
        .iter()
        .map(|i| {
            let rec = match (&i.switch, &i.port) {
                (Some(s), Some(p)) => {
                    by_name.get(s).and_then(|sid| ports.iter().find(|r| r.switch_id == *sid && &r.port == p))
                }
                _ => None,
            };
            json!({
                "mac": i.mac, "pxe": i.pxe, "physical_network": i.physical_network, "switch": i.switch, "port": i.port,
                "address": i.address,
                "desired": rec.map(|r| r.desired), "actual": rec.and_then(|r| r.actual),
                "port_state": rec.map(|r| r.state.as_str()),
            })
        })
        .collect();
    let events = store.recent_events("machine", &m.id.to_string(), 30).await.map_err(|x| api_error(x.into()))?;
    let events: Vec<Value> = events
        .iter()
        .map(|e| json!({"at": e.at, "age": age(&e.at), "actor": e.actor, "action": e.action, "detail": e.detail.to_string()}))
        .collect();
    let op = match m.operation_id {
        Some(o) => Some(op_row(&store.operation(o).await.map_err(|x| api_error(x.into()))?)),
        None => None,
    };
    let q = query(raw);
    Ok(v.render(
        &m.name,
        "machine.html",
        json!({"m": machine_row(&m), "interfaces": interfaces, "events": events, "op": op,
               "ok": q.get("ok"), "error": q.get("error"), "csrf": v.csrf()}),
    ))
}

/// What the machine page's buttons may ask.
const ACTIONS: [&str; 9] =
    ["manage", "inspect", "provide", "abort", "power_on", "power_off", "reboot", "maintenance_on", "maintenance_off"];

pub async fn machine_action(
    v: Viewer,
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: String,
) -> Response {
    done(machine_action_run(&v, &state, &id, &body).await)
}

async fn machine_action_run(v: &Viewer, state: &AppState, id: &str, body: &str) -> Page {
    v.require_admin()?;
    let form = Form::parse(body);
    v.check_csrf(&form)?;
    let action = form.get("action").unwrap_or("");
    if !ACTIONS.contains(&action) {
        return Err(error_page(StatusCode::BAD_REQUEST, &format!("unknown action {action:?}; use the page's buttons")));
    }
    let store = state.store();
    let m = store.machine(id).await.map_err(|x| api_error(x.into()))?;
    let back = |key: &str, text: &str| -> Response {
        let msg: String = form_urlencoded::byte_serialize(text.as_bytes()).collect();
        Redirect::to(&format!("/ui/machines/{}?{key}={msg}", m.id)).into_response()
    };
    let result: Result<String, ApiError> = async {
        match action {
            "maintenance_on" | "maintenance_off" => {
                let on = action == "maintenance_on";
                let reason = form.get("reason").filter(|r| !r.trim().is_empty()).unwrap_or("set from the dashboard");
                let changes =
                    MachineChanges { maintenance: Some((on, on.then(|| reason.to_string()))), ..Default::default() };
                store.update_machine(&v.p.actor(), m.id, changes, None).await?;
                Ok(if on {
                    format!("{} is in maintenance: {reason}", m.name)
                } else {
                    format!("{} is out of maintenance", m.name)
                })
            }
            a => {
                let op = actions::start(&state.conductor, &v.p.actor(), &m, Action::parse(a)?, None).await?;
                Ok(format!("{a} started on {}: operation {op}", m.name))
            }
        }
    }
    .await;
    Ok(match result {
        Ok(text) => back("ok", &text),
        Err(e) => back("error", &format!("{action} refused: {}", e.detail())),
    })
}

pub async fn map(v: Viewer, State(state): State<AppState>) -> Response {
    done(map_page(&v, &state).await)
}

async fn map_page(v: &Viewer, state: &AppState) -> Page {
    v.require_admin()?;
    let all = state.store().machine_places().await.map_err(|x| api_error(x.into()))?;
    // island → rack → machines (by name: the store's order).
    let mut islands: BTreeMap<String, BTreeMap<String, Vec<Slot>>> = BTreeMap::new();
    for m in &all {
        let island = m.location.island.clone().unwrap_or_else(|| "(no island)".into());
        let rack = m.location.rack.clone().unwrap_or_else(|| "(no rack)".into());
        let slot =
            Slot { id: m.id.to_string(), name: &m.name, state: m.provision_state.as_str(), maintenance: m.maintenance };
        islands.entry(island).or_default().entry(rack).or_default().push(slot);
    }
    let legend: Vec<&str> = ProvisionState::ALL.iter().map(|s| s.as_str()).collect();
    Ok(v.render("Rack map", "map.html", json!({"islands": islands, "legend": legend})))
}

/// One machine on the rack map.
#[derive(Serialize)]
struct Slot<'a> {
    id: String,
    name: &'a str,
    state: &'static str,
    maintenance: bool,
}

#[derive(Default, Serialize, Clone, Copy)]
struct Cap {
    total: u64,
    free: u64,
    allocated: u64,
    /// Cleaning, failed, in maintenance, not yet provided…
    unavailable: u64,
}

impl Cap {
    fn add(&mut self, m: &MachinePlace) {
        self.total += 1;
        let s = m.provision_state.as_str();
        if s == "available" && !m.maintenance {
            self.free += 1;
        } else if ALLOCATED.contains(&s) {
            self.allocated += 1;
        } else {
            self.unavailable += 1;
        }
    }
}

pub async fn capacity(v: Viewer, State(state): State<AppState>) -> Response {
    done(capacity_page(&v, &state).await)
}

async fn capacity_page(v: &Viewer, state: &AppState) -> Page {
    v.require_admin()?;
    let store = state.store();
    let all = store.machine_places().await.map_err(|x| api_error(x.into()))?;
    let (mut site, mut islands, mut racks, mut classes) = (
        Cap::default(),
        BTreeMap::<String, Cap>::new(),
        BTreeMap::<String, Cap>::new(),
        BTreeMap::<String, Cap>::new(),
    );
    for m in &all {
        site.add(m);
        islands.entry(m.location.island.clone().unwrap_or_else(|| "(none)".into())).or_default().add(m);
        let rack = format!(
            "{} / {}",
            m.location.island.as_deref().unwrap_or("(none)"),
            m.location.rack.as_deref().unwrap_or("(none)")
        );
        racks.entry(rack).or_default().add(m);
        classes.entry(m.resource_class.clone()).or_default().add(m);
    }
    // Quotas beside what the site can really give now.
    let projects = store.list_projects(&first_500(), None).await.map_err(|x| api_error(x.into()))?;
    let mut quotas = Vec::new();
    for p in projects.items {
        let q = store.project_quota(p.id).await.map_err(|x| api_error(x.into()))?;
        let room = q.nodes.limit.saturating_sub(q.nodes.used);
        quotas.push(json!({
            "project": p.name, "id": p.id, "limit": q.nodes.limit, "used": q.nodes.used, "default": q.nodes.default,
            "room": room, "placeable": room.min(site.free), "short": room > site.free,
        }));
    }
    Ok(v.render(
        "Capacity",
        "capacity.html",
        json!({"site": site, "islands": islands, "racks": racks, "classes": classes, "quotas": quotas}),
    ))
}

pub async fn switches(v: Viewer, State(state): State<AppState>, RawQuery(raw): RawQuery) -> Response {
    done(switches_page(&v, &state, &raw).await)
}

async fn switches_page(v: &Viewer, state: &AppState, raw: &Option<String>) -> Page {
    v.require_admin()?;
    let store = state.store();
    let switches = store.list_switches(&first_500()).await.map_err(|x| api_error(x.into()))?;
    let ports = store.switch_ports().await.map_err(|x| api_error(x.into()))?;
    let list: Vec<Value> = switches
        .items
        .iter()
        .map(|s| {
            let mut mine: Vec<Value> = ports
                .iter()
                .filter(|r| r.switch_id == s.id)
                .map(|r| {
                    let view = crate::views::switch_port(r.clone());
                    json!({"port": view.port, "desired": view.desired_segment, "actual": view.actual_segment,
                           "state": view.state.as_str(), "message": view.message, "checked": view.checked_at.as_deref().map(age),
                           "drift": matches!(view.state.as_str(), "drifted" | "failed")})
                })
                .collect();
            mine.sort_by(|a, b| a["port"].as_str().cmp(&b["port"].as_str()));
            let drifted = mine.iter().filter(|p| p["drift"] == true).count();
            json!({"id": s.id, "name": s.name, "address": s.address, "dialect": s.dialect, "last_error": s.last_error,
                   "last_read": s.last_read_at.as_deref().map(age), "ports": mine, "drifted": drifted})
        })
        .collect();
    let q = query(raw);
    Ok(v.render("Switches", "switches.html", json!({"switches": list, "ok": q.get("ok"), "csrf": v.csrf()})))
}

pub async fn sync_switch(v: Viewer, State(state): State<AppState>, Path(id): Path<String>, body: String) -> Response {
    done(sync_switch_run(&v, &state, &id, &body).await)
}

async fn sync_switch_run(v: &Viewer, state: &AppState, id: &str, body: &str) -> Page {
    v.require_admin()?;
    v.check_csrf(&Form::parse(body))?;
    let store = state.store();
    let sid = id.parse().map_err(|_| error_page(StatusCode::NOT_FOUND, &format!("no switch {id:?}")))?;
    let sw = store.switch(sid).await.map_err(|x| api_error(x.into()))?;
    let ports: Vec<(tundra_api::SwitchId, String)> = store
        .switch_ports()
        .await
        .map_err(|x| api_error(x.into()))?
        .into_iter()
        .filter(|r| r.switch_id == sw.id && matches!(r.state.as_str(), "drifted" | "failed"))
        .map(|r| (r.switch_id, r.port))
        .collect();
    let n = tundra_conductor::fabric::switches::resync(&state.conductor, &v.p.actor(), &ports)
        .await
        .map_err(|x| api_error(x.into()))?;
    let msg = format!("{}: {n} port(s) being programmed again", sw.name);
    let msg: String = form_urlencoded::byte_serialize(msg.as_bytes()).collect();
    Ok(Redirect::to(&format!("/ui/switches?ok={msg}")).into_response())
}

pub async fn project(v: Viewer, State(state): State<AppState>, Path(project): Path<String>) -> Response {
    done(project_page(&v, &state, &project).await)
}

async fn project_page(v: &Viewer, state: &AppState, project: &str) -> Page {
    let store = state.store();
    let e = |x: tundra_store::StoreError| api_error(x.into());
    let p = store
        .project(project)
        .await
        .map_err(|_| api_error(ApiError::NotFound { noun: "project", id: project.into() }))?;
    v.p.require(p.id, Role::Reader, "project", project).map_err(api_error)?;
    let vis = Visibility::Project(p.id);
    let all = first_500();
    let nodes = store.list_nodes(&all, &vis).await.map_err(e)?;
    let nodes = crate::views::nodes(state, &v.p, nodes.items).await.map_err(api_error)?;
    let networks = store.list_networks(&all, &vis).await.map_err(e)?.items;
    let shares = store.list_shares(&all, &vis).await.map_err(e)?.items;
    let shares = tundra_conductor::shares::shown(&state.conductor, shares).await.map_err(|x| api_error(x.into()))?;
    let clusters = store.list_clusters(&all, &vis).await.map_err(e)?.items;
    let mut appliances = Vec::new();
    for a in store.list_appliances(&all, &vis).await.map_err(e)?.items {
        appliances.push(
            tundra_conductor::appliances::flows::with_addresses(&state.conductor, a)
                .await
                .map_err(|x| api_error(x.into()))?,
        );
    }
    let addresses = |n: &tundra_api::nodes::Node| -> String {
        n.addresses
            .iter()
            .filter_map(|a| a.address.as_ref().map(|x| format!("{x} ({})", a.network)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let nodes: Vec<Value> = nodes
        .iter()
        .map(|n| {
            json!({"id": n.id, "name": n.name, "status": n.status.as_str(), "reason": n.status_reason,
                        "addresses": addresses(n), "drift": n.drift, "age": age(&n.updated_at)})
        })
        .collect();
    let networks: Vec<Value> = networks
        .iter()
        .map(|n| json!({"id": n.id, "name": n.name, "kind": n.kind, "segment": n.segment, "mtu": n.mtu}))
        .collect();
    let shares: Vec<Value> = shares
        .iter()
        .map(|s| {
            json!({"id": s.id, "name": s.name, "status": s.status.as_str(), "reason": s.status_reason,
                        "size_gib": s.size_gib, "backend": s.backend,
                        "exports": s.export_locations.iter().map(|x| x.path.clone()).collect::<Vec<_>>().join(", ")})
        })
        .collect();
    let clusters: Vec<Value> = clusters
        .iter()
        .map(|c| {
            json!({"id": c.id, "name": c.name, "kind": c.kind, "status": c.status.as_str(), "reason": c.status_reason,
                        "endpoint": c.endpoint})
        })
        .collect();
    let appliances: Vec<Value> = appliances
        .iter()
        .map(|a| {
            json!({"id": a.id, "name": a.name, "status": a.status.as_str(), "reason": a.status_reason,
                        "outputs": serde_json::to_string(&a.outputs).unwrap_or_default()})
        })
        .collect();
    Ok(v.render(
        &p.name,
        "project.html",
        json!({"project": {"id": p.id, "name": p.name}, "nodes": nodes, "networks": networks, "shares": shares,
               "clusters": clusters, "appliances": appliances}),
    ))
}

pub async fn operations(v: Viewer, State(state): State<AppState>) -> Response {
    done(operations_page(&v, &state).await)
}

async fn operations_page(v: &Viewer, state: &AppState) -> Page {
    let ops = state.store().recent_operations(&v.p.visibility(), 100).await.map_err(|x| api_error(x.into()))?;
    // As the API shows them: a member sees the node, never the machine.
    let ops = crate::views::operations(state, &v.p, ops).await.map_err(api_error)?;
    let rows: Vec<Value> = ops.iter().map(op_row).collect();
    Ok(v.render("Operations", "operations.html", json!({"ops": rows})))
}

/// Server-sent events: `change` whenever what the pages show may have
/// changed (checked every 2 s); the stream ends when the session's token
/// stops working or tundrad stops.
pub async fn live(v: Viewer, State(state): State<AppState>) -> Response {
    let token = v.token.clone();
    let stopping = state.stopping.clone();
    let stream =
        futures_util::stream::unfold((state, token, String::new(), true), move |(state, token, last, first)| {
            let mut stopping = stopping.clone();
            async move {
                loop {
                    if !first {
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                            _ = stopping.changed() => return None,
                        }
                    }
                    if *stopping.borrow() || crate::auth::principal_of(&state, &token).await.is_err() {
                        return None;
                    }
                    let marker = state.store().change_marker().await.unwrap_or_default();
                    if marker != last {
                        let ev = SseEvent::default().event(if first { "hello" } else { "change" }).data(marker.clone());
                        return Some((Ok::<_, Infallible>(ev), (state, token, marker, false)));
                    }
                    if first {
                        return Some((Ok(SseEvent::default().event("hello").data("-")), (state, token, marker, false)));
                    }
                }
            }
        });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response()
}
