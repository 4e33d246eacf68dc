#!/usr/bin/env bash
# Benchmarks side by side with the peer a site would pick instead, measured
# in one run on this machine (a command, not a test). Writes
# docs/benchmarks.md (or $BENCH_OUT).
#
#   scripts/bench.sh [--quick]
#
# So far: the control plane vs Ironic (50 machines of fake hardware on both
# sides: enroll -> available with cleaning, deploy, undeploy; then tundrad
# alone at 1,000 machines, and 10,000 without --quick) and single-object
# API reads vs Ironic's. The other rows of #22 (DHCP, switch, Terraform,
# images, memory at scale) still live in scripts/bench-*.sh.
#
# Ironic (ironic>=39,<40 from PyPI) is installed once into
# $BENCH_CACHE (default /var/cache/tundra-bench) and run all-in-one on SQLite
# with noauth and fake-hardware, automated cleaning on.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
quick=false
[ "${1:-}" = --quick ] && quick=true
out=${BENCH_OUT:-docs/benchmarks.md}
cache=${BENCH_CACHE:-/var/cache/tundra-bench}
for t in wrk python3 curl; do
  command -v "$t" >/dev/null || { echo "bench: $t is missing; run scripts/setup.sh" >&2; exit 1; }
done
started=$(date +%s)

cargo build -q --release -p tundrad --locked
bin=target/release/tundrad
venv=$cache/ironic-venv
if [ ! -x "$venv/bin/ironic" ]; then
  echo "bench: installing Ironic into $venv (once)" >&2
  mkdir -p "$cache"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q 'ironic>=39,<40'
fi
ironic_version=$("$venv/bin/pip" show ironic 2>/dev/null | awk '/^Version:/ {print $2}')

