//! `--wait`: follow operations (or objects) until their work is done,
//! showing progress on stderr, and fail when the work fails or time runs out.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use serde_json::Value;
use tundra_client::Client;

use crate::api;
use crate::failure::Failure;
use crate::nouns::Noun;
use crate::output::{cell, field};

const POLL: Duration = Duration::from_secs(1);

/// Progress lines on stderr: one redrawn line on a terminal, a line per
/// change otherwise (logs, CI).
struct Progress {
    tty: bool,
    last: Vec<String>,
    start: Instant,
}

impl Progress {
    fn new(n: usize) -> Progress {
        Progress { tty: std::io::stderr().is_terminal(), last: vec![String::new(); n], start: Instant::now() }
    }

    fn show(&mut self, lines: &[String], summary: &str) {
        let mut e = std::io::stderr().lock();
        if self.tty {
            let line = if lines.len() == 1 { lines[0].clone() } else { summary.to_string() };
            let _ = write!(e, "\r\x1b[2K{line} ({}s)", self.start.elapsed().as_secs());
        } else {
            for (i, l) in lines.iter().enumerate() {
                if self.last[i] != *l {
                    let _ = writeln!(e, "{l}");
                }
            }
        }
        let _ = e.flush();
        self.last = lines.to_vec();
    }

    fn done(&self) {
        if self.tty {
            let _ = writeln!(std::io::stderr());
        }
    }
}

/// `[#####-----] 50%` when the total is known.
fn bar(done: i64, total: Option<i64>) -> String {
    match total {
        Some(t) if t > 0 => {
            let pct = (done.clamp(0, t) * 100 / t) as usize;
            let filled = pct / 5;
            format!(" [{}{}] {pct}%", "#".repeat(filled), "-".repeat(20 - filled))
        }
        _ => String::new(),
    }
}

/// One operation's line: `m-1: machine.clean running [###---] 30%: erasing disks`.
fn op_line(label: &str, op: &Value) -> String {
    let msg = cell(field(op, "message"));
    let progress = bar(op["progress_done"].as_i64().unwrap_or(0), op["progress_total"].as_i64());
    let mut l = format!("{label}: {} {}{progress}", cell(field(op, "kind")), cell(field(op, "state")));
    if !msg.is_empty() {
        l.push_str(": ");
        l.push_str(&msg);
    }
    l
}

/// Follow operations (label, operation) until each succeeded or failed.
/// Answers the operations as they ended.
pub async fn operations(
    client: &Client,
    mut ops: Vec<(String, Value)>,
    timeout: Duration,
) -> Result<Vec<Value>, Failure> {
    let deadline = Instant::now() + timeout;
    let mut progress = Progress::new(ops.len());
    loop {
        for (_, op) in ops.iter_mut() {
            if !terminal(op) {
                *op = client.get_path(&tundra_api::paths::fill(tundra_api::paths::OPERATION, &[&id(op)])).await?;
            }
        }
        let lines: Vec<String> = ops.iter().map(|(l, op)| op_line(l, op)).collect();
        let finished = ops.iter().filter(|(_, op)| terminal(op)).count();
        let failed = ops.iter().filter(|(_, op)| op["state"] == "failed").count();
        progress.show(&lines, &format!("{finished}/{} done, {failed} failed", ops.len()));
        if finished == ops.len() {
            progress.done();
            break;
        }
        if Instant::now() >= deadline {
            progress.done();
            let running: Vec<String> =
                ops.iter().filter(|(_, op)| !terminal(op)).map(|(l, op)| format!("{l} ({})", id(op))).collect();
            return Err(Failure::timeout(format!(
                "timed out after {} waiting for {}; the work goes on in tundrad: `tundra operation wait ID` follows it",
                humantime::format_duration(timeout),
                running.join(", ")
            )));
        }
        tokio::time::sleep(POLL).await;
    }
    let failures: Vec<String> = ops
        .iter()
        .filter(|(_, op)| op["state"] == "failed")
        .map(|(l, op)| format!("{l}: {} failed: {}", cell(field(op, "kind")), cell(field(op, "error"))))
        .collect();
    if !failures.is_empty() {
        return Err(Failure::work(failures.join("\n")));
    }
    Ok(ops.into_iter().map(|(_, op)| op).collect())
}

