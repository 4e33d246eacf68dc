#!/usr/bin/env python3
"""The control-plane benchmark's client: the same work, through the same kind
of HTTP client, against tundrad (machines with the `fake` driver) or Ironic
(nodes of `fake-hardware`). Standard library only.

    controlplane.py tundra URL TOKEN N [--threads T] [--image ID] [--phases LIST]
    controlplane.py ironic URL - N [--threads T]

Phases (each ends when every machine reached the phase's state, seen by
listing them all every 100 ms):
  enroll   create, manage, provide (cleaning)     -> available
  deploy   deploy an image                        -> active
  undeploy undeploy (cleaning again)              -> available

Prints one JSON object: per phase the wall time and each machine's time from
the phase's start until it was seen in the state (for the charts).
"""

import argparse
import http.client
import json
import queue
import sys
import threading
import time
import urllib.parse


class Api:
    """One keep-alive HTTP connection (one per client thread)."""

    def __init__(self, base, headers):
        u = urllib.parse.urlsplit(base)
        self.host, self.port = u.hostname, u.port
        self.headers = headers
        self.conn = None

    def call(self, method, path, body=None, ok=(200, 201, 202, 204)):
        for attempt in range(3):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
            try:
                data = json.dumps(body).encode() if body is not None else None
                h = dict(self.headers)
                if data is not None:
                    h["Content-Type"] = "application/json"
                self.conn.request(method, path, body=data, headers=h)
                r = self.conn.getresponse()
                raw = r.read()
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise
                continue
            if r.status not in ok:
                raise RuntimeError(f"{method} {path}: {r.status} {raw[:300]!r}")
            return json.loads(raw) if raw else None


class Tundra:
    stable = {"enroll": "available", "deploy": "active", "undeploy": "available"}
    failed = {"clean_failed", "deploy_failed", "inspect_failed", "error", "enroll"}

    def __init__(self, url, token, image, nodes=None):
        self.url, self.headers, self.image = url, {"Authorization": f"Bearer {token}"}, image
        # "PROJECT:FLAVOR": deploy by creating nodes (placement picks the
        # machine), undeploy by deleting them.
        self.nodes = nodes.split(":") if nodes else None
        self.node_fields = {}  # more of each node's create request (e.g. its networks)
        self.node_ids, self.named, self.lock = [], 0, threading.Lock()

    def api(self):
        return Api(self.url, self.headers)

    def interfaces(self, i):
        """Machine i's NICs: one that network boots."""
        return [{"mac": "02:be:%02x:%02x:%02x:01" % (i >> 16 & 255, i >> 8 & 255, i & 255), "pxe": True}]

    def enroll(self, api, i):
        m = api.call("POST", "/v1/machines", {
            "name": f"bench-{i:05d}",
            "bmc": {"driver": "fake", "address": f"bench-{i:05d}", "username": "admin"},
            "bmc_password": "fake",
            "interfaces": self.interfaces(i),
            "properties": {"disks": [{"name": "sda", "size_bytes": 480103981056, "rotational": False}]},
        })
        self.wait_state(api, m["id"], "manageable", after=lambda: self.action(api, m["id"], "manage"))
        self.action(api, m["id"], "provide")
        return m["id"]

    def action(self, api, mid, action, **extra):
        api.call("POST", f"/v1/machines/{mid}/actions", {"action": action, **extra})

    def deploy(self, api, mid):
        if not self.nodes:
            return self.action(api, mid, "deploy", image_id=self.image)
        project, flavor = self.nodes
        with self.lock:
            name = f"bench-{self.named:05d}"
            self.named += 1
        n = api.call("POST", "/v1/nodes", {"project_id": project, "name": name, "flavor_id": flavor,
                                           "image_id": self.image, **self.node_fields})
        with self.lock:
            self.node_ids.append(n["id"])

    def undeploy(self, api, mid):
        if not self.nodes:
            return self.action(api, mid, "delete")
        with self.lock:
            nid = self.node_ids.pop()
        api.call("DELETE", f"/v1/nodes/{nid}")

    def wait_state(self, api, mid, state, after):
        after()
        while True:
            m = api.call("GET", f"/v1/machines/{mid}")
            if m["provision_state"] == state:
                return
            if m["provision_state"] in self.failed and m.get("operation_id") is None:
                raise RuntimeError(f"{mid} is {m['provision_state']}: {m.get('last_error')}")
            time.sleep(0.05)

    def states(self, api):
        out, after = {}, None
        while True:
            q = "/v1/machines?limit=500" + (f"&after={after}" if after else "")
            page = api.call("GET", q)
            for m in page["items"]:
                out[m["id"]] = (m["provision_state"], m.get("last_error"))
            after = page.get("next")
            if not after:
                return out


