#!/usr/bin/python3
# tundra-cluster: joins this node to its cluster as tundrad's plan says, and
# reports back.
#
# tundrad puts this on every node of a cluster, run by a systemd service
# that restarts it. Each round it reads the node's plan from the metadata
# service (tundra_cluster.json, with the node's metadata token from its
# config drive): its role, the address its cluster traffic uses, whether it
# initialises the cluster (the bootstrap node) or joins it through the
# bootstrap node's address, and its role's join secret -- only its own.
#
# Swarm: the bootstrap node runs `docker swarm init` on its cluster address
# and reports the manager and worker tokens Swarm made (tundrad seals them
# and hands each node only its role's). The others `docker swarm join`.
# Each node reports `joined`, or `failed` with the command's output. The
# bootstrap node then keeps reporting which nodes Swarm lists and whether
# each is Ready, and removes the nodes tundrad lists as leaving: drained,
# their tasks moved away, demoted if managers, then removed from the swarm;
# it reports them `removed` and tundrad deletes their nodes. A report goes
# only when it differs from the last one tundrad took.
#
# Usage: tundra-cluster BASE   (BASE: http://ADDRESS:PORT/openstack/latest)
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

TOKEN_CACHE = "/var/lib/tundra/metadata_token"
SEED_TOKEN = "/var/lib/cloud/seed/config_drive/openstack/latest/tundra_metadata_token"
DRIVE_TOKEN = "openstack/latest/tundra_metadata_token"
ROUND = 10


def say(msg):
    print("tundra-cluster: " + msg, flush=True)


