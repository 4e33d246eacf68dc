#!/usr/bin/env python3
"""DHCP under perfdhcp: tundra-boot vs Kea vs dnsmasq, each in the same pair
of network namespaces joined by a veth, every server persisting its leases to
a file. Run by scripts/bench.sh (needs root). Standard library only.

For each server and each load, a rate search: the offered rate doubles from
--start until an exchange is dropped (in two probes in a row), then bisects; each probe starts the
server afresh on an empty lease file, so "new clients" are new. The answer is
the highest offered rate that perfdhcp saw answered with 0 drops.

  new       4-way exchanges (DISCOVER-OFFER-REQUEST-ACK) of --clients MACs
  renew     the same plus as many renewals (REQUEST-ACK from BOUND) per second

Prints JSON: per server and load the 0-drop rate, the probes, and the
per-second answered exchanges of the best probe (for the lease-rate chart),
and the server's CPU time per 1,000 exchanges in that probe (perfdhcp shares
the cores and is usually the bound: this says how much each server had left).
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

# A /12: room for a million clients, so "new" stays new at any rate.
NET, SERVER, CLIENT, MASK = "10.80.0.0/12", "10.80.0.1", "10.95.255.254", "255.240.0.0"
POOL = ("10.81.0.0", "10.94.255.255")


def sh(*args, **kw):
    return subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kw)


class Netns:
    def __init__(self):
        n = os.getpid()
        self.srv, self.cli, self.vs, self.vc = f"bds{n}", f"bdc{n}", f"vbs{n}", f"vbc{n}"

    def __enter__(self):
        sh("ip", "netns", "add", self.srv)
        sh("ip", "netns", "add", self.cli)
        sh("ip", "link", "add", self.vs, "type", "veth", "peer", "name", self.vc)
        sh("ip", "link", "set", self.vs, "netns", self.srv)
        sh("ip", "link", "set", self.vc, "netns", self.cli)
        sh("ip", "-n", self.srv, "addr", "add", f"{SERVER}/12", "dev", self.vs)
        sh("ip", "-n", self.cli, "addr", "add", f"{CLIENT}/12", "dev", self.vc)
        for ns, dev in ((self.srv, self.vs), (self.cli, self.vc)):
            sh("ip", "-n", ns, "link", "set", dev, "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        return self

    def __exit__(self, *exc):
        for ns in (self.srv, self.cli):
            subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)


def server_cmd(kind, net, d, tundra_bin):
    leases = os.path.join(d, "leases")
    if kind == "tundra-boot":
        return [tundra_bin, net.vs, SERVER, *POOL, MASK, leases], {}
    if kind == "kea":
        conf = {
            "Dhcp4": {
                "interfaces-config": {"interfaces": [net.vs], "dhcp-socket-type": "raw"},
                "lease-database": {"type": "memfile", "persist": True, "name": leases, "lfc-interval": 0},
                "valid-lifetime": 3600,
                "subnet4": [{"id": 1, "subnet": NET, "pools": [{"pool": " - ".join(POOL)}]}],
                "loggers": [{"name": "kea-dhcp4", "severity": "WARN",
                             "output_options": [{"output": os.path.join(d, "kea.log")}]}],
            }
        }
        path = os.path.join(d, "kea.json")
        with open(path, "w") as f:
            json.dump(conf, f)
        return ["kea-dhcp4", "-c", path], {"KEA_LOCKFILE_DIR": d, "KEA_PIDFILE_DIR": d}
    if kind == "dnsmasq":
        return [
            "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--port=0", "--user=root",
            f"--interface={net.vs}", "--bind-interfaces", "--dhcp-authoritative",
            f"--dhcp-range={POOL[0]},{POOL[1]},{MASK},1h", f"--dhcp-leasefile={leases}",
            "--dhcp-lease-max=1000000", "--no-ping", f"--pid-file={os.path.join(d, 'pid')}",
        ], {}
    raise ValueError(kind)


SERIES = re.compile(r"^sent: (\d+)/(\d+)(?:/(\d+))?; received: (\d+)/(\d+)(?:/(\d+))?; drops: (\d+)/(\d+)")


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def probe(net, kind, rate, load, secs, clients, tundra_bin):
    with tempfile.TemporaryDirectory(prefix="tundra-bench-dhcp-") as d:
        cmd, env = server_cmd(kind, net, d, tundra_bin)
        srv = subprocess.Popen(["ip", "netns", "exec", net.srv, *cmd], env={**os.environ, **env},
                               stdout=subprocess.DEVNULL, stderr=open(os.path.join(d, "log"), "w"))
        try:
            time.sleep(1.0)
            if srv.poll() is not None:
                sys.exit(f"bench: {kind} did not start: {open(os.path.join(d, 'log')).read()[-800:]}")
            cpu0 = cpu_seconds(srv.pid)  # `ip netns exec` execs the server: same PID
            args = ["perfdhcp", "-4", "-l", net.vc, "-r", str(rate), "-p", str(secs), "-R", str(clients), "-t", "1", "-W", "1000000"]
            if load == "renew":
                args += ["-f", str(rate)]
            out = subprocess.run(["ip", "netns", "exec", net.cli, *args], capture_output=True, text=True,
                                 timeout=secs + 30).stdout
            cpu = cpu_seconds(srv.pid) - cpu0
        finally:
            srv.terminate()
            try:
                srv.wait(5)
            except subprocess.TimeoutExpired:
                srv.kill()
                srv.wait()
    rate_line = re.search(r"^Rate: ([\d.]+)", out, re.M)
    drops = [int(x) for x in re.findall(r"^drops: (\d+)$", out, re.M)]
    sent = [int(x) for x in re.findall(r"^sent packets: (\d+)$", out, re.M)]
    if not rate_line or not drops:
        sys.exit(f"bench: perfdhcp printed no statistics against {kind}:\n{out[-1500:]}")
    # Answered 4-way exchanges (ACKs) per second, from the cumulative reports.
    series, last = [], 0
    for line in out.splitlines():
        m = SERIES.match(line)
        if m:
            acked = int(m.group(5)) + int(m.group(6) or 0)
            series.append(acked - last)
            last = acked
    return {
        "offered": rate,
        "rate": float(rate_line.group(1)),
        "sent": sum(sent),
        "drops": sum(drops),
        "answered": last,
        "server_cpu_s": round(cpu, 3),
        "series": series,
    }


def probe_twice(net, kind, rate, load, a, probes):
    """A probe, and once more if it dropped anything: a rate fails only when
    two probes in a row drop (a stray stall of the shared machine — page
    writeback, another process — is not the server's rate)."""
    for _ in range(2):
        p = probe(net, kind, rate, load, a.secs, a.clients, a.tundra_bin)
        probes.append(p)
        print(f"bench: dhcp {kind} {load} {rate}/s offered: {p['drops']} dropped", file=sys.stderr)
        if p["drops"] == 0:
            break
    return p


def search(net, kind, load, a):
    probes, good, bad = [], None, None
    rate = a.start
    while rate <= a.max_rate:
        p = probe_twice(net, kind, rate, load, a, probes)
        if p["drops"] == 0:
            good = p
            rate *= 2
        else:
            bad = p
            break
    for _ in range(a.bisect if bad else 0):
        lo = good["offered"] if good else 0
        rate = (lo + bad["offered"]) // 2
        if rate - lo < a.start // 4:
            break
        p = probe_twice(net, kind, rate, load, a, probes)
        if p["drops"] == 0:
            good = p
        else:
            bad = p
    return {
        "zero_drop_rate": good["rate"] if good else 0.0,
        "offered": good["offered"] if good else 0,
        "capped": bad is None,
        "series": good["series"] if good else [],
        # The server's CPU time per 1,000 answered exchanges at that rate.
        "cpu_ms_per_1000": round(1e6 * good["server_cpu_s"] / good["answered"], 1) if good and good["answered"] else None,
        "probes": [{k: v for k, v in p.items() if k != "series"} for p in probes],
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tundra-bin", required=True, help="tundra-boot's dhcp-serve example")
    ap.add_argument("--servers", default="tundra-boot,kea,dnsmasq")
    ap.add_argument("--loads", default="new,renew")
    ap.add_argument("--secs", type=int, default=5)
    ap.add_argument("--clients", type=int, default=1000000)
    ap.add_argument("--start", type=int, default=500)
    ap.add_argument("--max-rate", type=int, default=32000)
    ap.add_argument("--bisect", type=int, default=4)
    a = ap.parse_args()
    result = {"secs": a.secs, "clients": a.clients, "servers": {}}
    with Netns() as net:
        for kind in a.servers.split(","):
            result["servers"][kind] = {load: search(net, kind, load, a) for load in a.loads.split(",")}
    json.dump(result, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
