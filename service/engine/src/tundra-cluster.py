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
# Kubernetes (k3s, air-gapped): the node fetches the k3s bundle tundrad
# serves beside the plan (tundra_cluster_bundle), checks its sha256, and
# installs the k3s binary and the images tarballs from it. It writes k3s's
# configuration as the plan gives it (its role's token, node IP, node name,
# labels, and how it joins), adding the interface that holds its cluster
# address for flannel, and -- the bootstrap server, before the cluster
# exists -- the client CA tundrad signs kubeconfigs with. Then it starts its
# role's unit (k3s or k3s-agent, which cloud-init installed). A server has
# joined once the API server answers /readyz; an agent once its unit runs.
# The bootstrap server reports the full (CA-pinned) tokens k3s wrote, the
# API server's CA, which nodes Kubernetes lists as Ready, and removes the
# leaving ones: drained (`kubectl drain`), then deleted.
#
# Usage: tundra-cluster BASE   (BASE: http://ADDRESS:PORT/openstack/latest)
import hashlib
import http.client
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request

# Every path this agent writes is under ROOT: "" on a node; a temporary
# directory when tundrad's tests exercise the agent's parts.
ROOT = os.environ.get("TUNDRA_CLUSTER_ROOT", "")
TOKEN_CACHE = ROOT + "/var/lib/tundra/metadata_token"
SEED_TOKEN = ROOT + "/var/lib/cloud/seed/config_drive/openstack/latest/tundra_metadata_token"
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


def write_private(path, text, mode=0o600):
    """Write a file atomically, readable by root only (mode); a directory it
    makes for a private file is root's only too."""
    os.makedirs(os.path.dirname(path), mode=0o700 if mode == 0o600 else 0o755, exist_ok=True)
    tmp = path + ".tundra-new"
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "w") as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


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


def leaving(plan, nodes, removed):
    """The members tundrad lists as leaving that the control plane still
    has (never this node itself); those it no longer has go into removed."""
    out = []
    for name in plan.get("remove", []):
        if name == plan["node"]:
            continue
        if name in nodes:
            out.append(name)
        else:
            removed.append(name)
    return out


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
    for name in leaving(plan, nodes, removed):
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


K3S_BIN = ROOT + "/usr/local/bin/k3s"
K3S_CONFIG = ROOT + "/etc/rancher/k3s/config.yaml"
K3S_IMAGES = ROOT + "/var/lib/rancher/k3s/agent/images"
K3S_TLS = ROOT + "/var/lib/rancher/k3s/server/tls"
K3S_SERVER = ROOT + "/var/lib/rancher/k3s/server"
BUNDLE_DONE = ROOT + "/var/lib/tundra/k3s-bundle.sha256"
BUNDLE_PART = ROOT + "/var/lib/tundra/k3s-bundle.part"
LABELS_DONE = ROOT + "/var/lib/tundra/k3s-labels.json"
# systemd's restart count of the k3s unit when its configuration was last written.
RESTARTS_BASE = ROOT + "/var/lib/tundra/k3s-restarts"
# A configuration whose unit restarts this often is reported failed.
MAX_RESTARTS = 5
# Rounds in a row a bundle download may fail before it is reported.
BUNDLE_TRIES = 6
bundle_failures = 0


class BundleMismatch(Exception):
    """The bytes downloaded are not the bundle tundrad named."""
# What a bundle may hold besides the k3s binary: the air-gap images.
IMAGE_SUFFIXES = (".tar", ".tar.gz", ".tar.zst", ".tar.lz4", ".tar.bz2")


