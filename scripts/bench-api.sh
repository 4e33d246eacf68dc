#!/usr/bin/env bash
# API benchmark (a command, not a test): wrk against tundrad's list and get
# routes, on SQLite (the embedded default) and on PostgreSQL, side by side
# with /healthz (no database: the HTTP stack's ceiling on this machine).
#
#   scripts/bench-api.sh [DURATION_SECONDS] [CONNECTIONS]
#
# Builds tundrad in release mode, starts each backend in a temp dir
# (PostgreSQL as a throwaway cluster on a free loopback port), seeds a
# project with 100 flavors, runs wrk, prints req/s and p99, cleans up.
# wrk and tundrad share this machine's cores: read the figures as relative.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
duration=${1:-10}
conns=${2:-16}
command -v wrk >/dev/null || { echo "bench: wrk is missing; run scripts/setup.sh" >&2; exit 1; }

cargo build -q --release -p tundrad
bin=target/release/tundrad
work=$(mktemp -d -t tundra-bench-XXXXXX)
pids=()
pgdata=""
pgdir=""
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  if [ -n "$pgdata" ]; then as_pg "$pgbin/pg_ctl" -D "$pgdata" -m immediate -w stop >/dev/null 2>&1 || true; fi
  rm -rf "$work" ${pgdir:+"$pgdir"}
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start_tundrad() { # $1 = name, $2 = database url (empty: SQLite default)
  local dir="$work/$1"
  mkdir -p "$dir"
  if [ -n "$2" ]; then export TUNDRA_DATABASE_URL="$2"; else unset TUNDRA_DATABASE_URL; fi
  RUST_LOG=warn "$bin" --listen 127.0.0.1:0 --data-dir "$dir/data" --address-file "$dir/addr" 2>"$dir/log" &
  pids+=($!)
  for _ in $(seq 100); do [ -s "$dir/addr" ] && break; sleep 0.1; done
  addr=$(cat "$dir/addr")
  token=$(cat "$dir/data/admin-token")
  curl -sf -o /dev/null -H "Authorization: Bearer $token" -H 'content-type: application/json' \
    -d '{"name":"bench"}' "http://$addr/v1/projects"
  for i in $(seq 100); do
    curl -sf -o /dev/null -H "Authorization: Bearer $token" -H 'content-type: application/json' \
      -d "{\"name\":\"f$i\",\"resource_class\":\"baremetal\",\"required_traits\":[\"gpu\",\"ib\"]}" "http://$addr/v1/flavors"
  done
  flavor=$(curl -sf -H "Authorization: Bearer $token" "http://$addr/v1/flavors?limit=1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["items"][0]["id"])')
}

measure() { # $1 = url -> "req/s p99"
  wrk -t2 -c"$conns" -d"${duration}s" --latency -H "Authorization: Bearer $token" "$1" \
    | awk '/Requests\/sec/ {r=$2} /^ +99%/ {p=$2} END {printf "%s %s", r, p}'
}

results=()
run_backend() { # $1 = label
  for route in "/healthz" "/v1/flavors?limit=100" "/v1/flavors/$flavor"; do
    read -r rps p99 <<<"$(measure "http://$addr$route")"
    label=${route/$flavor/\{id\}}
    results+=("$(printf '%-11s %-24s %12s %10s' "$1" "$label" "$rps" "$p99")")
  done
}

start_tundrad sqlite ""
run_backend sqlite

# Its own temp dir: PostgreSQL runs as the postgres user and must own it.
pgdir=$(mktemp -d -t tundra-bench-pg-XXXXXX)
if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$pgdir"; fi
pgdata="$pgdir/data"
as_pg "$pgbin/initdb" -A trust -U tundra --no-sync -D "$pgdata" >/dev/null
port=$(free_port)
as_pg "$pgbin/pg_ctl" -w -D "$pgdata" -l "$pgdir/log" \
  -o "-c listen_addresses=127.0.0.1 -p $port -k $pgdir -c max_connections=100" start >/dev/null
start_tundrad postgres "postgres://tundra@127.0.0.1:$port/postgres"
run_backend postgres

echo
echo "tundrad API under wrk: ${duration}s per route, $conns connections, 2 threads ($(nproc) cores shared with wrk)"
printf '%-11s %-24s %12s %10s\n' backend route "req/s" p99
for r in "${results[@]}"; do echo "$r"; done
