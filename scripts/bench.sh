#!/usr/bin/env bash
# Benchmarks side by side with the peer a site would pick instead, measured
# in one run on this machine (a command, not a test). Writes
# docs/benchmarks.md and its charts in docs/benchmarks/ (or $BENCH_OUT and
# $BENCH_OUT's directory).
#
#   scripts/bench.sh [--quick] [--only SECTION,...]      (root; after scripts/setup.sh)
#
# Sections, in order, each against its peer in the same run:
#   controlplane  50 machines of fake hardware, enroll -> available (cleaning),
#                 deploy, undeploy: tundrad (`fake` driver) vs Ironic 39
#                 (`fake-hardware`); idle RSS of both
#   api           wrk, 1 connection: get one and list 100, tundrad on SQLite and
#                 PostgreSQL vs Ironic; latency percentiles
#   scale         tundrad alone at 1,000 and 10,000 machines deployed through as
#                 many nodes; RSS with them in the store
#   dhcp          tundra-boot vs Kea vs dnsmasq under perfdhcp: the highest
#                 rate with 0 drops, new clients and renewals
#   switch        port moves batched vs one SSH session per change (fake-switches);
#                 then N nodes changing networks through tundrad on 8 switches
#   terraform     plan / refresh of N tundra_node vs N terraform_data; the
#                 provider's RSS during the plan
#   images        tundra-agent's image write vs dd
#   lab           a lab deploy (real DHCP, iPXE, agent) vs the pure write time
#
# BENCH_RESULTS=DIR keeps each section's figures there, so that a section
# can be run again alone (--only) and the page still covers every section.
# --quick shrinks every size (about 10 minutes on 2 cores); the full run
# (about 30 minutes) is what docs/benchmarks.md holds. Ironic (ironic>=39,<40
# from PyPI) is installed once into $BENCH_CACHE (default
# /var/cache/tundra-bench) and run all-in-one on SQLite with noauth.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
quick=false
only=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=true ;;
    --only) only=,$2,; shift ;;
    -h|--help) sed -n '2,28p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
  shift
done
want() { [ -z "$only" ] || [[ $only == *,$1,* ]]; }
out=${BENCH_OUT:-docs/benchmarks.md}
charts=$(dirname "$out")/benchmarks
cache=${BENCH_CACHE:-/var/cache/tundra-bench}
[ "$(id -u)" = 0 ] || { echo "bench: run as root (network namespaces, the lab)" >&2; exit 1; }
for t in wrk python3 curl perfdhcp kea-dhcp4 dnsmasq; do
  command -v "$t" >/dev/null || { echo "bench: $t is missing; run scripts/setup.sh" >&2; exit 1; }
done
[ -x .venv/bin/python ] && [ -s .venv/terraform-cli ] || { echo "bench: no .venv; run scripts/setup.sh" >&2; exit 1; }
terraform=$(cat .venv/terraform-cli)
started=$(date +%s)

echo "bench: building (release)" >&2
cargo build -q --release --locked -p tundrad -p tundra-agent -p terraform-provider-tundra --bins
cargo build -q --release --locked -p tundra-boot --example dhcp-serve
cargo build -q --release --locked -p tundra-drivers --example bench-switch
want lab && cargo build -q --release --locked -p tundra-lab --example bench
bin=target/release/tundrad

work=$(mktemp -d -t tundra-bench-XXXXXX)
# The figures, as JSON per section: kept when BENCH_RESULTS names a
# directory (sections run again replace theirs; the page covers them all).
results=${BENCH_RESULTS:-$work/results}
mkdir -p "$results"
pids=()
pgdata=""
pgdir=""
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
as_pg() { runuser -u postgres -- "$@"; }
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  if [ -n "$pgdata" ]; then as_pg "$pgbin/pg_ctl" -D "$pgdata" -m immediate -w stop >/dev/null 2>&1 || true; fi
  rm -rf "$work" ${pgdir:+"$pgdir"}
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rss_mb() { awk '/VmRSS/ {printf "%d", $2/1024}' "/proc/$1/status"; }
json_get() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1], {'d': d}))" "$1"; }
stop_pid() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
memory() { # $1 = key, $2 = MB: one figure into memory.json
  python3 -c "import json,os,sys; p=sys.argv[1]; d=json.load(open(p)) if os.path.exists(p) else {}; d[sys.argv[2]]=int(sys.argv[3]); json.dump(d,open(p,'w'))" \
    "$results/memory.json" "$1" "$2"
}