fn terminal(op: &Value) -> bool {
    matches!(op["state"].as_str(), Some("succeeded" | "failed"))
}

fn id(v: &Value) -> String {
    cell(field(v, "id"))
}

/// Follow objects until their status settles (`deleting`: until they are gone).
pub async fn objects(
    client: &Client,
    noun: &Noun,
    objs: Vec<Value>,
    timeout: Duration,
    deleting: bool,
) -> Result<Vec<Value>, Failure> {
    // Nouns without a status (machines) say what works on them with an operation.
    if noun.status.is_none() && !deleting {
        let ops: Vec<(String, Value)> = objs
            .iter()
            .filter(|o| o["operation_id"].is_string())
            .map(|o| (label(o), serde_json::json!({"id": o["operation_id"], "state": "running"})))
            .collect();
        if !ops.is_empty() {
            operations(client, ops, timeout).await?;
        }
        let mut out = Vec::new();
        for o in &objs {
            out.push(api::get(client, noun, &id(o)).await?);
        }
        return Ok(out);
    }
    let deadline = Instant::now() + timeout;
    let mut progress = Progress::new(objs.len());
    let mut current: Vec<Option<Value>> = objs.into_iter().map(Some).collect();
    let status_of = |v: &Option<Value>| -> String {
        match (v, &noun.status) {
            (None, _) => "deleted".into(),
            (Some(v), Some(s)) => cell(field(v, s.field)),
            (Some(_), None) => "present".into(),
        }
    };
    let settled = |v: &Option<Value>| -> bool {
        match (v, &noun.status) {
            (None, _) => deleting,
            (Some(_), _) if deleting => false,
            (Some(v), Some(s)) => {
                let st = cell(field(v, s.field));
                s.done.contains(&st.as_str()) || s.failed.contains(&st.as_str())
            }
            (Some(_), None) => true,
        }
    };
    let labels: Vec<String> = current.iter().map(|o| o.as_ref().map(label).unwrap_or_default()).collect();
    let ids: Vec<String> = current.iter().map(|o| o.as_ref().map(id).unwrap_or_default()).collect();
    loop {
        for (i, o) in current.iter_mut().enumerate() {
            if !settled(o) {
                *o = api::find(client, noun, &ids[i]).await?;
            }
        }
        let lines: Vec<String> = current
            .iter()
            .zip(&labels)
            .map(|(o, l)| {
                let reason = match (o, &noun.status) {
                    (Some(v), Some(s)) => cell(field(v, s.reason)),
                    _ => String::new(),
                };
                let mut line = format!("{l}: {} {}", noun.word, status_of(o));
                if !reason.is_empty() {
                    line.push_str(": ");
                    line.push_str(&reason);
                }
                line
            })
            .collect();
        let n = current.iter().filter(|o| settled(o)).count();
        progress.show(&lines, &format!("{n}/{} settled", current.len()));
        if n == current.len() {
            progress.done();
            break;
        }
        if Instant::now() >= deadline {
            progress.done();
            return Err(Failure::timeout(format!(
                "timed out after {} waiting for {}; the work goes on in tundrad",
                humantime::format_duration(timeout),
                lines.join("; ")
            )));
        }
        tokio::time::sleep(POLL).await;
    }
    if let Some(s) = &noun.status {
        let failed: Vec<String> = current
            .iter()
            .zip(&labels)
            .filter_map(|(o, l)| o.as_ref().map(|v| (v, l)))
            .filter(|(v, _)| s.failed.contains(&cell(field(v, s.field)).as_str()))
            .map(|(v, l)| format!("{l}: {} {}: {}", noun.word, cell(field(v, s.field)), cell(field(v, s.reason))))
            .collect();
        if !failed.is_empty() {
            return Err(Failure::work(failed.join("\n")));
        }
    }
    Ok(current.into_iter().flatten().collect())
}

/// How an object is named in progress lines: its name, else its ID.
pub fn label(v: &Value) -> String {
    match v["name"].as_str() {
        Some(n) if !n.is_empty() => n.to_string(),
        _ => id(v),
    }
}
