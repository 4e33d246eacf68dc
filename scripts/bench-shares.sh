#!/usr/bin/env bash
# Share benchmark (a command, not a test): N CephFS shares, each with an
# access rule, made through tundrad until all are available and active —
# and the same N subvolumes and grants made with the `ceph` CLI directly, one
# after the other as an operator's script would — side by side, in one run,
# against one single-node Ceph (scripts/peers/ceph.sh, memstore).
#
#   scripts/bench-shares.sh [N]      (default 100)
#
# Builds tundrad in release mode, runs everything in a temp dir, prints the
# two times and their ratio, and cleans up. tundrad drives Ceph through the
# same CLI (one process per call), so the ratio is tundrad's own cost: its
# extra calls (a subvolume group per project, `getpath`, reads before it
# grants) and the store, not a different protocol.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
n=${1:-100}

cargo build -q --release -p tundrad
bin=target/release/tundrad
work=$(mktemp -d -t tundra-bench-shares-XXXXXX)
pid=""
cleanup() {
  [ -n "$pid" ] && { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
  scripts/peers/ceph.sh stop "$work/ceph" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }

echo "bench-shares: starting Ceph (mon, mgr, OSD on memstore, MDS)" >&2
ceph_json=$(scripts/peers/ceph.sh start "$work/ceph" "127.0.0.1:$(free_port)")
read -r monitor key conf < <(python3 -c 'import json,sys; j=json.loads(sys.argv[1]); print(j["monitors"][0], j["key"], j["conf"])' "$ceph_json")
c() { ceph --conf "$conf" "$@"; }

RUST_LOG=warn "$bin" --listen 127.0.0.1:0 --data-dir "$work/data" --address-file "$work/addr" 2>"$work/tundrad.log" &
pid=$!
for _ in $(seq 100); do [ -s "$work/addr" ] && break; sleep 0.1; done
addr=$(cat "$work/addr")
token=$(cat "$work/data/admin-token")
api() { # METHOD PATH [BODY] -> body
  curl -sf -X "$1" -H "Authorization: Bearer $token" -H 'content-type: application/json' ${3:+-d "$3"} "http://$addr$2"
}
field() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
project=$(api POST /v1/projects '{"name":"bench"}' | field '["id"]')
type=$(api POST /v1/share-types "{\"name\":\"cephfs\",\"backend\":\"cephfs\",\"settings\":{\"monitors\":[\"$monitor\"],\"fs_name\":\"tundra\"},\"credential\":\"$key\"}" | field '["id"]')

count() { # PATH FIELD VALUE -> how many items have FIELD == VALUE (paging through)
  python3 - "$1" "$2" "$3" "http://$addr" "$token" <<'EOF'
import json, sys, urllib.request
path, field, value, base, token = sys.argv[1:]
n, cursor = 0, None
while True:
    url = f"{base}{path}?limit=500" + (f"&after={cursor}" if cursor else "")
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    page = json.load(urllib.request.urlopen(req))
    n += sum(1 for i in page["items"] if i[field] == value)
    cursor = page.get("next")
    if not cursor:
        break
print(n)
EOF
}

echo "bench-shares: $n shares + $n rules through tundrad" >&2
t0=$(now)
for i in $(seq "$n"); do
  share=$(api POST /v1/shares "{\"project_id\":\"$project\",\"name\":\"s$i\",\"share_type_id\":\"$type\",\"size_gib\":1}" | field '["id"]')
  api POST /v1/share-access "{\"share_id\":\"$share\",\"kind\":\"cephx\",\"access_to\":\"r$i\"}" >/dev/null
done
t_accepted=$(now)
deadline=$(( $(date +%s) + 60 + 10 * n ))
while :; do
  shares=$(count /v1/shares status available)
  rules=$(count /v1/share-access state active)
  [ "$shares" -ge "$n" ] && [ "$rules" -ge "$n" ] && break
  if [ "$(date +%s)" -gt "$deadline" ]; then
    echo "bench-shares: gave up: $shares of $n shares available, $rules of $n rules active (see $work/tundrad.log)" >&2
    exit 1
  fi
  sleep 0.2
done
t1=$(now)

echo "bench-shares: $n subvolumes + $n grants with the ceph CLI" >&2
c fs subvolumegroup create tundra bench
t2=$(now)
for i in $(seq "$n"); do
  c fs subvolume create tundra "b$i" --size 1073741824 --group_name bench
  c fs subvolume authorize tundra "b$i" "bench.r$i" --group_name bench --access_level rw >/dev/null
done
t3=$(now)

python3 - "$n" "$t0" "$t_accepted" "$t1" "$t2" "$t3" <<'EOF'
import sys
n = int(sys.argv[1])
t0, acc, t1, t2, t3 = map(float, sys.argv[2:])
tundra, cli = t1 - t0, t3 - t2
print(f"{'':28}{'total':>10}{'per share':>12}")
print(f"{'tundrad (API → all active)':28}{tundra:>9.1f}s{tundra / n * 1000:>10.0f}ms")
print(f"{'  of which accepting':28}{acc - t0:>9.1f}s")
print(f"{'ceph CLI directly':28}{cli:>9.1f}s{cli / n * 1000:>10.0f}ms")
print(f"ratio tundrad / ceph CLI: {tundra / cli:.2f}")
EOF
