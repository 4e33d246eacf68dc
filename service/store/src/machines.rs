//! Machines. State changes are compare-and-set on `provision_state` (and on
//! `operation_id` being free), which is the per-machine lock: two workers can
//! never both move one machine.

use std::collections::HashMap;

use serde_json::json;
use sqlx::any::AnyRow;
use tundra_api::machines::{BmcSettings, Interface, Location, Machine, ProvisionState};
use tundra_api::{MachineId, OperationId, Page, SecretId};

use crate::ops::{NewOperation, insert_operation};
use crate::secrets::{SecretRecord, put_secret_in};
use crate::sql::{Sql, paginate};
use crate::table::Table;
use crate::{
    Actor, ListParams, Result, Store, StoreError, Write, check_revision, event, get, json_col, now, parse_id, to_json,
    unique, unique_at,
};

pub(crate) fn provision_state(row: &AnyRow) -> Result<ProvisionState> {
    let state: String = get(row, "provision_state")?;
    ProvisionState::parse(&state)
        .ok_or_else(|| StoreError::Corrupt { table: "machines", what: format!("provision_state {state:?}") })
}

fn machine(row: &AnyRow) -> Result<Machine> {
    Ok(Machine {
        id: parse_id("machines", &get::<String>(row, "id")?)?,
        name: get(row, "name")?,
        resource_class: get(row, "resource_class")?,
        traits: json_col("machines", row, "traits")?,
        properties: json_col("machines", row, "properties")?,
        location: json_col("machines", row, "location")?,
        bmc: json_col("machines", row, "bmc")?,
        interfaces: json_col("machines", row, "interfaces")?,
        power_state: get(row, "power_state")?,
        provision_state: provision_state(row)?,
        maintenance: get::<i64>(row, "maintenance")? != 0,
        maintenance_reason: get(row, "maintenance_reason")?,
        maintenance_by: get(row, "maintenance_by")?,
        last_error: get(row, "last_error")?,
        operation_id: get::<Option<String>>(row, "operation_id")?.map(|o| parse_id("machines", &o)).transpose()?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
        revision: get(row, "revision")?,
    })
}

pub(crate) const MACHINES: Table<Machine> = Table::new("machines", "machine", machine, |x| x.id.to_string());

/// A machine as placement sees it ([`Store::placement_candidates`]).
#[derive(Debug, Clone)]
pub struct PlacementCandidate {
    pub id: MachineId,
    pub traits: Vec<String>,
    pub location: Location,
    /// Available, not in maintenance, no operation running.
    pub free: bool,
}

/// A machine's interfaces, name and state ([`Store::machine_nics`]).
#[derive(Debug, Clone)]
pub struct MachineNics {
    pub id: MachineId,
    pub name: String,
    pub provision_state: ProvisionState,
    pub interfaces: Vec<Interface>,
}

/// A machine an operation holds ([`Store::machines_in_operation`]).
#[derive(Debug, Clone)]
pub struct MachineInOperation {
    pub id: MachineId,
    pub name: String,
    pub provision_state: ProvisionState,
    pub operation_id: OperationId,
    pub updated_at: String,
}

/// Where a machine is in its life (the node reconciler's [`Store::nodes_at_machines`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineState {
    pub provision_state: ProvisionState,
    pub operation_id: Option<OperationId>,
    pub last_error: Option<String>,
}

/// A validated machine to enroll, with its sealed BMC password.
#[derive(Debug)]
pub struct NewMachine {
    pub name: String,
    pub resource_class: String,
    pub traits: Vec<String>,
    pub properties: serde_json::Value,
    pub location: Location,
    pub bmc: BmcSettings,
    pub interfaces: Vec<Interface>,
    pub secret: SecretRecord,
}