def fetch_bundle(base, bundle):
    """Download the bundle (resuming a partial one), checked against its sha256."""
    os.makedirs(os.path.dirname(BUNDLE_PART), exist_ok=True)
    have = os.path.getsize(BUNDLE_PART) if os.path.exists(BUNDLE_PART) else 0
    if have > bundle["size_bytes"]:
        os.unlink(BUNDLE_PART)
        have = 0
    if have < bundle["size_bytes"]:
        headers = {"X-Tundra-Metadata-Token": token()}
        if have:
            headers["Range"] = "bytes=%d-" % have
        req = urllib.request.Request(base + "/" + bundle["file"], headers=headers)
        with urllib.request.urlopen(req, timeout=60) as r:
            mode = "ab" if have and r.status == 206 else "wb"
            with open(BUNDLE_PART, mode) as f:
                while True:
                    chunk = r.read(1 << 20)
                    if not chunk:
                        break
                    f.write(chunk)
    digest = hashlib.sha256()
    with open(BUNDLE_PART, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    if digest.hexdigest() != bundle["sha256"]:
        os.unlink(BUNDLE_PART)
        raise BundleMismatch("the k3s bundle downloaded hashes to %s, not %s; fetching it again"
                           % (digest.hexdigest(), bundle["sha256"]))


def install_bundle(base, bundle):
    """The k3s binary and the images tarballs from the bundle, once per bundle.
    Members are read by name and written where they belong, never extracted
    by their own paths (a bundle cannot write outside those places)."""
    try:
        with open(BUNDLE_DONE) as f:
            if f.read().strip() == bundle["sha256"]:
                return
    except OSError:
        pass
    fetch_bundle(base, bundle)
    found_binary = False
    images = 0
    with tarfile.open(BUNDLE_PART, "r:*") as tar:
        for m in tar:
            if not m.isfile():
                continue
            name = os.path.basename(m.name)
            if name == "k3s":
                dest, mode = K3S_BIN, 0o755
                found_binary = True
            elif name.startswith("k3s-airgap-images") and name.endswith(IMAGE_SUFFIXES):
                dest, mode = os.path.join(K3S_IMAGES, name), 0o644
                images += 1
            else:
                continue
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            src = tar.extractfile(m)
            tmp = dest + ".tundra-new"
            with open(tmp, "wb") as out:
                while True:
                    chunk = src.read(1 << 20)
                    if not chunk:
                        break
                    out.write(chunk)
            os.chmod(tmp, mode)
            os.replace(tmp, dest)
    if not found_binary:
        raise RuntimeError("the k3s bundle holds no file named k3s; the site must register a tar of the k3s "
                           "binary and its k3s-airgap-images tarball")
    write_private(BUNDLE_DONE, bundle["sha256"] + "\n", 0o644)
    os.unlink(BUNDLE_PART)
    say("installed k3s and %d images tarball(s) from the bundle" % images)


def interface_of(address):
    """The interface holding an IPv4 address (flannel's interface)."""
    for line in run(["ip", "-o", "-4", "addr", "show"]).splitlines():
        fields = line.split()
        if "inet" in fields and fields[fields.index("inet") + 1].split("/")[0] == address:
            return fields[1]
    raise RuntimeError("no interface holds this node's cluster address %s" % address)


def unit_of(plan):
    return "k3s" if plan["role"] == "control_plane" else "k3s-agent"


def kubectl(*args):
    return run([K3S_BIN, "kubectl"] + list(args))


def k3s_ready_api():
    try:
        return kubectl("get", "--raw", "/readyz") == "ok"
    except (RuntimeError, OSError):
        return False


def restarts_of(unit):
    return int(run(["systemctl", "show", "-p", "NRestarts", "--value", unit]) or "0")


def k3s_join(base, plan):
    """Returns a report, or None while there is nothing to say yet."""
    global bundle_failures
    unit = unit_of(plan)
    active = subprocess.run(["systemctl", "is-active", "--quiet", unit]).returncode == 0
    if active:
        if plan["role"] == "control_plane" and not k3s_ready_api():
            return None  # the API server is still starting
        return {"outcome": "joined"}
    if not plan.get("k3s_config"):
        say("waiting for the bootstrap server's address and the cluster's pinned token")
        return None
    try:
        install_bundle(base, plan["bundle"])
        bundle_failures = 0
    except (OSError, http.client.HTTPException, BundleMismatch) as e:
        # The network or the metadata service, for a while: tried again,
        # and reported only once it keeps failing.
        bundle_failures += 1
        if bundle_failures < BUNDLE_TRIES:
            say("fetching the k3s bundle (try %d of %d): %s" % (bundle_failures, BUNDLE_TRIES, e))
            return None
        raise RuntimeError("fetching the k3s bundle failed %d times: %s" % (bundle_failures, e))
    config = dict(plan["k3s_config"])
    config["flannel-iface"] = interface_of(plan["address"])
    text = json.dumps(config, indent=2, sort_keys=True) + "\n"
    try:
        with open(K3S_CONFIG) as f:
            changed = f.read() != text
    except OSError:
        changed = True
    ca = plan.get("client_ca")
    if ca and not os.path.exists(os.path.join(K3S_TLS, "client-ca.key")):
        # Before k3s first starts: it keeps CA files it finds.
        # (The key first: the directories it makes are root's only.)
        write_private(os.path.join(K3S_TLS, "client-ca.key"), ca["key"])
        write_private(os.path.join(K3S_TLS, "client-ca.crt"), ca["certificate"], 0o644)
        changed = True
    if changed:
        # A new configuration gets a fresh start, and its own count of restarts.
        write_private(K3S_CONFIG, text)
        run(["systemctl", "daemon-reload"])
        subprocess.run(["systemctl", "reset-failed", unit], capture_output=True)
        # (Counted from after reset-failed, which may zero systemd's count.)
        write_private(RESTARTS_BASE, "%d\n" % restarts_of(unit), 0o644)
        run(["systemctl", "enable", unit])
        run(["systemctl", "restart", "--no-block", unit])
        say("started %s with its configuration" % unit)
        return None
    try:
        with open(RESTARTS_BASE) as f:
            base_count = int(f.read().strip() or "0")
    except (OSError, ValueError):
        base_count = 0
    now = restarts_of(unit)
    restarts = now - base_count if now >= base_count else now  # (a reboot starts systemd's count again)
    if restarts >= MAX_RESTARTS:
        tail = subprocess.run(["journalctl", "-u", unit, "-n", "15", "--no-pager", "-o", "cat"],
                              capture_output=True, text=True).stdout
        raise RuntimeError("%s restarted %d times with this configuration; its last words: %s"
                           % (unit, restarts, tail.strip()[-1500:]))
    run(["systemctl", "start", "--no-block", unit])
    return None


def k3s_nodes():
    """Kubernetes' nodes: name -> (ready and schedulable, Ready)."""
    out = {}
    for n in json.loads(kubectl("get", "nodes", "-o", "json"))["items"]:
        conds = {c["type"]: c["status"] for c in n.get("status", {}).get("conditions", [])}
        up = conds.get("Ready") == "True"
        out[n["metadata"]["name"]] = (up and not n.get("spec", {}).get("unschedulable", False), up)
    return out


def k3s_manage(plan, report):
    """The bootstrap server's round: full tokens, the API server's CA,
    members seen, removals. A failure here is logged and left out of the
    report: it says nothing of this node's own join."""
    try:
        for key, path in (("manager_token", "token"), ("worker_token", "agent-token")):
            with open(os.path.join(K3S_SERVER, path)) as f:
                report[key] = f.read().strip()
        with open(os.path.join(K3S_TLS, "server-ca.crt")) as f:
            report["ca_certificate"] = f.read()
        nodes = k3s_nodes() if k3s_ready_api() else None
    except (RuntimeError, OSError, ValueError, KeyError) as e:
        say("managing the cluster: %s" % e)
        return
    if nodes is None:
        say("the API server does not answer /readyz")
        return
    removed = []
    for name in leaving(plan, nodes, removed):
        try:
            # A node that is down cannot evict anything: it is deleted as it
            # is (its pods are rescheduled once it is gone).
            if nodes[name][1]:
                kubectl("drain", name, "--ignore-daemonsets", "--delete-emptydir-data", "--force", "--timeout=90s")
            kubectl("delete", "node", name, "--wait=true")
        except RuntimeError as e:
            say("removing %s: %s" % (name, e))
            continue
        say("drained and removed " + name)
        removed.append(name)
        del nodes[name]
    if removed:
        report["removed"] = removed
    report["seen"] = {name: ready for name, (ready, _) in nodes.items()}
    k3s_labels(plan, nodes)


def k3s_labels(plan, nodes):
    """The cluster's labels on every node: those changed since they were last
    applied are set, those dropped removed (nodes that join later take them
    from their own configuration too)."""
    want = plan.get("labels", {})
    try:
        with open(LABELS_DONE) as f:
            done = json.load(f)
    except (OSError, ValueError):
        done = None
    if done == {"labels": want, "nodes": sorted(nodes)}:
        return
    args = ["%s=%s" % (k, v) for k, v in sorted(want.items())]
    args += ["%s-" % k for k in sorted((done or {}).get("labels", {})) if k not in want]
    try:
        if args and nodes:
            kubectl("label", "nodes", "--overwrite", *sorted(nodes), *args)
    except RuntimeError as e:
        say("labelling the nodes: %s" % e)
        return
    write_private(LABELS_DONE, json.dumps({"labels": want, "nodes": sorted(nodes)}) + "\n", 0o644)


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
            if plan["kind"] == "swarm":
                report = swarm_join(plan)
                if report is not None and plan["bootstrap"]:
                    swarm_manage(plan, report)
            elif plan["kind"] == "kubernetes":
                report = k3s_join(base, plan)
                if report is not None and plan["bootstrap"]:
                    k3s_manage(plan, report)
            else:
                raise RuntimeError("cluster kind %s: this agent joins swarm and kubernetes clusters" % plan["kind"])
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
