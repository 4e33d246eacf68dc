#!/usr/bin/env python3
"""Turns the JSON figures scripts/bench.sh collected into docs/benchmarks.md
and its charts. Standard library only.

  report.py WORK_DIR OUT.md CHART_DIR HEADER.md

Reads, where present: cp-tundra.json, cp-ironic.json (control plane, 50
machines); scale-N.json (tundrad alone); api.json; dhcp.json; switch.json;
fabric.json; terraform.json; agent.json; lab.json; memory.json.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import svg  # noqa: E402

work, out_md, chart_dir, header = sys.argv[1:5]
rows, charts = [], []


def load(name):
    p = os.path.join(work, name)
    if not os.path.exists(p):
        return None
    with open(p) as f:
        return json.load(f)


def num(x, digits=2):
    if x is None:
        return "—"
    if x >= 1000:
        return f"{x:,.0f}"
    if x >= 100:
        return f"{x:.0f}"
    return f"{x:.{digits}f}"


def verdict(ok):
    return " ✓" if ok else " ✗ (short)"


def row(figure, tundra, peer, ratio, goal, ok=None):
    rows.append((figure, tundra, peer, ratio, goal + ("" if ok is None else verdict(ok))))


def chart(name, spec, caption):
    os.makedirs(chart_dir, exist_ok=True)
    with open(os.path.join(chart_dir, name), "w") as f:
        f.write(svg.render(spec))
    charts.append((name, caption))


# --- control plane vs Ironic ---------------------------------------------------
t, i = load("cp-tundra.json"), load("cp-ironic.json")
if t and i:
    for p in ("enroll", "deploy", "undeploy"):
        a, b = t["phases"][p]["seconds"], i["phases"][p]["seconds"]
        row(f"control plane, {t['machines']} machines: {p} (s)", num(a), f"{num(b)} (Ironic {i.get('version', '')})",
            f"{b / a:.1f}× faster", "≥ 10×", b / a >= 10)
    chart("deploy-per-machine.svg", {
        "title": f"Deploy of {t['machines']} fake machines: when each was active",
        "x": "machines active", "y": "seconds since the phase began", "log_y": True,
        "series": [
            {"name": "tundrad", "points": [[k + 1, s] for k, s in enumerate(t["phases"]["deploy"]["per_machine"])]},
            {"name": "Ironic", "points": [[k + 1, s] for k, s in enumerate(i["phases"]["deploy"]["per_machine"])]},
        ]}, "Deploy, per machine: the time at which each machine reached `active` (log scale).")

# --- API -------------------------------------------------------------------------
api = load("api.json")
if api:
    ir = api.get("ironic")
    for backend in ("sqlite", "postgres"):
        tb = api.get(backend)
        if not tb:
            continue
        for route, what in (("get", "get one machine"), ("list", "list, page of 100")):
            a = tb[route]
            peer = ir[route] if ir else None
            ratio = a["rps"] / peer["rps"] if peer else None
            goal, ok = ("≥ 100×, p99 ≤ 5 ms", ratio >= 100 and a["p99_ms"] <= 5) if route == "get" and peer else ("—", None)
            row(f"API {what}, 1 connection, {backend} (req/s; p99)",
                f"{num(a['rps'])}; {num(a['p99_ms'])} ms",
                f"{num(peer['rps'])}; {num(peer['p99_ms'])} ms (Ironic, SQLite)" if peer else "—",
                f"{ratio:.0f}×" if ratio else "—", goal, ok)
    series = []
    for name, key in (("tundrad, SQLite", "sqlite"), ("tundrad, PostgreSQL", "postgres"), ("Ironic", "ironic")):
        if api.get(key):
            pc = api[key]["get"]["percentiles"]
            series.append({"name": name, "points": [[k, v] for k, (_, v) in enumerate(pc)]})
    if series:
        labels = [f"p{p:g}" for p, _ in api["sqlite"]["get"]["percentiles"]]
        chart("api-latency.svg", {"title": "GET one machine / node, 1 connection: latency", "x": "percentile",
                                  "y": "milliseconds", "log_y": True, "x_categories": labels, "series": series},
              "API get latency percentiles, 1 connection (log scale).")

def through_nodes(scale):
    """Whether a scale run deployed through nodes (runs before the field
    existed: up to 1,000 machines)."""
    return bool(scale) and scale.get("through", "nodes" if scale["machines"] <= 1000 else "machines") == "nodes"


# --- memory ----------------------------------------------------------------------
mem = load("memory.json") or {}
if "idle" in mem:
    row("tundrad idle RSS (MB)", str(mem["idle"]), f"{mem.get('ironic_idle', '—')} (Ironic, all-in-one)",
        f"{mem['ironic_idle'] / mem['idle']:.1f}× less" if mem.get("ironic_idle") else "—", "≤ 30 MB", mem["idle"] <= 30)
for k, v in sorted(mem.items()):
    if k.startswith("loaded-"):
        n = int(k.split("-")[1])
        nodes = through_nodes(load(f"scale-{n}.json"))
        what = f"{n:,} machines and {n:,} nodes" if nodes else f"{n:,} machines, all deployed"
        row(f"tundrad RSS with {what} (MB)", str(v), "no peer (Ironic not run at this size)",
            "—", "≤ 200 MB at 10,000", v <= 200 if n >= 10000 else None)

# --- control plane at scale ----------------------------------------------------------
for name in sorted(os.listdir(work)):
    if name.startswith("scale-") and name.endswith(".json"):
        s = load(name)
        n = s["machines"]
        for p in ("enroll", "deploy", "undeploy"):
            secs = s["phases"][p]["seconds"]
            via = " through nodes" if through_nodes(s) else ""
            row(f"control plane, {n:,} machines{via}: {p} (s)", f"{num(secs)} ({1000 * secs / n:.1f} ms/machine)",
                "no peer (Ironic at this size exceeds the run's budget)", "—", "—")

# --- DHCP ------------------------------------------------------------------------
d = load("dhcp.json")
if d:
    sv = d["servers"]
    labels = {"new": "new clients (4-way exchanges/s)", "renew": "renewals/s, with as many new clients/s"}
    for load_name, label in labels.items():
        if load_name not in sv.get("tundra-boot", {}):
            continue
        t = sv["tundra-boot"][load_name]
        k = sv.get("kea", {}).get(load_name)
        m = sv.get("dnsmasq", {}).get(load_name)
        peers = []
        if k:
            peers.append(f"Kea {num(k['offered'])}")
        if m:
            peers.append(f"dnsmasq {num(m['offered'])}")
        ratio = t["offered"] / k["offered"] if k and k["offered"] else None
        capped = " (the search's ceiling)" if t["capped"] else ""
        row(f"DHCP {label}, 0 drops, leases persisted", f"{num(t['offered'])}{capped}", ", ".join(peers) or "—",
            (f"{ratio:.2f}× Kea" if ratio else "—") + (f", {t['offered'] / m['offered']:.1f}× dnsmasq" if m and m["offered"] else ""),
            "≥ 1.5× Kea", ratio >= 1.5 if ratio else None)
    cpu = {name: x["new"].get("cpu_ms_per_1000") for name, x in sv.items() if "new" in x}
    if cpu.get("tundra-boot") and cpu.get("kea"):
        row("DHCP server CPU per 1,000 new-client exchanges at that rate (ms)", num(cpu["tundra-boot"]),
            ", ".join(f"{'Kea' if k == 'kea' else k} {num(v)}" for k, v in cpu.items() if k != "tundra-boot" and v),
            f"{cpu['kea'] / cpu['tundra-boot']:.2f}× less than Kea", "—")
    chart("dhcp-lease-rate.svg", {
        "title": "DHCP: answered exchanges per second at each server's 0-drop rate",
        "x": "second of the run", "y": "leases per second",
        "series": [{"name": name, "points": [[s + 1, v] for s, v in enumerate(x["new"]["series"])]}
                   for name, x in sv.items() if "new" in x],
    }, f"DHCP lease rate over time, new clients ({d['clients']:,} distinct MACs), at the highest 0-drop rate each server reached.")

# --- switch ------------------------------------------------------------------------
sw = load("switch.json")
if sw:
    a, b = sw["batched"], sw["per_change"]
    row(f"switch: {sw['moves']} port moves, one emulated switch (s; sessions)", f"{num(a['seconds'])}; {a['sessions']}",
        f"{num(b['seconds'])}; {b['sessions']} (one session per change, the generic-switch way)",
        f"{b['seconds'] / a['seconds']:.0f}×", "≥ 20×", b["seconds"] / a["seconds"] >= 20)
    p = sw["parallel_8"]
    row(f"switch: {p['moves']} port moves on 8 switches at once (s; sessions)", f"{num(p['seconds'])}; {p['sessions']}",
        "no peer run", "—", "—")
fb = load("fabric.json")
if fb:
    row(f"switch through tundrad: {fb['nodes']} nodes change networks on {fb['switches']} switches, until every port "
        f"reads back (s; sessions)", f"{num(fb['seconds'])}; {fb['sessions']}",
        "no peer run (Neutron with networking-generic-switch is not installed here; it opens one session per "
        "change, as in the row above)", "—", "—")
    chart("switch-through-tundrad.svg", {
        "title": f"{fb['nodes']} nodes change networks on {fb['switches']} switches: each port read back",
        "x": "port (sorted)", "y": "seconds since the first request",
        "series": [{"name": "port read back in the new VLAN", "points": [[k + 1, t] for k, t in enumerate(fb["per_port"])]}],
    }, "Switch ports through tundrad: when each port was read back in its node's new network.")

# --- Terraform ---------------------------------------------------------------------
tf = load("terraform.json")
if tf:
    n = tf["n"]
    for step, label in (("apply", "create"), ("plan", "plan (refresh, no changes)"), ("refresh", "apply -refresh-only")):
        a, b = tf["tundra_node"][step], tf["terraform_data"][step]
        goal, ok = ("≤ 1.5×", a / b <= 1.5) if step in ("plan", "refresh") else ("—", None)
        row(f"Terraform {label}, {n:,} resources (s)", f"{num(a)} (tundra_node)", f"{num(b)} (terraform_data)",
            f"{a / b:.2f}×", goal, ok)
    row(f"provider RSS during a plan of {n:,} tundra_node (MB)", str(tf["provider_rss_mb"]), "no peer", "—", "—")

# --- images --------------------------------------------------------------------------
ag = load("agent.json")
if ag:
    r = ag["dd"] / ag["agent"]
    runs = f", median of {len(ag['agent_runs'])}" if ag.get("agent_runs") else ""
    row(f"image write, {ag['mib']} MiB onto a disk file (MiB/s{runs})",
        f"{num(ag['mib'] / ag['agent'])} (tundra-agent: HTTP, sha256 inline, fsync)",
        f"{num(ag['mib'] / ag['dd'])} (dd, local copy, fsync)", f"{100 * r:.0f} % of dd", "≥ 90 %", r >= 0.9)
lab = load("lab.json")
if lab:
    r = lab["deploy"] / lab["dd_all"]
    row(f"lab deploy, {lab['machines']} machines × {lab['image_mib']} MiB (s)", num(lab["deploy"]),
        f"{num(lab['dd_all'])} (dd of the same bytes, one disk after another)", f"{r:.2f}×", "≤ 1.25×", r <= 1.25)
    chart("lab-deploy-per-machine.svg", {
        "title": f"Lab deploy, {lab['machines']} machines × {lab['image_mib']} MiB: each deploy operation",
        "x": "machine (sorted)", "y": "seconds",
        "series": [{"name": "deploy operation", "points": [[k + 1, s] for k, s in enumerate(lab["deploy_operations"])]},
                   {"name": "dd of one image", "points": [[1, lab["dd_one"]], [lab["machines"], lab["dd_one"]]]}],
    }, "Lab deploy: how long each machine's deploy operation took, beside one dd of the image.")

with open(header) as f:
    text = f.read()
text += "\n| figure | Tundra | peer | ratio | goal |\n|---|---|---|---|---|\n"
text += "".join(f"| {' | '.join(r)} |\n" for r in rows)
if charts:
    text += "\n## Charts\n\n"
    rel = os.path.relpath(chart_dir, os.path.dirname(out_md) or ".")
    text += "".join(f"{cap}\n\n![{name}]({rel}/{name})\n\n" for name, cap in charts)
os.makedirs(os.path.dirname(out_md) or ".", exist_ok=True)
with open(out_md, "w") as f:
    f.write(text)
short = sum(1 for r in rows if r[4].endswith("(short)"))
print(f"bench: {len(rows)} rows, {short} short of their goal", file=sys.stderr)
