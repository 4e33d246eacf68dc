#!/usr/bin/env bash
# Dashboard benchmark (a command, not a test): how fast tundrad serves the
# dashboard's pages with many machines in the store, and its memory.
#
#   scripts/bench-ui.sh [MACHINES] [REQUESTS]      (defaults 10000, 50)
#
# Builds tundrad in release mode, starts it on SQLite (the embedded default)
# in a temp dir, enrolls MACHINES machines through the API (2% of them put in
# maintenance, so the overview's failure queue is full), then times REQUESTS
# sequential requests of each page over one keep-alive connection, signed in
# with the session cookie, and prints p50 / p95 / max next to the API's own
# page of machines. RSS is tundrad's VmRSS idle, after enrolling, and after
# the pages. The goal (issue #21) is overview and the first machines page
# under 300 ms each with 10,000 machines.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
machines=${1:-10000}
requests=${2:-50}

cargo build -q --release -p tundrad
bin=target/release/tundrad
work=$(mktemp -d -t tundra-bench-ui-XXXXXX)
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

RUST_LOG=warn "$bin" --listen 127.0.0.1:0 --data-dir "$work/data" --address-file "$work/addr" 2>"$work/log" &
pid=$!
for _ in $(seq 100); do [ -s "$work/addr" ] && break; sleep 0.1; done
rss() { awk '/VmRSS/ {printf "%.1f MiB", $2/1024}' "/proc/$pid/status"; }
idle=$(rss)

python3 - "$(cat "$work/addr")" "$(cat "$work/data/admin-token")" "$machines" "$requests" "$pid" "$idle" <<'PY'
import http.client, json, sys, time

addr, token, n, reqs, pid, idle = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6]
host, port = addr.rsplit(":", 1)
conn = http.client.HTTPConnection(host, int(port))

def call(method, path, body=None, headers=None):
    h = {"Authorization": "Bearer " + token, "Content-Type": "application/json"}
    h.update(headers or {})
    conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=h)
    r = conn.getresponse()
    data = r.read()
    return r.status, data

def rss():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS"):
            return f"{int(line.split()[1]) / 1024:.1f} MiB"

t0 = time.perf_counter()
for k in range(n):
    rack, island = f"r{k % 200:03d}", f"i{k % 10}"
    body = {
        "name": f"m{k:05d}", "resource_class": ("gpu" if k % 7 == 0 else "baremetal"),
        "location": {"rack": rack, "island": island},
        "bmc": {"driver": "redfish", "address": f"https://10.{k // 65536 % 256}.{k // 256 % 256}.{k % 256}", "username": "admin"},
        "bmc_password": "bench",
        "interfaces": [{"mac": "52:54:%02x:%02x:%02x:%02x" % (k >> 24 & 255, k >> 16 & 255, k >> 8 & 255, k & 255), "pxe": True}],
    }
    s, d = call("POST", "/v1/machines", body)
    assert s == 201, (s, d[:300])
    if k % 50 == 0:
        s, d = call("PATCH", f"/v1/machines/m{k:05d}", {"maintenance": True, "maintenance_reason": "bench: held"})
        assert s == 200, (s, d[:300])
seeded = time.perf_counter() - t0
after_seed = rss()

cookie = {"Cookie": "tundra_session=" + token}
pages = [
    ("dashboard overview", "/ui/", cookie),
    ("dashboard machines, first page", "/ui/machines", cookie),
    ("dashboard machines, rack filter", "/ui/machines?rack=r123", cookie),
    ("dashboard machines, BMC filter", "/ui/machines?bmc=10.0.7.42", cookie),
    ("dashboard machines, state + maintenance", "/ui/machines?state=enroll&maintenance=true", cookie),
    ("dashboard machine detail", "/ui/machines/m04242", cookie),
    ("dashboard rack map (every machine)", "/ui/map", cookie),
    ("dashboard capacity (every machine)", "/ui/capacity", cookie),
    ("API GET /v1/machines?limit=50", "/v1/machines?limit=50", {}),
]
rows = []
for label, path, headers in pages:
    times = []
    for _ in range(reqs):
        t = time.perf_counter()
        s, d = call("GET", path, headers=headers)
        times.append((time.perf_counter() - t) * 1000)
        assert s == 200, (path, s, d[:300])
    times.sort()
    p = lambda q: times[min(len(times) - 1, int(q * len(times)))]
    rows.append((label, p(0.5), p(0.95), times[-1], len(d)))

print(f"tundrad (release, SQLite) with {n} machines ({n // 50 + 1} in maintenance); enrolled through the API in {seeded:.1f} s")
print(f"{'page':42} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'bytes':>8}")
for label, p50, p95, mx, size in rows:
    print(f"{label:42} {p50:8.1f} {p95:8.1f} {mx:8.1f} {size:8d}")
print(f"RSS: idle {idle}, after enrolling {after_seed}, after the pages {rss()}")
PY
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r), $(date -u +%Y-%m-%d)"