def token():
    for p in (SEED_TOKEN, TOKEN_CACHE):
        try:
            with open(p) as f:
                return f.read().strip()
        except OSError:
            pass
    found = subprocess.run(["blkid", "-t", "LABEL=config-2", "-o", "device"], capture_output=True, text=True)
    for dev in found.stdout.split():
        with tempfile.TemporaryDirectory() as d:
            if subprocess.run(["mount", "-o", "ro", dev, d]).returncode != 0:
                continue
            try:
                with open(os.path.join(d, DRIVE_TOKEN)) as f:
                    t = f.read().strip()
            finally:
                subprocess.run(["umount", d])
            os.makedirs(os.path.dirname(TOKEN_CACHE), exist_ok=True)
            with open(os.open(TOKEN_CACHE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
                f.write(t + "\n")
            return t
    sys.exit("tundra-cluster: no metadata token: no config drive (LABEL=config-2) and no cloud-init seed")


def call(base, name, body=None):
    data = None if body is None else json.dumps(body).encode()
    headers = {"X-Tundra-Metadata-Token": token()}
    if data is not None:
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(base + "/" + name, data=data, headers=headers, method="POST" if data else "GET")
    with urllib.request.urlopen(req, timeout=20) as r:
        raw = r.read()
        return json.loads(raw) if raw else None


def run(args, secret=None):
    """Run a command; its output (with any secret masked) on failure."""
    try:
        p = subprocess.run(args, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        shown = [("***" if secret and a == secret else a) for a in args]
        raise RuntimeError("%s: no answer in 300 s" % " ".join(shown))
    if p.returncode != 0:
        shown = [("***" if secret and a == secret else a) for a in args]
        out = (p.stdout + p.stderr).strip()
        if secret:
            out = out.replace(secret, "***")
        raise RuntimeError("%s: exit %d: %s" % (" ".join(shown), p.returncode, out[-1500:]))
    return p.stdout.strip()


def swarm_state():
    try:
        return run(["docker", "info", "--format", "{{.Swarm.LocalNodeState}}"])
    except RuntimeError:
        return "docker-unavailable"


def swarm_join(plan):
    """Returns a report, or None while there is nothing to do yet."""
    state = swarm_state()
    if state == "active":
        return {"outcome": "joined"}
    if state in ("docker-unavailable", "pending"):
        return None  # dockerd still starting, or a join under way: next round
    if state != "inactive":
        raise RuntimeError("this node's swarm state is %r; an operator must look at it" % state)
    addr = plan["address"]
    listen = ["--advertise-addr", addr, "--listen-addr", addr + ":2377", "--data-path-addr", addr]
    if plan["bootstrap"]:
        run(["docker", "swarm", "init"] + listen)
        say("initialised the swarm on " + addr)
        return {"outcome": "joined"}
    if not plan.get("secret") or not plan.get("join_address"):
        say("waiting for the bootstrap manager's token and address")
        return None
    run(["docker", "swarm", "join", "--token", plan["secret"]] + listen + [plan["join_address"] + ":2377"],
        secret=plan["secret"])
    say("joined the swarm through " + plan["join_address"])
    return {"outcome": "joined"}


def swarm_nodes():
    """Swarm's nodes: hostname -> (ID, role, ready and active, up)."""
    out = {}
    for line in run(["docker", "node", "ls", "--format", "{{json .}}"]).splitlines():
        n = json.loads(line)
        up = n.get("Status") == "Ready"
        ready = up and n.get("Availability") == "Active"
        out[n["Hostname"]] = (n["ID"], "manager" if n.get("ManagerStatus") else "worker", ready, up)
    return out


def swarm_manage(plan, report):
    """The bootstrap manager's round: tokens, members seen, removals. A
    failure here is logged and left out of the report: it says nothing of
    this node's own join."""
    try:
        report["manager_token"] = run(["docker", "swarm", "join-token", "-q", "manager"])
        report["worker_token"] = run(["docker", "swarm", "join-token", "-q", "worker"])
        nodes = swarm_nodes()
    except RuntimeError as e:
        say("managing the swarm: %s" % e)
        return
    removed = []
    for name in plan.get("remove", []):
        if name == plan["node"]:
            continue  # never this node itself
        if name not in nodes:
            removed.append(name)
            continue
        node_id, role, _, up = nodes[name]
        try:
            run(["docker", "node", "update", "--availability", "drain", node_id])
            # Drained: its tasks are told to shut down; wait until none runs there.
            states = run(["docker", "node", "ps", node_id, "--format", "{{.CurrentState}}"]).splitlines()
            busy = [st for st in states if st.startswith(("Running", "Starting", "Preparing"))]
            # (A node that is down runs nothing it could report: not waited for.)
            if busy and up:
                say("draining %s: %d task(s) still running there" % (name, len(busy)))
                continue
            if role == "manager":
                run(["docker", "node", "demote", node_id])
            run(["docker", "node", "rm", "--force", node_id])
        except RuntimeError as e:
            say("removing %s: %s" % (name, e))
            continue
        say("removed " + name + " from the swarm")
        removed.append(name)
        del nodes[name]
    if removed:
        report["removed"] = removed
    report["seen"] = {name: ready for name, (_, _, ready, _) in nodes.items()}


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: tundra-cluster BASE_URL")
    base = sys.argv[1].rstrip("/")
    last_error = None
    sent = None  # the last report tundrad took
    while True:
        report = None
        try:
            plan = call(base, "tundra_cluster.json")
            if plan["kind"] != "swarm":
                raise RuntimeError("cluster kind %s: this agent joins swarm clusters" % plan["kind"])
            report = swarm_join(plan)
            if report is not None and plan["bootstrap"]:
                swarm_manage(plan, report)
            last_error = None
        except urllib.error.HTTPError as e:
            say("metadata service: HTTP %d: %s" % (e.code, e.read().decode(errors="replace")[:500]))
        except urllib.error.URLError as e:
            say("metadata service: %s; trying again" % e)
        except Exception as e:  # noqa: BLE001 -- every failure is reported, then retried
            msg = str(e)
            if msg != last_error:
                say("failed: " + msg)
            last_error = msg
            report = {"outcome": "failed", "error": msg}
        if report is not None and report != sent:
            try:
                call(base, "tundra_cluster_report", report)
                sent = report
            except Exception as e:  # noqa: BLE001 -- sent again next round
                say("could not report: %s" % e)
        time.sleep(ROUND)


if __name__ == "__main__":
    main()
