#!/usr/bin/env python3
"""The switch benchmark through tundrad, end to end: N nodes, each machine
cabled to one of S emulated switches (fake-switches' Cisco over SSH), change
networks; the figure is the time from the first PATCH until every port reads
back in the new network's VLAN, as tundrad reports after reading the switch.

    fabric.py URL TOKEN PROJECT FLAVOR IMAGE N --python PY --peer SCRIPT [--switches S]

tundrad must run its `fake` hardware driver. The machines are enrolled and
cleaned (their ports read back on the provisioning VLAN), N nodes are made on
network A and wait until their ports read back in A's VLAN, then every node is
moved to network B at once. Prints one JSON object: the move's seconds, when
each port was seen in B (for the chart), and the SSH sessions the switches
accepted during the move (counted by the emulator). Standard library only.
"""

import argparse
import json
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from controlplane import Api, Tundra, phase, start_pool  # noqa: E402

PASSWORD = "bench-switch-password"


class Cabled(Tundra):
    """Machines with a second NIC cabled to a switch port."""

    def __init__(self, url, token, image, project, flavor, cabling):
        super().__init__(url, token, image, f"{project}:{flavor}")
        self.cabling = cabling  # i -> (switch, port)

    def interfaces(self, i):
        sw, port = self.cabling[i]
        mac = "02:fa:%02x:%02x:%02x:02" % (i >> 16 & 255, i >> 8 & 255, i & 255)
        return super().interfaces(i) + [{"mac": mac, "switch": sw, "port": port}]


def host_key(port):
    """The switch's host key fingerprint, as an operator takes it."""
    scan = subprocess.run(["ssh-keyscan", "-p", str(port), "127.0.0.1"], capture_output=True, text=True, timeout=30)
    lines = [line for line in scan.stdout.splitlines() if line and not line.startswith("#")]
    if not lines:
        raise SystemExit(f"ssh-keyscan found no host key on 127.0.0.1:{port}: {scan.stderr.strip()}")
    fp = subprocess.run(["ssh-keygen", "-lf", "-"], input=lines[0] + "\n", capture_output=True, text=True, check=True)
    return fp.stdout.split()[1]


def ports_at(api, switches, segment):
    """The (switch, port) of every managed port that reads back in
    `segment`."""
    seen = set()
    for name, sid in switches.items():
        for p in api.call("GET", f"/v1/switches/{sid}/ports"):
            if p["state"] == "in_sync" and p["actual_segment"] == segment:
                seen.add((name, p["port"]))
    return seen


def wait_ports(api, switches, segment, n, start=None, errors=(), deadline_s=1800):
    """Seconds since `start` (default: now) until all `n` ports read back in
    `segment`, and when each did."""
    start, when = start or time.monotonic(), {}
    while len(when) < n:
        now = time.monotonic() - start
        for k in ports_at(api, switches, segment):
            when.setdefault(k, now)
        if errors:
            raise SystemExit(f"fabric: {errors[0]} ({len(errors)} failures)")
        if now > deadline_s:
            raise SystemExit(f"only {len(when)} of {n} ports read back in segment {segment} within {deadline_s} s")
        time.sleep(0.1)
    return time.monotonic() - start, sorted(when.values())


def main():
    ap = argparse.ArgumentParser()
    for a in ["url", "token", "project", "flavor", "image"]:
        ap.add_argument(a)
    ap.add_argument("n", type=int)
    ap.add_argument("--switches", type=int, default=8)
    ap.add_argument("--python", required=True, help="the Python that has fake-switches")
    ap.add_argument("--peer", required=True, help="scripts/peers/fake-switches.py")
    a = ap.parse_args()

    per = -(-a.n // a.switches)
    names = [f"leaf{k + 1}" for k in range(a.switches)]
    port_list = ",".join(f"FastEthernet0/{j + 1}" for j in range(per))
    peer = subprocess.Popen(
        [a.python, a.peer, "--count-sessions", "--user", "admin", "--password-env", "BENCH_SWITCH_PASSWORD",
         *[f"cisco_generic:{n}:{port_list}" for n in names]],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, "BENCH_SWITCH_PASSWORD": PASSWORD})
    try:
        listening = json.loads(peer.stdout.readline())
        sessions = {"n": 0}

        def count():
            for line in peer.stdout:
                if '"session"' in line:
                    sessions["n"] += 1
        threading.Thread(target=count, daemon=True).start()

        side_api = Api(a.url, {"Authorization": f"Bearer {a.token}"})
        pn = side_api.call("POST", "/v1/physical-networks", {
            "name": "bench-fabric", "kind": "ethernet", "segment_range": [100, 199], "provisioning_segment": 10})
        switches = {}
        for name in names:
            s = side_api.call("POST", "/v1/switches", {
                "name": name, "physical_network_id": pn["id"], "dialect": "cisco_ios",
                "address": f"127.0.0.1:{listening[name]}", "username": "admin", "password": PASSWORD,
                "host_key": host_key(listening[name])})
            switches[name] = s["id"]
        nets = [side_api.call("POST", "/v1/networks", {"project_id": a.project, "name": f"bench-{x}",
                                                      "physical_network_id": pn["id"]}) for x in "ab"]
        cabling = {i: (names[i % a.switches], f"FastEthernet0/{i // a.switches + 1}") for i in range(a.n)}
        side = Cabled(a.url, a.token, a.image, a.project, a.flavor, cabling)

        _, _, machines = phase(side, "enroll", side.enroll, 10, list(range(a.n)))
        wait_ports(side_api, switches, 10, a.n)
        side.node_fields = {"networks": [{"network_id": nets[0]["id"]}]}
        phase(side, "deploy", side.deploy, 10, machines)
        wait_ports(side_api, switches, nets[0]["segment"], a.n)
        print(f"fabric: {a.n} nodes on {nets[0]['name']} (segment {nets[0]['segment']}) on {a.switches} switches",
              file=sys.stderr)

        # The move: every node to network B at once, 10 client threads,
        # watched while the PATCHes go out (ports move as soon as their node asks).
        before = sessions["n"]
        start = time.monotonic()
        move = {"networks": [{"network_id": nets[1]["id"]}]}
        ts, _, errors = start_pool(side, lambda api, nid: api.call("PATCH", f"/v1/nodes/{nid}", move),
                                   side.node_ids, 10)
        secs, per_port = wait_ports(side_api, switches, nets[1]["segment"], a.n, start=start, errors=errors)
        for t in ts:
            t.join()
        if errors:
            raise SystemExit(f"fabric: {errors[0]} ({len(errors)} failures)")
        moved = sessions["n"] - before
        print(f"fabric: {a.n} nodes moved in {secs:.2f} s, {moved} sessions", file=sys.stderr)
        json.dump({"nodes": a.n, "switches": a.switches, "seconds": round(secs, 3),
                   "sessions": moved, "per_port": [round(x, 3) for x in per_port]}, sys.stdout)
        print()
    finally:
        peer.kill()
        peer.wait()


if __name__ == "__main__":
    main()