/// Changes to a machine; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct MachineChanges {
    pub name: Option<String>,
    pub resource_class: Option<String>,
    pub traits: Option<Vec<String>>,
    pub properties: Option<serde_json::Value>,
    pub location: Option<Location>,
    pub bmc: Option<BmcSettings>,
    pub secret: Option<SecretRecord>,
    pub interfaces: Option<Vec<Interface>>,
    /// `Some((true, reason))` enters maintenance, `Some((false, _))` leaves it.
    pub maintenance: Option<(bool, Option<String>)>,
}

/// What the power sync saw.
#[derive(Debug)]
pub enum PowerObservation {
    /// The BMC answered with this state.
    Answered(&'static str),
    /// The BMC did not answer; `set_maintenance_after` consecutive failures put
    /// the machine into maintenance (by `tundrad`).
    Failed { error: String, set_maintenance_after: i64 },
}

/// A machine's MACs, fixed addresses and switch ports, each held by one
/// machine (DHCP answers by MAC and would hand one address to two machines;
/// tundrad moves a port into the VLAN of whoever holds its machine): the
/// unique keys make a second holder fail inside its own transaction.
async fn replace_interfaces(w: &mut Write, id: MachineId, interfaces: &[Interface]) -> Result<()> {
    for table in ["machine_macs", "machine_addresses", "machine_switch_ports"] {
        sqlx::query(&format!("DELETE FROM {table} WHERE machine_id = $1"))
            .bind(id.to_string())
            .execute(&mut *w.tx)
            .await?;
    }
    for (k, i) in interfaces.iter().enumerate() {
        sqlx::query("INSERT INTO machine_macs (mac, machine_id) VALUES ($1, $2)")
            .bind(i.mac.clone())
            .bind(id.to_string())
            .execute(&mut *w.tx)
            .await
            .map_err(|e| {
                unique_at(e, format!("/interfaces/{k}/mac"), || {
                    format!("MAC {} already belongs to another machine", i.mac)
                })
            })?;
        if let Some(a) = &i.address {
            let holder: Option<String> = sqlx::query_scalar(
                "SELECT m.name FROM machine_addresses a JOIN machines m ON m.id = a.machine_id \
                 WHERE a.address = $1 AND a.machine_id <> $2",
            )
            .bind(a.clone())
            .bind(id.to_string())
            .fetch_optional(&mut *w.tx)
            .await?;
            if let Some(other) = holder {
                return Err(StoreError::ConflictAt {
                    pointer: format!("/interfaces/{k}/address"),
                    detail: format!("{a} is machine {other}'s address already; pick another"),
                });
            }
            sqlx::query("INSERT INTO machine_addresses (address, machine_id) VALUES ($1, $2)")
                .bind(a.clone())
                .bind(id.to_string())
                .execute(&mut *w.tx)
                .await
                .map_err(|e| {
                    unique_at(e, format!("/interfaces/{k}/address"), || {
                        format!("{a} is another machine's address already; pick another")
                    })
                })?;
        }
        if let (Some(sw), Some(port)) = (&i.switch, &i.port) {
            let holder: Option<String> = sqlx::query_scalar(
                "SELECT m.name FROM machine_switch_ports p JOIN machines m ON m.id = p.machine_id \
                 WHERE p.switch = $1 AND p.port = $2 AND p.machine_id <> $3",
            )
            .bind(sw.clone())
            .bind(port.clone())
            .bind(id.to_string())
            .fetch_optional(&mut *w.tx)
            .await?;
            if let Some(other) = holder {
                return Err(StoreError::ConflictAt {
                    pointer: format!("/interfaces/{k}/port"),
                    detail: format!(
                        "{sw} port {port} is cabled to machine {other} already; a port belongs to one machine \
                         (fix the cabling record of one of them)"
                    ),
                });
            }
            sqlx::query("INSERT INTO machine_switch_ports (switch, port, machine_id) VALUES ($1, $2, $3)")
                .bind(sw.clone())
                .bind(port.clone())
                .bind(id.to_string())
                .execute(&mut *w.tx)
                .await
                .map_err(|e| {
                    unique_at(e, format!("/interfaces/{k}/port"), || {
                        format!("{sw} port {port} is another machine's already")
                    })
                })?;
        }
    }
    Ok(())
}

/// Inside the caller's transaction, with `cur` read (locked) and checked:
/// record a new operation, move the machine to `to` held by it, write the
/// event. Returns the machine as it is now and the operation.
pub(crate) async fn start_in(
    w: &mut Write,
    actor: &Actor,
    cur: &Machine,
    to: ProvisionState,
    verb: &str,
    op: NewOperation,
) -> Result<(Machine, OperationId)> {
    // A deploy holds its image: the row is read locked here, as a delete
    // reads it, so the two cannot interleave (`Store::delete_image`).
    if let tundra_api::ops::Work::MachineDeploy { image, .. } = &op.work {
        crate::catalog::IMAGES.get_in(w, image.id).await.map_err(|e| match e {
            StoreError::NotFound { .. } => {
                StoreError::Conflict(format!("image {} was deleted; deploy another", image.id))
            }
            e => e,
        })?;
    }
    let op_id = insert_operation(w, actor, op).await?;
    sqlx::query(
        "UPDATE machines SET provision_state = $1, operation_id = $2, last_error = NULL, updated_at = $3, revision = revision + 1 \
         WHERE id = $4",
    )
    .bind(to.as_str())
    .bind(op_id.to_string())
    .bind(now())
    .bind(cur.id.to_string())
    .execute(&mut *w.tx)
    .await?;
    event(
        w,
        actor,
        None,
        "machine",
        &cur.id.to_string(),
        verb,
        json!({"from": cur.provision_state, "to": to, "operation_id": op_id}),
    )
    .await?;
    Ok((MACHINES.get_in(w, cur.id).await?, op_id))
}

/// What `list_machines` may filter on (all that are given must hold).
#[derive(Debug, Clone, Default)]
pub struct MachineFilter {
    pub provision_state: Option<ProvisionState>,
    pub resource_class: Option<String>,
    pub rack: Option<String>,
    pub island: Option<String>,
    /// Part of the BMC's address.
    pub bmc_address: Option<String>,
    /// A MAC of one of its interfaces (lowercase, colons).
    pub mac: Option<String>,
    pub maintenance: Option<bool>,
}

/// A machine's place and standing (`machine_places`).
#[derive(Debug, Clone)]
pub struct MachinePlace {
    pub id: MachineId,
    pub name: String,
    pub resource_class: String,
    pub location: Location,
    pub provision_state: ProvisionState,
    pub maintenance: bool,
}

/// `s` as a LIKE pattern matching itself (escape character `!`).
fn like_escape(s: &str) -> String {
    s.replace('!', "!!").replace('%', "!%").replace('_', "!_")
}

impl Store {
    pub async fn create_machine(&self, actor: &Actor, m: NewMachine) -> Result<Machine> {
        let mut w = self.write().await?;
        let id = MachineId::generate();
        let t = now();
        put_secret_in(&mut w, &m.secret).await?;
        sqlx::query(
            "INSERT INTO machines (id, name, resource_class, traits, properties, location, bmc, bmc_secret_id, interfaces, \
             power_state, provision_state, maintenance, maintenance_reason, maintenance_by, last_error, operation_id, bmc_failures, \
             created_at, updated_at, revision) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'unknown', 'enroll', 0, NULL, NULL, NULL, NULL, 0, $10, $10, 1)",
        )
        .bind(id.to_string())
        .bind(m.name.clone())
        .bind(m.resource_class.clone())
        .bind(to_json(&m.traits))
        .bind(m.properties.to_string())
        .bind(to_json(&m.location))
        .bind(to_json(&m.bmc))
        .bind(m.secret.id.to_string())
        .bind(to_json(&m.interfaces))
        .bind(t)
        .execute(&mut *w.tx)
        .await
        .map_err(|e| unique(e, || format!("a machine named {:?} already exists; pick another name", m.name)))?;
        replace_interfaces(&mut w, id, &m.interfaces).await?;
        MACHINES.commit(w, actor, None, id, "created", json!({"name": m.name, "resource_class": m.resource_class, "bmc": {"driver": m.bmc.driver, "address": m.bmc.address}, "macs": m.interfaces.iter().map(|i| &i.mac).collect::<Vec<_>>()})).await
    }