start_tundrad() { # $1 = dir, $2 = database URL (empty: SQLite); sets addr token project image flavor tpid
  mkdir -p "$1"
  printf 'fake_hardware = true\nmachine_timeout_scale = 1.0\n' >"$1/tundrad.toml"
  if [ -n "${2:-}" ]; then printf 'database_url = "%s"\n' "$2" >>"$1/tundrad.toml"; fi
  RUST_LOG=warn "$bin" --config "$1/tundrad.toml" --listen 127.0.0.1:0 --data-dir "$1/data" --address-file "$1/addr" 2>"$1/log" &
  tpid=$!
  pids+=("$tpid")
  for _ in $(seq 100); do [ -s "$1/addr" ] && break; sleep 0.1; done
  [ -s "$1/addr" ] || { echo "bench: tundrad did not start:" >&2; tail -20 "$1/log" >&2; exit 1; }
  addr=$(cat "$1/addr")
  token=$(cat "$1/data/admin-token")
  local auth=(-H "Authorization: Bearer $token" -H 'content-type: application/json')
  project=$(curl -sf "${auth[@]}" -d '{"name":"bench"}' "http://$addr/v1/projects" | json_get 'd["id"]')
  flavor=$(curl -sf "${auth[@]}" -d '{"name":"bench","resource_class":"baremetal"}' "http://$addr/v1/flavors" | json_get 'd["id"]')
  curl -sf -o /dev/null -X PUT "${auth[@]}" -d '{"nodes":100000,"addresses":100000}' "http://$addr/v1/projects/$project/quota"
  head -c 1048576 /dev/urandom >"$1/image"
  local sum
  sum=$(sha256sum "$1/image" | cut -d' ' -f1)
  image=$(curl -sf "${auth[@]}" -d "{\"project_id\":\"$project\",\"name\":\"img\",\"disk_format\":\"raw\",\"sha256\":\"$sum\"}" \
    "http://$addr/v1/images" | json_get 'd["id"]')
  curl -sf -o /dev/null -X PUT -H "Authorization: Bearer $token" --data-binary @"$1/image" "http://$addr/v1/images/$image/file"
  for _ in $(seq 100); do
    curl -sf -H "Authorization: Bearer $token" "http://$addr/v1/images/$image" | grep -q '"status":"active"' && break
    sleep 0.1
  done
}

