#!/usr/bin/env bash
# DHCP benchmark (a command, not a test): perfdhcp against tundra-boot's DHCP
# server and Kea, one after another, each in the same pair of network
# namespaces joined by a veth. Every server persists its leases to a file.
#
#   scripts/bench-dhcp.sh [SECONDS] [RATE] [CLIENTS]
#
# RATE is the offered 4-way exchanges per second, CLIENTS the number of
# distinct simulated MACs. Needs root (network namespaces).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
secs=${1:-10}
rate=${2:-3000}
clients=${3:-1000}
for t in perfdhcp kea-dhcp4; do
  command -v "$t" >/dev/null || { echo "bench: $t is missing; run scripts/setup.sh" >&2; exit 1; }
done
cargo build -q --release -p tundra-boot --example dhcp-serve
bin=target/release/examples/dhcp-serve

id=$$
srv=bds$id; cli=bdc$id; vs=vbs$id; vc=vbc$id
work=$(mktemp -d -t tundra-bench-dhcp-XXXXXX)
pid=""
stop() { if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; pid=""; fi; }
cleanup() { stop; ip netns del "$srv" 2>/dev/null || true; ip netns del "$cli" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

ip netns add "$srv"; ip netns add "$cli"
ip link add "$vs" type veth peer name "$vc"
ip link set "$vs" netns "$srv"; ip link set "$vc" netns "$cli"
ip -n "$srv" addr add 10.88.0.1/16 dev "$vs"
ip -n "$srv" link set "$vs" up; ip -n "$srv" link set lo up
ip -n "$cli" addr add 10.88.255.254/16 dev "$vc"
ip -n "$cli" link set "$vc" up; ip -n "$cli" link set lo up

measure() { # $1 = label
  sleep 1
  out=$(ip netns exec "$cli" perfdhcp -4 -l "$vc" -r "$rate" -p "$secs" -R "$clients" 2>&1 || true)
  sent=$(echo "$out" | awk '/sent packets:/ {print $3; exit}')
  recv=$(echo "$out" | awk '/received packets:/ {print $3; exit}')
  drops=$(echo "$out" | awk '/drops ratio:/ {print $3, $4; exit}')
  r=$(echo "$out" | awk '/^Rate:/ {print $2; exit}')
  printf '%-22s %12s %10s %10s %16s\n' "$1" "${r:-0}" "${sent:-?}" "${recv:-?}" "${drops:-?}" >>"$work/results"
  stop
}

# tundra-boot
ip netns exec "$srv" "$bin" "$vs" 10.88.0.1 10.88.1.0 10.88.200.255 "$work/tundra-leases.json" >"$work/tundra.log" 2>&1 &
pid=$!
measure tundra-boot

# Kea (memfile, persisted)
cat >"$work/kea.json" <<KEA
{"Dhcp4": {
  "interfaces-config": {"interfaces": ["$vs"], "dhcp-socket-type": "raw"},
  "lease-database": {"type": "memfile", "persist": true, "name": "$work/kea-leases.csv", "lfc-interval": 0},
  "valid-lifetime": 3600,
  "subnet4": [{"id": 1, "subnet": "10.88.0.0/16", "pools": [{"pool": "10.88.1.0 - 10.88.200.255"}]}],
  "loggers": [{"name": "kea-dhcp4", "severity": "WARN", "output_options": [{"output": "$work/kea.log"}]}]
}}
KEA
KEA_LOCKFILE_DIR=$work KEA_PIDFILE_DIR=$work ip netns exec "$srv" kea-dhcp4 -c "$work/kea.json" >"$work/kea.out" 2>&1 &
pid=$!
measure "Kea $(kea-dhcp4 -v 2>/dev/null | head -1)"

echo
echo "perfdhcp -r $rate -p $secs -R $clients ($(nproc) cores shared by perfdhcp and the server; leases persisted)"
printf '%-22s %12s %10s %10s %16s\n' server "exchanges/s" sent received "drops"
cat "$work/results"