class Ironic:
    stable = {"enroll": "available", "deploy": "active", "undeploy": "available"}
    failed = {"clean failed", "deploy failed", "inspect failed", "error", "enroll"}

    def __init__(self, url):
        self.url = url
        self.headers = {"X-OpenStack-Ironic-API-Version": "latest"}

    def api(self):
        return Api(self.url, self.headers)

    def enroll(self, api, i):
        n = api.call("POST", "/v1/nodes", {"name": f"bench-{i:05d}", "driver": "fake-hardware"})
        self.wait_state(api, n["uuid"], "manageable", after=lambda: self.target(api, n["uuid"], "manage"))
        self.target(api, n["uuid"], "provide")
        return n["uuid"]

    def target(self, api, nid, target):
        api.call("PUT", f"/v1/nodes/{nid}/states/provision", {"target": target})

    def deploy(self, api, nid):
        self.target(api, nid, "active")

    def undeploy(self, api, nid):
        self.target(api, nid, "deleted")

    def wait_state(self, api, nid, state, after):
        after()
        while True:
            n = api.call("GET", f"/v1/nodes/{nid}?fields=provision_state,last_error")
            if n["provision_state"] == state:
                return
            if n["provision_state"] in self.failed and n["provision_state"] != "enroll":
                raise RuntimeError(f"{nid} is {n['provision_state']}: {n.get('last_error')}")
            time.sleep(0.05)

    def states(self, api):
        out, marker = {}, None
        while True:
            q = "/v1/nodes?fields=uuid,provision_state,last_error&limit=1000" + (f"&marker={marker}" if marker else "")
            page = api.call("GET", q)
            for n in page["nodes"]:
                out[n["uuid"]] = (n["provision_state"], n.get("last_error"))
            if len(page["nodes"]) < 1000:
                return out
            marker = page["nodes"][-1]["uuid"]


def start_pool(side, work, items, threads):
    """Start `threads` threads running `work(api, item)` for each item, each
    with its own connection. Returns (threads, results, errors), filled in
    as they go: an item's result is what `work` returned, or the item."""
    q = queue.Queue()
    for x in items:
        q.put(x)
    made, errors = [], []

    def worker():
        api = side.api()
        while True:
            try:
                x = q.get_nowait()
            except queue.Empty:
                return
            try:
                r = work(api, x)
                made.append(x if r is None else r)
            except Exception as e:  # reported by the caller, after the others finish
                errors.append(str(e))

    ts = [threading.Thread(target=worker) for _ in range(threads)]
    for t in ts:
        t.start()
    return ts, made, errors


def phase(side, name, work, threads, ids):
    """Run `work(api, item)` for each item on `threads` threads; then wait
    until every machine is in the phase's state. Returns (seconds, per-machine
    seconds, ids)."""
    want = side.stable[name]
    start = time.monotonic()
    ts, made, errors = start_pool(side, work, ids, threads)
    seen, api = {}, side.api()
    deadline = start + 3600
    while True:
        alive = any(t.is_alive() for t in ts)
        for mid, (st, err) in side.states(api).items():
            if st == want and mid not in seen:
                seen[mid] = time.monotonic() - start
            elif st in side.failed and st != "enroll":
                errors.append(f"{mid} is {st}: {err}")
        if errors:
            raise SystemExit(f"{name}: {errors[0]} ({len(errors)} failures)")
        if not alive and len(seen) >= len(ids) and all(m in seen for m in made):
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"{name}: only {len(seen)} of {len(ids)} reached {want} within an hour")
        # Every 100 ms, or less often at scale: a listing of 10,000 machines
        # is 20 pages, and the client shares the cores with the server.
        time.sleep(max(0.1, len(ids) / 10000))
    for t in ts:
        t.join()
    return time.monotonic() - start, sorted(seen.values()), made


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) // 1024 for line in f if line.startswith("VmRSS:"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("side", choices=["tundra", "ironic"])
    ap.add_argument("url")
    ap.add_argument("token")
    ap.add_argument("n", type=int)
    ap.add_argument("--threads", type=int, default=10)
    ap.add_argument("--image")
    ap.add_argument("--phases", default="enroll,deploy,undeploy")
    ap.add_argument("--nodes", help="tundra: PROJECT:FLAVOR, deploy through nodes")
    ap.add_argument("--rss-pid", type=int, help="record this process's RSS after each phase")
    a = ap.parse_args()
    side = Tundra(a.url, a.token, a.image, a.nodes) if a.side == "tundra" else Ironic(a.url)
    out = {"side": a.side, "machines": a.n, "threads": a.threads, "through": "nodes" if a.nodes else "machines",
           "phases": {}}
    ids = list(range(a.n))
    for name in a.phases.split(","):
        work = {"enroll": side.enroll, "deploy": side.deploy, "undeploy": side.undeploy}[name]
        secs, per, made = phase(side, name, work, a.threads, ids)
        if name == "enroll":
            ids = made
        out["phases"][name] = {"seconds": round(secs, 3), "per_machine": [round(x, 3) for x in per]}
        if a.rss_pid:
            out["phases"][name]["rss_mb"] = rss_mb(a.rss_pid)
        print(f"{a.side} {name}: {a.n} machines in {secs:.2f} s", file=sys.stderr)
    json.dump(out, sys.stdout)
    print()


if __name__ == "__main__":
    main()