venv=$cache/ironic-venv
start_ironic() { # sets iurl ipid ironic_version
  if [ ! -x "$venv/bin/ironic" ]; then
    echo "bench: installing Ironic into $venv (once)" >&2
    mkdir -p "$cache"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q 'ironic>=39,<40'
  fi
  ironic_version=$("$venv/bin/pip" show ironic 2>/dev/null | awk '/^Version:/ {print $2}')
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

start_postgres() { # sets pgurl
  [ -n "$pgbin" ] || { echo "bench: PostgreSQL is missing; run scripts/setup.sh" >&2; exit 1; }
  local d port
  # Its own temp dir: PostgreSQL runs as the postgres user and must own it.
  pgdir=$(mktemp -d -t tundra-bench-pg-XXXXXX)
  d=$pgdir
  chown postgres:postgres "$d"
  pgdata=$d/data
  as_pg "$pgbin/initdb" -A trust -U tundra --no-sync -D "$pgdata" >/dev/null
  port=$(free_port)
  as_pg "$pgbin/pg_ctl" -w -D "$pgdata" -l "$d/log" \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $d -c max_connections=100" start >/dev/null
  pgurl="postgres://tundra@127.0.0.1:$port/postgres"
}

# wrk with 1 connection; the Lua script prints req/s and percentiles as JSON.
cat >"$work/pct.lua" <<'LUA'
done = function(summary, latency, requests)
  local ps = {}
  for _, p in ipairs({50, 75, 90, 99, 99.9}) do
    table.insert(ps, string.format("[%g, %.3f]", p, latency:percentile(p) / 1000))
  end
  io.write(string.format('JSON {"rps": %.1f, "p99_ms": %.3f, "errors": %d, "percentiles": [%s]}\n',
    summary.requests / (summary.duration / 1e6), latency:percentile(99) / 1000,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.timeout,
    table.concat(ps, ", ")))
end
LUA
wrk_json() { # $1 = url, $2 = auth header -> JSON
  wrk -t1 -c1 -d"${api_secs}s" -s "$work/pct.lua" -H "$2" -H 'X-OpenStack-Ironic-API-Version: latest' "$1" \
    | sed -n 's/^JSON //p'
}
api_routes() { # $1 = key, $2 = base, $3 = auth header, $4 = list path, $5 = get path -> "key": {...}
  printf '"%s": {"get": %s, "list": %s}' "$1" "$(wrk_json "$2$5" "$3")" "$(wrk_json "$2$4" "$3")"
}

api_secs=10; cp_n=50; scales=(1000 10000); dhcp_args=(--secs 5 --start 1000 --bisect 4)
switch_n=100; tf_n=1000; agent_mib=1024; lab_n=20; lab_mib=1024
if $quick; then
  api_secs=4; scales=(1000); dhcp_args=(--secs 2 --start 1000 --bisect 1)
  switch_n=50; tf_n=200; agent_mib=256; lab_n=4; lab_mib=256
fi

# --- control plane and API, 50 machines on both sides ------------------------------
if want controlplane || want api; then
  echo "bench: control plane, $cp_n machines: tundrad, then Ironic" >&2
  start_tundrad "$work/t50"
  memory idle "$(rss_mb "$tpid")"
  python3 scripts/bench/controlplane.py tundra "http://$addr" "$token" "$cp_n" --image "$image" >"$results/cp-tundra.json"
  mid=$(curl -sf -H "Authorization: Bearer $token" "http://$addr/v1/machines?limit=1" | json_get 'd["items"][0]["id"]')
  api_json="{$(api_routes sqlite "http://$addr" "Authorization: Bearer $token" "/v1/machines?limit=100" "/v1/machines/$mid")"
  stop_pid "$tpid"
  start_ironic
  memory ironic_idle "$(rss_mb "$ipid")"
  python3 scripts/bench/controlplane.py ironic "$iurl" - "$cp_n" >"$results/cp-ironic.json"
  python3 -c "import json,sys; p=sys.argv[1]; d=json.load(open(p)); d['version']=sys.argv[2]; json.dump(d,open(p,'w'))" "$results/cp-ironic.json" "$ironic_version"
  nid=$(curl -sf -H 'X-OpenStack-Ironic-API-Version: latest' "$iurl/v1/nodes?limit=1" | json_get 'd["nodes"][0]["uuid"]')
  # /v1/nodes/detail: whole nodes, as tundrad's list returns whole machines.
  api_json+=", $(api_routes ironic "$iurl" "X-Bench: none" "/v1/nodes/detail?limit=100" "/v1/nodes/$nid")"
  stop_pid "$ipid"
  if want api; then
    echo "bench: API on PostgreSQL" >&2
    start_postgres
    start_tundrad "$work/tpg" "$pgurl"
    python3 scripts/bench/controlplane.py tundra "http://$addr" "$token" "$cp_n" --image "$image" --phases enroll >/dev/null
    mid=$(curl -sf -H "Authorization: Bearer $token" "http://$addr/v1/machines?limit=1" | json_get 'd["items"][0]["id"]')
    api_json+=", $(api_routes postgres "http://$addr" "Authorization: Bearer $token" "/v1/machines?limit=100" "/v1/machines/$mid")"
    stop_pid "$tpid"
    as_pg "$pgbin/pg_ctl" -D "$pgdata" -m fast -w stop >/dev/null; pgdata=""
    echo "$api_json}" >"$results/api.json"
  fi
fi

# --- control plane at scale, tundrad alone --------------------------------------------
if want scale; then
  for n in "${scales[@]}"; do
    # Through nodes at every size: placement, addresses, config drives.
    echo "bench: control plane, $n machines through as many nodes, tundrad alone" >&2
    start_tundrad "$work/t$n"
    via=(--nodes "$project:$flavor")
    python3 scripts/bench/controlplane.py tundra "http://$addr" "$token" "$n" --image "$image" \
      "${via[@]}" --rss-pid "$tpid" >"$results/scale-$n.json"
    memory "loaded-$n" "$(json_get 'd["phases"]["deploy"]["rss_mb"]' <"$results/scale-$n.json")"
    stop_pid "$tpid"
    rm -rf "$work/t$n"
  done
fi

# --- DHCP --------------------------------------------------------------------------
if want dhcp; then
  echo "bench: DHCP, tundra-boot vs Kea vs dnsmasq" >&2
  sync  # no writeback of earlier sections' files during the probes
  python3 scripts/bench/dhcp.py --tundra-bin target/release/examples/dhcp-serve "${dhcp_args[@]}" >"$results/dhcp.json"
fi

# --- switch --------------------------------------------------------------------------
if want switch; then
  echo "bench: switch, $switch_n moves batched vs one session per change" >&2
  BENCH_JSON=$results/switch.json target/release/examples/bench-switch .venv/bin/python scripts/peers/fake-switches.py "$switch_n" >&2
  echo "bench: switch through tundrad, $switch_n nodes change networks on 8 switches" >&2
  start_tundrad "$work/tsw"
  python3 scripts/bench/fabric.py "http://$addr" "$token" "$project" "$flavor" "$image" "$switch_n" \
    --switches 8 --python .venv/bin/python --peer scripts/peers/fake-switches.py >"$results/fabric.json"
  stop_pid "$tpid"
fi

# --- Terraform ---------------------------------------------------------------------------
if want terraform; then
  echo "bench: Terraform, $tf_n tundra_node vs $tf_n terraform_data" >&2
  start_tundrad "$work/ttf"
  python3 scripts/bench/controlplane.py tundra "http://$addr" "$token" "$tf_n" --image "$image" --phases enroll >/dev/null
  tf=$work/tf
  mkdir -p "$tf/tundra_node" "$tf/terraform_data"
  printf 'provider_installation {\n  dev_overrides {\n    "tundra/tundra" = "%s"\n  }\n  direct {}\n}\n' "$root/target/release" >"$tf/rc"
  cat >"$tf/tundra_node/main.tf" <<TF
terraform {
  required_providers {
    tundra = { source = "tundra/tundra" }
  }
}
resource "tundra_node" "n" {
  count     = $tf_n
  name      = "tf-\${count.index}"
  flavor_id = "$flavor"
  image_id  = "$image"
}
TF
  cat >"$tf/terraform_data/main.tf" <<TF
resource "terraform_data" "n" {
  count = $tf_n
  input = "tf-\${count.index}"
}
TF
  timed() { local s e; s=$(date +%s.%N); "$@" >>"$tf/log" 2>&1 || { tail -30 "$tf/log" >&2; exit 1; }; e=$(date +%s.%N); python3 -c "print(round($e-$s, 2))"; }
  tfjson="{\"n\": $tf_n"
  for kind in tundra_node terraform_data; do
    (
      export TF_CLI_CONFIG_FILE=$tf/rc CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION=1
      export TUNDRA_ENDPOINT=http://$addr TUNDRA_TOKEN=$token TUNDRA_PROJECT=$project
      cd "$tf/$kind"
      a=$(timed "$terraform" apply -auto-approve -input=false -no-color)
      # The provider's peak RSS while Terraform plans (sampled every 50 ms).
      (peak=0; while sleep 0.05; do
        for p in $(pgrep -f terraform-provider-tundra || true); do
          v=$(awk '/VmHWM/ {print int($2/1024)}' "/proc/$p/status" 2>/dev/null || echo 0)
          [ "${v:-0}" -gt "$peak" ] && peak=$v && echo "$peak" >"$tf/peak"
        done
      done) &
      sampler=$!
      p=$(timed "$terraform" plan -detailed-exitcode -input=false -no-color)
      kill "$sampler" 2>/dev/null || true
      r=$(timed "$terraform" apply -refresh-only -auto-approve -input=false -no-color)
      printf ', "%s": {"apply": %s, "plan": %s, "refresh": %s}' "$kind" "$a" "$p" "$r"
    ) >>"$tf/parts"
  done
  echo "$tfjson$(cat "$tf/parts"), \"provider_rss_mb\": $(cat "$tf/peak" 2>/dev/null || echo 0)}" >"$results/terraform.json"
  stop_pid "$tpid"
fi

# --- images: the agent's write vs dd -------------------------------------------------------
if want images; then
  echo "bench: image write, $agent_mib MiB, tundra-agent vs dd" >&2
  start_tundrad "$work/tag"
  head -c $((agent_mib * 1048576)) /dev/urandom >"$work/big.raw"
  sha=$(sha256sum "$work/big.raw" | cut -d' ' -f1)
  big=$(curl -sf -H "Authorization: Bearer $token" -H 'content-type: application/json' \
    -d "{\"project_id\":\"$project\",\"name\":\"big\",\"disk_format\":\"raw\",\"sha256\":\"$sha\"}" "http://$addr/v1/images" | json_get 'd["id"]')
  curl -sf -o /dev/null -T "$work/big.raw" -H "Authorization: Bearer $token" "http://$addr/v1/images/$big/file"
  fresh_disk() { rm -f "$work/disk.img"; truncate -s $(((agent_mib + 64) * 1048576)) "$work/disk.img"; sync; }
  seconds() { python3 -c 'import sys,time,subprocess; s=time.monotonic(); subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); print(f"{time.monotonic()-s:.3f}")' "$@"; }
  # Alternating runs, the median of each: one disk write on a VM varies
  # several-fold from one minute to the next.
  t_agent=() t_dd=()
  for _ in 1 2 3; do
    fresh_disk
    t_agent+=("$(TUNDRA_AGENT_TOKEN=$token seconds target/release/tundra-agent write-image --url "http://$addr/v1/images/$big/file" --sha256 "$sha" --target "$work/disk.img")")
    [ "$(head -c $((agent_mib * 1048576)) "$work/disk.img" | sha256sum | cut -d' ' -f1)" = "$sha" ] \
      || { echo "bench: the agent's write does not read back" >&2; exit 1; }
    fresh_disk
    t_dd+=("$(seconds dd if="$work/big.raw" of="$work/disk.img" bs=4M conv=notrunc,fsync)")
  done
  python3 -c 'import json,statistics,sys; a,d=sys.argv[2].split(),sys.argv[3].split(); json.dump({"mib": int(sys.argv[1]), "agent": statistics.median(map(float,a)), "dd": statistics.median(map(float,d)), "agent_runs": [float(x) for x in a], "dd_runs": [float(x) for x in d]}, sys.stdout)' \
    "$agent_mib" "${t_agent[*]}" "${t_dd[*]}" >"$results/agent.json"
  rm -f "$work/big.raw" "$work/disk.img"
  stop_pid "$tpid"
fi

# --- a lab deploy vs the pure write time -------------------------------------------------------
if want lab; then
  echo "bench: lab deploy, $lab_n machines × $lab_mib MiB" >&2
  BENCH_JSON=$results/lab.json target/release/examples/bench --machines "$lab_n" --image-mib "$lab_mib" >&2
fi

# --- the page ----------------------------------------------------------------------------------
took=$(( $(date +%s) - started ))
terraform_version="Terraform $("$terraform" version | head -1 | awk '{print $2}')"
cat >"$work/header.md" <<MD
# Benchmarks

Written by \`scripts/bench.sh$($quick && echo ' --quick')\` on $(date -u +%Y-%m-%d): $(nproc) cores,
$(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), Linux $(uname -r); the run$([ -n "$only" ] && echo " of${only//,/ }" | sed 's/ $//') took $((took / 60)) min $((took % 60)) s.
Every peer figure was measured in the same run, on the same machine, and every load generator
shares the 2 cores with the server it measures: read the figures as ratios.

- **Control plane:** one client (\`scripts/bench/controlplane.py\`: 10 threads, keep-alive
  connections) drives both sides; each phase ends when a listing every 100 ms (every second at
  10,000) shows every machine in the phase's state. tundrad runs its \`fake\` driver, Ironic its
  \`fake-hardware\` with automated cleaning, both on SQLite. At 1,000 and 10,000, tundrad
  deploys through nodes (placement, addresses, config drives) and undeploys by deleting them.
- **API:** wrk, 1 thread, 1 connection; Ironic's list is \`/v1/nodes/detail\` (whole nodes, as
  tundrad lists whole machines).
- **DHCP:** perfdhcp in a network namespace against each server in another, leases persisted by
  all three; the rate doubles until a drop, then bisects, each probe on a fresh server.
- **Switch:** fake-switches over SSH on loopback, every move read before and read back after.
  Through tundrad, each node's machine is cabled to one of 8 switches (\`fake\` driver), every node
  is moved to another network at once, and the time runs until tundrad has read every port back.
- **Terraform:** $terraform_version, default parallelism; \`tundra_node\` against a fake-hardware tundrad.
- **Images:** the agent streams over HTTP from tundrad with sha256 inline and fsync; dd copies
  a local file with fsync; the median of 3 runs each, alternating. The lab deploy runs real DHCP, iPXE and the agent per machine.
MD
python3 scripts/bench/report.py "$results" "$out" "$charts" "$work/header.md"
echo "bench: wrote $out in ${took}s" >&2
cat "$out"