    /// A machine by ID or name.
    pub async fn machine(&self, id_or_name: &str) -> Result<Machine> {
        let row = sqlx::query(&format!("SELECT * FROM machines WHERE {} = $1", crate::id_or_name(id_or_name)))
            .bind(id_or_name.to_string())
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound { noun: "machine", id: id_or_name.to_string() })?;
        machine(&row)
    }

    /// The machine with this MAC.
    pub async fn machine_by_mac(&self, mac: &str) -> Result<Option<Machine>> {
        let id: Option<String> = sqlx::query_scalar("SELECT machine_id FROM machine_macs WHERE mac = $1")
            .bind(mac.to_string())
            .fetch_optional(&self.pool)
            .await?;
        match id {
            Some(id) => Ok(Some(self.machine(&id).await?)),
            None => Ok(None),
        }
    }

    /// The sealed BMC password of a machine.
    pub async fn machine_secret(&self, id: MachineId) -> Result<SecretId> {
        let s: String = sqlx::query_scalar("SELECT bmc_secret_id FROM machines WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound { noun: "machine", id: id.to_string() })?;
        parse_id("machines", &s)
    }

    /// Machines, filtered (every filter given must hold), a page at a time.
    pub async fn list_machines(&self, p: &ListParams, f: &MachineFilter) -> Result<Page<Machine>> {
        let mut q = Sql::new("SELECT * FROM machines WHERE 1 = 1");
        if let Some(n) = &p.name {
            q.push(" AND name = ").bind(n.clone());
        }
        if let Some(s) = f.provision_state {
            q.push(" AND provision_state = ").bind(s.as_str());
        }
        if let Some(c) = &f.resource_class {
            q.push(" AND resource_class = ").bind(c.clone());
        }
        if let Some(m) = f.maintenance {
            q.push(" AND maintenance = ").bind_int(i64::from(m));
        }
        // `location` is the JSON serde writes (no spaces, escaped strings):
        // `"rack":"r1"` appears in it exactly when the rack is r1.
        for (key, v) in [("rack", &f.rack), ("island", &f.island)] {
            if let Some(v) = v {
                let needle = format!("\"{key}\":{}", serde_json::Value::String(v.clone()));
                q.push(" AND location LIKE ").bind(format!("%{}%", like_escape(&needle))).push(" ESCAPE '!'");
            }
        }
        if let Some(b) = &f.bmc_address {
            // A prefilter on the BMC's JSON; the exact test is below.
            q.push(" AND bmc LIKE ").bind(format!("%{}%", like_escape(b))).push(" ESCAPE '!'");
        }
        if let Some(mac) = &f.mac {
            q.push(" AND id IN (SELECT machine_id FROM machine_macs WHERE mac = ").bind(mac.clone()).push(")");
        }
        q.page(p.after.as_deref(), p.limit);
        let rows = q.query().fetch_all(&self.pool).await?;
        let items = rows.iter().map(machine).collect::<Result<Vec<_>>>()?;
        let mut page = paginate(items, p.limit, |m| m.id.to_string());
        if let Some(b) = &f.bmc_address {
            page.items.retain(|m| m.bmc.address.contains(b.as_str()));
        }
        Ok(page)
    }

    /// How many machines are in each provision state, and how many of those
    /// are in maintenance: `(state, total, in maintenance)`.
    pub async fn machine_state_counts(&self) -> Result<Vec<(String, i64, i64)>> {
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT provision_state, COUNT(*), CAST(SUM(maintenance) AS BIGINT) FROM machines \
             GROUP BY provision_state ORDER BY provision_state",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }

    /// Machines that need an operator: a failed state, or maintenance;
    /// the longest-waiting first, at most `limit`.
    pub async fn machines_needing_attention(&self, failed: &[&str], limit: u32) -> Result<Vec<Machine>> {
        let mut q = Sql::new("SELECT * FROM machines WHERE maintenance = 1 OR provision_state IN (''");
        for s in failed {
            q.push(", ").bind(*s);
        }
        q.push(") ORDER BY updated_at, id LIMIT ").bind_int(i64::from(limit));
        let rows = q.query().fetch_all(&self.pool).await?;
        rows.iter().map(machine).collect()
    }

    /// Every machine (for reconcilers), in ID order.
    /// Which machine holds each (switch, port): one each (`machine_switch_ports`).
    pub async fn switch_port_holders(&self) -> Result<HashMap<(String, String), MachineId>> {
        let rows: Vec<(String, String, String)> =
            sqlx::query_as("SELECT switch, port, machine_id FROM machine_switch_ports").fetch_all(&self.pool).await?;
        rows.into_iter().map(|(s, p, m)| Ok(((s, p), parse_id("machine_switch_ports", &m)?))).collect()
    }

    /// Where every machine is and where it stands, without the rest of its
    /// record (the dashboard's rack map and capacity, over the whole site).
    pub async fn machine_places(&self) -> Result<Vec<MachinePlace>> {
        let rows: Vec<(String, String, String, String, String, i64)> = sqlx::query_as(
            "SELECT id, name, resource_class, location, provision_state, maintenance FROM machines ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(id, name, resource_class, location, state, maintenance)| {
                let location: Location = serde_json::from_str(&location)
                    .map_err(|e| StoreError::Corrupt { table: "machines", what: format!("location: {e}") })?;
                let provision_state = ProvisionState::parse(&state).ok_or_else(|| StoreError::Corrupt {
                    table: "machines",
                    what: format!("provision_state {state:?}"),
                })?;
                Ok(MachinePlace {
                    id: parse_id("machines", &id)?,
                    name,
                    resource_class,
                    location,
                    provision_state,
                    maintenance: maintenance != 0,
                })
            })
            .collect()
    }

    /// What placement weighs of every machine of `resource_class`, read for
    /// each node placed: only the columns it needs, not the inventory, BMC
    /// and interfaces of every machine on the site.
    pub async fn placement_candidates(&self, resource_class: &str) -> Result<Vec<PlacementCandidate>> {
        let rows = sqlx::query(
            "SELECT id, traits, location, provision_state, maintenance, operation_id FROM machines \
             WHERE resource_class = $1 ORDER BY id",
        )
        .bind(resource_class.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let state: String = get(r, "provision_state")?;
                Ok(PlacementCandidate {
                    id: parse_id("machines", &get::<String>(r, "id")?)?,
                    traits: json_col("machines", r, "traits")?,
                    location: json_col("machines", r, "location")?,
                    free: state == ProvisionState::Available.as_str()
                        && get::<i64>(r, "maintenance")? == 0
                        && get::<Option<String>>(r, "operation_id")?.is_none(),
                })
            })
            .collect()
    }