work=$(mktemp -d -t tundra-bench-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rss_mb() { awk '/VmRSS/ {printf "%d", $2/1024}' "/proc/$1/status"; }

start_tundrad() { # $1 = dir; sets addr token image tpid
  mkdir -p "$1"
  printf 'fake_hardware = true\nmachine_timeout_scale = 1.0\n' >"$1/tundrad.toml"
  RUST_LOG=warn "$bin" --config "$1/tundrad.toml" --listen 127.0.0.1:0 --data-dir "$1/data" --address-file "$1/addr" 2>"$1/log" &
  tpid=$!
  pids+=("$tpid")
  for _ in $(seq 100); do [ -s "$1/addr" ] && break; sleep 0.1; done
  addr=$(cat "$1/addr")
  token=$(cat "$1/data/admin-token")
  local auth=(-H "Authorization: Bearer $token" -H 'content-type: application/json')
  local project
  project=$(curl -sf "${auth[@]}" -d '{"name":"bench"}' "http://$addr/v1/projects" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  head -c 1048576 /dev/urandom >"$1/image"
  local sum
  sum=$(sha256sum "$1/image" | cut -d' ' -f1)
  image=$(curl -sf "${auth[@]}" -d "{\"project_id\":\"$project\",\"name\":\"img\",\"disk_format\":\"raw\",\"sha256\":\"$sum\"}" \
    "http://$addr/v1/images" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  curl -sf -o /dev/null -X PUT -H "Authorization: Bearer $token" --data-binary @"$1/image" "http://$addr/v1/images/$image/file"
  for _ in $(seq 100); do
    curl -sf -H "Authorization: Bearer $token" "http://$addr/v1/images/$image" | grep -q '"status":"active"' && break
    sleep 0.1
  done
}

start_ironic() { # sets iurl ipid
  local d=$work/ironic port
  mkdir -p "$d/locks"
  port=$(free_port)
  cat >"$d/ironic.conf" <<CONF
[DEFAULT]
auth_strategy = noauth
enabled_hardware_types = fake-hardware
enabled_bios_interfaces = no-bios
enabled_boot_interfaces = fake
enabled_console_interfaces = no-console
enabled_deploy_interfaces = fake
enabled_firmware_interfaces = no-firmware
enabled_inspect_interfaces = fake,no-inspect
enabled_management_interfaces = fake
enabled_network_interfaces = noop
enabled_power_interfaces = fake
enabled_raid_interfaces = fake,no-raid
enabled_rescue_interfaces = no-rescue
enabled_storage_interfaces = noop
enabled_vendor_interfaces = no-vendor
rpc_transport = none
host = bench
[api]
host_ip = 127.0.0.1
port = $port
[database]
connection = sqlite:///$d/ironic.sqlite
[conductor]
automated_clean = true
[dhcp]
dhcp_provider = none
[oslo_concurrency]
lock_path = $d/locks
CONF
  "$venv/bin/ironic-dbsync" --config-file "$d/ironic.conf" create_schema >"$d/dbsync.log" 2>&1
  "$venv/bin/ironic" --config-file "$d/ironic.conf" >"$d/log" 2>&1 &
  ipid=$!
  pids+=("$ipid")
  iurl=http://127.0.0.1:$port
  for _ in $(seq 300); do curl -sf -o /dev/null "$iurl/v1/" && return; sleep 0.1; done
  echo "bench: Ironic did not start; see its log:" >&2
  tail -20 "$d/log" >&2
  exit 1
}

phase_secs() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['phases'][sys.argv[2]]['seconds'])" "$1" "$2"; }
ratio() { python3 -c "import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); print(f'{a/b:.1f}×' if b>0 else '—')" "$1" "$2"; }
get_rate() { # $1 = url -> "req/s p99"
  wrk -t1 -c1 -d"$secs"s --latency -H "Authorization: Bearer ${token:-none}" -H 'X-OpenStack-Ironic-API-Version: latest' "$1" \
    | awk '/Requests\/sec/ {r=$2} /^ +99%/ {p=$2} END {printf "%s %s", r, p}'
}

secs=10
$quick && secs=5
rows=()
row() { rows+=("| $1 | $2 | $3 | $4 | $5 |"); }

# --- control plane, 50 machines, both sides ---------------------------------
echo "bench: control plane, 50 machines, tundrad then Ironic" >&2
start_tundrad "$work/t50"
idle_rss=$(rss_mb "$tpid")
python3 scripts/bench/controlplane.py tundra "http://$addr" "$token" 50 --image "$image" >"$work/t50.json"
tundra_get=$(get_rate "http://$addr/v1/machines/$(curl -sf -H "Authorization: Bearer $token" "http://$addr/v1/machines?limit=1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["items"][0]["id"])')")
start_ironic
irss0=$(rss_mb "$ipid")
python3 scripts/bench/controlplane.py ironic "$iurl" - 50 >"$work/i50.json"
ironic_get=$(get_rate "$iurl/v1/nodes/$(curl -sf -H 'X-OpenStack-Ironic-API-Version: latest' "$iurl/v1/nodes?limit=1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["nodes"][0]["uuid"])')")
irss=$(rss_mb "$ipid")
kill "$ipid" 2>/dev/null || true
for p in enroll deploy undeploy; do
  t=$(phase_secs "$work/t50.json" $p)
  i=$(phase_secs "$work/i50.json" $p)
  row "control plane, 50 machines: $p (s)" "$t" "$i (Ironic $ironic_version)" "$(ratio "$i" "$t")" "≥ 10×"
done
read -r tr tp <<<"$tundra_get"
read -r ir ip <<<"$ironic_get"
row "API get one machine, 1 connection (req/s, p99)" "$tr, $tp" "$ir, $ip (Ironic)" "$(ratio "$tr" "$ir")" "≥ 100×, p99 ≤ 5 ms"
row "idle RSS (MB)" "$idle_rss" "$irss0 (Ironic, one process)" "—" "≤ 30 MB"

# --- control plane at scale, tundrad alone -------------------------------------
scales=(1000)
$quick || scales+=(10000)
for n in "${scales[@]}"; do
  echo "bench: control plane, $n machines, tundrad alone" >&2
  start_tundrad "$work/t$n"
  python3 scripts/bench/controlplane.py tundra "http://$addr" "$token" "$n" --image "$image" --threads 10 >"$work/t$n.json"
  for p in enroll deploy undeploy; do
    row "control plane, $n machines: $p (s)" "$(phase_secs "$work/t$n.json" $p)" "no peer run (Ironic at 1,000 exceeds this run's budget)" "—" "grows linearly"
  done
  row "RSS with $n machines (MB)" "$(rss_mb "$tpid")" "—" "—" "≤ 200 MB at 10,000"
  kill "$tpid" 2>/dev/null || true
done

# --- the page ------------------------------------------------------------------
took=$(( $(date +%s) - started ))
{
  echo "# Benchmarks"
  echo
  echo "Written by \`scripts/bench.sh$($quick && echo ' --quick')\` on $(date -u +%Y-%m-%d): $(nproc) cores,"
  echo "$(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), Linux $(uname -r); the run took $((took / 60)) min $((took % 60)) s."
  echo "Every peer figure was measured in the same run, on the same machine, through the same client"
  echo "(\`scripts/bench/controlplane.py\`: 10 threads, keep-alive connections, each phase ends when a"
  echo "listing every 100 ms shows every machine in the phase's state). tundrad runs its \`fake\` driver,"
  echo "Ironic its \`fake-hardware\` with automated cleaning, both on SQLite."
  echo
  echo "| figure | Tundra | peer | ratio | goal |"
  echo "|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
  echo
  echo "Not yet in this command (see \`scripts/bench-*.sh\` for each alone): DHCP vs Kea and dnsmasq,"
  echo "switch batches vs per-port sessions, Terraform plan vs \`terraform_data\`, agent write vs \`dd\`,"
  echo "a lab deploy vs pure write time, the provider's memory during a plan."
} >"$out"
echo "bench: wrote $out in ${took}s" >&2
cat "$out"
