#!/usr/bin/env bash
# Image-write benchmark (a command, not a test): tundra-agent streaming an
# image from tundrad onto a disk file (sha256 verified inline, fsync), side by
# side with `curl | dd` of the same URL (no verification) and a local
# `dd` copy of the same bytes (the disk's ceiling).
#
#   scripts/bench-agent.sh [IMAGE_MIB]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mib=${1:-512}
cargo build -q --release -p tundrad -p tundra-agent
work=$(mktemp -d -t tundra-bench-agent-XXXXXX)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

head -c $((mib * 1048576)) /dev/urandom >"$work/image.raw"
sha=$(sha256sum "$work/image.raw" | cut -d' ' -f1)
RUST_LOG=warn target/release/tundrad --listen 127.0.0.1:0 --data-dir "$work/data" --address-file "$work/addr" 2>"$work/log" &
pid=$!
for _ in $(seq 100); do [ -s "$work/addr" ] && break; sleep 0.1; done
addr=$(cat "$work/addr")
token=$(cat "$work/data/admin-token")
id=$(curl -sf -H "Authorization: Bearer $token" -H 'content-type: application/json' \
  -d "{\"name\":\"bench\",\"disk_format\":\"raw\",\"sha256\":\"$sha\"}" "http://$addr/v1/images" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
curl -sf -o /dev/null -X PUT -H "Authorization: Bearer $token" --data-binary @"$work/image.raw" "http://$addr/v1/images/$id/file"
url="http://$addr/v1/images/$id/file"

fresh_disk() { rm -f "$work/disk.img"; truncate -s $(((mib + 64) * 1048576)) "$work/disk.img"; sync; }
seconds() { python3 -c 'import sys,time; s=time.monotonic(); import subprocess; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); print(f"{time.monotonic()-s:.2f}")' "$@"; }

fresh_disk
t_agent=$(TUNDRA_AGENT_TOKEN=$token seconds target/release/tundra-agent write-image --url "$url" --sha256 "$sha" --target "$work/disk.img")
check=$(head -c $((mib * 1048576)) "$work/disk.img" | sha256sum | cut -d' ' -f1)
[ "$check" = "$sha" ] || { echo "bench: the agent's write does not read back" >&2; exit 1; }
fresh_disk
t_curl=$(seconds sh -c "curl -sf -H 'Authorization: Bearer $token' '$url' | dd of='$work/disk.img' bs=1M conv=notrunc,fsync iflag=fullblock")
fresh_disk
t_dd=$(seconds dd if="$work/image.raw" of="$work/disk.img" bs=1M conv=notrunc,fsync)

echo
echo "writing a ${mib} MiB image onto a disk file ($(nproc) cores; tundrad serves it on loopback)"
printf '%-44s %8s %10s\n' method seconds "MiB/s"
for row in "tundra-agent (HTTP, sha256 inline, fsync):$t_agent" "curl | dd (HTTP, no verification, fsync):$t_curl" "dd local copy (disk ceiling, fsync):$t_dd"; do
  name=${row%%:*}; t=${row##*:}
  printf '%-44s %8s %10s\n' "$name" "$t" "$(python3 -c "print(f'{$mib/$t:.0f}')")"
done