    /// Every machine's interfaces, with its name and state and nothing
    /// else: what network boot and switch-port steering read on every
    /// change, without each machine's inventory and BMC.
    pub async fn machine_nics(&self) -> Result<Vec<MachineNics>> {
        let rows = sqlx::query("SELECT id, name, provision_state, interfaces FROM machines ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(MachineNics {
                    id: parse_id("machines", &get::<String>(r, "id")?)?,
                    name: get(r, "name")?,
                    provision_state: provision_state(r)?,
                    interfaces: json_col("machines", r, "interfaces")?,
                })
            })
            .collect()
    }

    /// The machines an operation holds, as the timeout reconciler needs
    /// them: an idle site reads no rows.
    pub async fn machines_in_operation(&self) -> Result<Vec<MachineInOperation>> {
        let rows = sqlx::query(
            "SELECT id, name, provision_state, operation_id, updated_at FROM machines \
             WHERE operation_id IS NOT NULL ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(MachineInOperation {
                    id: parse_id("machines", &get::<String>(r, "id")?)?,
                    name: get(r, "name")?,
                    provision_state: provision_state(r)?,
                    operation_id: parse_id("machines", &get::<String>(r, "operation_id")?)?,
                    updated_at: get(r, "updated_at")?,
                })
            })
            .collect()
    }

    pub async fn all_machines(&self) -> Result<Vec<Machine>> {
        let rows = sqlx::query("SELECT * FROM machines ORDER BY id").fetch_all(&self.pool).await?;
        rows.iter().map(machine).collect()
    }

    pub async fn update_machine(
        &self,
        actor: &Actor,
        id: MachineId,
        c: MachineChanges,
        if_match: Option<i64>,
    ) -> Result<Machine> {
        let mut w = self.write().await?;
        let cur = MACHINES.get_in(&mut w, id).await?;
        check_revision("machine", &id.to_string(), cur.revision, if_match)?;
        if let Some(s) = &c.secret {
            put_secret_in(&mut w, s).await?;
            sqlx::query("UPDATE machines SET bmc_secret_id = $1 WHERE id = $2")
                .bind(s.id.to_string())
                .bind(id.to_string())
                .execute(&mut *w.tx)
                .await?;
        }
        if let Some(ifs) = &c.interfaces {
            replace_interfaces(&mut w, id, ifs).await?;
        }
        let (maintenance, reason, by) = match &c.maintenance {
            Some((true, r)) => (true, r.clone(), Some(actor.name.clone())),
            Some((false, _)) => (false, None, None),
            None => (cur.maintenance, cur.maintenance_reason.clone(), cur.maintenance_by.clone()),
        };
        let name = c.name.clone().unwrap_or(cur.name.clone());
        sqlx::query(
            "UPDATE machines SET name = $1, resource_class = $2, traits = $3, properties = $4, location = $5, bmc = $6, interfaces = $7, \
             maintenance = $8, maintenance_reason = $9, maintenance_by = $10, updated_at = $11, revision = revision + 1 WHERE id = $12",
        )
        .bind(name.clone())
        .bind(c.resource_class.clone().unwrap_or(cur.resource_class.clone()))
        .bind(to_json(c.traits.as_ref().unwrap_or(&cur.traits)))
        .bind(c.properties.as_ref().unwrap_or(&cur.properties).to_string())
        .bind(to_json(c.location.as_ref().unwrap_or(&cur.location)))
        .bind(to_json(c.bmc.as_ref().unwrap_or(&cur.bmc)))
        .bind(to_json(c.interfaces.as_ref().unwrap_or(&cur.interfaces)))
        .bind(i64::from(maintenance))
        .bind(reason.clone())
        .bind(by)
        .bind(now())
        .bind(id.to_string())
        .execute(&mut *w.tx)
        .await
        .map_err(|e| unique(e, || format!("a machine named {name:?} already exists; pick another name")))?;
        MACHINES
            .commit(
                w,
                actor,
                None,
                id,
                "updated",
                json!({
                    "name": c.name, "resource_class": c.resource_class, "traits": c.traits, "location": c.location,
                    "bmc": c.bmc.as_ref().map(|b| json!({"driver": b.driver, "address": b.address})),
                    "bmc_password_changed": c.secret.is_some(),
                    "interfaces": c.interfaces.as_ref().map(|i| i.iter().map(|i| &i.mac).collect::<Vec<_>>()),
                    "maintenance": c.maintenance.as_ref().map(|m| m.0), "maintenance_reason": reason,
                }),
            )
            .await
    }

    /// Delete a machine and its sealed password.
    pub async fn delete_machine(&self, actor: &Actor, id: MachineId) -> Result<()> {
        let mut w = self.write().await?;
        let cur = MACHINES.get_in(&mut w, id).await?;
        let holder: Option<String> = sqlx::query_scalar("SELECT name FROM nodes WHERE machine_id = $1")
            .bind(id.to_string())
            .fetch_optional(&mut *w.tx)
            .await?;
        if let Some(node) = holder {
            return Err(StoreError::Conflict(format!(
                "machine {} is node {node:?}'s; the node's owner deletes the node first (its machine is then cleaned)",
                cur.name
            )));
        }
        let secret: String = sqlx::query_scalar("SELECT bmc_secret_id FROM machines WHERE id = $1")
            .bind(id.to_string())
            .fetch_one(&mut *w.tx)
            .await?;
        replace_interfaces(&mut w, id, &[]).await?;
        sqlx::query("DELETE FROM machines WHERE id = $1").bind(id.to_string()).execute(&mut *w.tx).await?;
        sqlx::query("DELETE FROM secrets WHERE id = $1").bind(secret).execute(&mut *w.tx).await?;
        event(&mut w, actor, None, "machine", &id.to_string(), "deleted", json!({"name": cur.name})).await?;
        w.commit().await
    }

    /// Move a machine from `from` to `to` and attach a new operation, only if
    /// it is still in `from` and no operation holds it. The lock and the
    /// intent are one transaction.
    pub async fn begin_machine_transition(
        &self,
        actor: &Actor,
        id: MachineId,
        from: ProvisionState,
        to: ProvisionState,
        verb: &str,
        op: NewOperation,
    ) -> Result<(Machine, OperationId)> {
        let mut w = self.write().await?;
        // Locked until commit (PostgreSQL) or under the writer lock (SQLite):
        // what is checked here is what the update changes.
        let cur = MACHINES.get_in(&mut w, id).await?;
        if cur.provision_state != from || cur.operation_id.is_some() {
            return Err(StoreError::Conflict(format!(
                "machine {} is {}{}; it changed while you asked — read it again",
                cur.name,
                cur.provision_state,
                if cur.operation_id.is_some() { " and busy with an operation" } else { "" }
            )));
        }
        let out = start_in(&mut w, actor, &cur, to, verb, op).await?;
        w.commit().await?;
        Ok(out)
    }

    /// Finish (or advance) the work of operation `op` on a machine: move it to
    /// `to`, record `error`, and release it when `release`.
    pub async fn machine_step(
        &self,
        id: MachineId,
        op: OperationId,
        to: ProvisionState,
        error: Option<String>,
        release: bool,
    ) -> Result<Machine> {
        let mut w = self.write().await?;
        let out = machine_step_in(&mut w, id, op, to, error, release).await?;
        w.commit().await?;
        Ok(out)
    }

    /// End operation `op` from outside its worker (a timeout, an abort): in
    /// one transaction the machine takes `to` and is released, the
    /// operation's agent session closes and the operation fails with `why`.
    /// Whoever reads the machine free therefore reads the operation ended.
    /// Conflict when `op` no longer holds the machine (its worker finished).
    pub async fn end_machine_operation(
        &self,
        id: MachineId,
        op: OperationId,
        to: ProvisionState,
        why: String,
    ) -> Result<Machine> {
        let mut w = self.write().await?;
        let out = machine_step_in(&mut w, id, op, to, Some(why.clone()), true).await?;
        crate::agent::close_agent_session_in(&mut w, id, op).await?;
        crate::ops::finish_operation_in(&mut w, op, Some(why)).await?;
        w.commit().await?;
        Ok(out)
    }

    /// Record what a power read saw; sets or clears tundrad's maintenance.
    /// Returns the machine and whether maintenance changed. With `read_at`
    /// (the revision the reader decided to read at), a machine that changed
    /// since — an operation took it, moved its power and ended while the
    /// read was under way — keeps what that operation recorded: the read is
    /// stale, and the next one decides.
    pub async fn observe_power(
        &self,
        id: MachineId,
        seen: PowerObservation,
        read_at: Option<i64>,
    ) -> Result<(Machine, bool)> {
        let mut w = self.write().await?;
        let cur = MACHINES.get_in(&mut w, id).await?;
        if read_at.is_some_and(|r| r != cur.revision) {
            return Ok((cur, false));
        }
        let failures: i64 = sqlx::query_scalar("SELECT bmc_failures FROM machines WHERE id = $1")
            .bind(id.to_string())
            .fetch_one(&mut *w.tx)
            .await?;
        let (power, failures, maintenance, reason, by, action) = match seen {
            PowerObservation::Answered(state) => {
                if cur.maintenance && cur.maintenance_by.as_deref() == Some("tundrad") {
                    (
                        state.to_string(),
                        0,
                        false,
                        None,
                        None,
                        Some(("maintenance_cleared", json!({"power_state": state}))),
                    )
                } else {
                    (
                        state.to_string(),
                        0,
                        cur.maintenance,
                        cur.maintenance_reason.clone(),
                        cur.maintenance_by.clone(),
                        None,
                    )
                }
            }
            PowerObservation::Failed { error, set_maintenance_after } => {
                let n = failures + 1;
                if !cur.maintenance && n >= set_maintenance_after {
                    let reason = format!("BMC unreachable for {n} checks: {error}");
                    (
                        "unknown".to_string(),
                        n,
                        true,
                        Some(reason.clone()),
                        Some("tundrad".to_string()),
                        Some(("maintenance_set", json!({"reason": reason}))),
                    )
                } else {
                    (
                        "unknown".to_string(),
                        n,
                        cur.maintenance,
                        cur.maintenance_reason.clone(),
                        cur.maintenance_by.clone(),
                        None,
                    )
                }
            }
        };
        let changed = action.is_some();
        let power_changed = power != cur.power_state;
        sqlx::query(
            "UPDATE machines SET power_state = $1, bmc_failures = $2, maintenance = $3, maintenance_reason = $4, maintenance_by = $5, \
             updated_at = CASE WHEN $6 = 1 THEN $7 ELSE updated_at END, revision = revision + $6 WHERE id = $8",
        )
        .bind(power.clone())
        .bind(failures)
        .bind(i64::from(maintenance))
        .bind(reason)
        .bind(by)
        .bind(i64::from(changed || power_changed))
        .bind(now())
        .bind(id.to_string())
        .execute(&mut *w.tx)
        .await?;
        if let Some((verb, detail)) = action {
            event(&mut w, &Actor::service(), None, "machine", &id.to_string(), verb, detail).await?;
        } else if power_changed && cur.power_state != "unknown" {
            event(
                &mut w,
                &Actor::service(),
                None,
                "machine",
                &id.to_string(),
                "power_changed",
                json!({"from": cur.power_state, "to": power}),
            )
            .await?;
        }
        let out = MACHINES.get_in(&mut w, id).await?;
        w.commit().await?;
        Ok((out, changed))
    }
}

async fn machine_step_in(
    w: &mut Write,
    id: MachineId,
    op: OperationId,
    to: ProvisionState,
    error: Option<String>,
    release: bool,
) -> Result<Machine> {
    let cur = MACHINES.get_in(w, id).await?;
    if cur.operation_id != Some(op) {
        return Err(StoreError::Conflict(format!("operation {op} no longer holds machine {}", cur.name)));
    }
    sqlx::query(
        "UPDATE machines SET provision_state = $1, last_error = $2, operation_id = $3, updated_at = $4, revision = revision + 1 WHERE id = $5",
    )
    .bind(to.as_str())
    .bind(error.clone())
    .bind(if release { None } else { Some(op.to_string()) })
    .bind(now())
    .bind(id.to_string())
    .execute(&mut *w.tx)
    .await?;
    event(
        w,
        &Actor::service(),
        None,
        "machine",
        &id.to_string(),
        "state_changed",
        json!({"from": cur.provision_state, "to": to, "error": error}),
    )
    .await?;
    MACHINES.get_in(w, id).await
}
