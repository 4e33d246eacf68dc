#!/usr/bin/env bash
# A single-node Ceph cluster (mon, mgr, one OSD on memstore, MDS) for tests and
# benchmarks, all of it under one directory.
#
#   scripts/peers/ceph.sh start DIR [ADDRESS[:PORT]]  → prints {"fsid","monitors","key","conf"} as JSON
#   scripts/peers/ceph.sh stop DIR               → stops every daemon it started, keeps DIR
#
# ADDRESS (default 127.0.0.1, port 6789) is where the monitor listens; give a
# lab network's address so nodes can reach it, and a port of your own when
# several clusters run at once. The client.admin key is printed
# once so the caller can seal it into a share type; nothing else leaves DIR.
set -euo pipefail

cmd=${1:?usage: ceph.sh start|stop DIR [ADDRESS]}
dir=$(realpath -m "${2:?usage: ceph.sh start|stop DIR [ADDRESS]}")
addr=${3:-127.0.0.1}
port=6789
if [[ $addr == *:* ]]; then port=${addr##*:}; addr=${addr%:*}; fi
conf="$dir/ceph.conf"

stop() {
    # The MDS first: it holds sessions the monitor would otherwise wait on.
    for d in mds osd mgr mon; do
        if [[ -f "$dir/$d.pid" ]]; then
            local pid
            pid=$(cat "$dir/$d.pid")
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -9 "$pid" 2>/dev/null || true
            rm -f "$dir/$d.pid"
        fi
    done
}

if [[ $cmd == stop ]]; then
    stop
    exit 0
fi
[[ $cmd == start ]] || { echo "usage: ceph.sh start|stop DIR [ADDRESS]" >&2; exit 2; }

for bin in ceph-mon ceph-mgr ceph-osd ceph-mds ceph ceph-authtool monmaptool; do
    command -v "$bin" >/dev/null || { echo "ceph.sh: $bin is missing; run scripts/setup.sh" >&2; exit 1; }
done

mkdir -p "$dir"/{mon,mgr,osd,mds,log,run}
trap 'stop' ERR
fsid=$(cat /proc/sys/kernel/random/uuid)
cat > "$conf" <<EOF
[global]
fsid = $fsid
mon_host = v1:$addr:$port
mon_initial_members = a
public_network = $addr/32
auth_cluster_required = cephx
auth_service_required = cephx
auth_client_required = cephx
keyring = $dir/\$cluster.\$name.keyring
run_dir = $dir/run
log_file = $dir/log/\$name.log
mon_cluster_log_file = $dir/log/cluster.log
admin_socket = $dir/run/\$name.asok
pid_file = $dir/\$type.pid
osd_pool_default_size = 1
osd_pool_default_min_size = 1
mon_allow_pool_size_one = true
mon_allow_pool_delete = true
mon_data_avail_warn = 1
mon_data_avail_crit = 0
mon_warn_on_pool_no_redundancy = false
auth_allow_insecure_global_id_reclaim = false
mon_warn_on_insecure_global_id_reclaim_allowed = false
ms_bind_msgr2 = false
[mon]
mon_data = $dir/mon
[mgr]
mgr_data = $dir/mgr
mgr_disabled_modules = dashboard,prometheus,restful,iostat,nfs
[osd]
osd_data = $dir/osd
osd_objectstore = memstore
memstore_device_bytes = 8589934592
osd_max_object_name_len = 460
osd_max_object_namespace_len = 64
[mds]
mds_data = $dir/mds
EOF

c() { ceph --conf "$conf" "$@"; }
admin="$dir/ceph.client.admin.keyring"
ceph-authtool --create-keyring "$dir/mon.keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
ceph-authtool --create-keyring "$admin" --gen-key -n client.admin \
    --cap mon 'allow *' --cap osd 'allow *' --cap mds 'allow *' --cap mgr 'allow *' >/dev/null
chmod 600 "$admin" "$dir/mon.keyring"
ceph-authtool "$dir/mon.keyring" --import-keyring "$admin" >/dev/null
monmaptool --create --add a "v1:$addr:$port" --fsid "$fsid" "$dir/monmap" >/dev/null
ceph-mon --conf "$conf" --mkfs -i a --monmap "$dir/monmap" --keyring "$dir/mon.keyring" 2>/dev/null
cp "$dir/mon.keyring" "$dir/ceph.mon.a.keyring"
ceph-mon --conf "$conf" -i a 2>>"$dir/log/mon.err"
for _ in $(seq 100); do c -s >/dev/null 2>&1 && break; sleep 0.1; done

c auth get-or-create mgr.x mon 'allow profile mgr' osd 'allow *' mds 'allow *' -o "$dir/ceph.mgr.x.keyring"
# In the foreground: daemonized, `fs subvolume authorize` fails with EBADF.
setsid ceph-mgr --conf "$conf" -i x -f </dev/null >>"$dir/log/mgr.out" 2>&1 &
echo $! > "$dir/mgr.pid"

osd_id=$(c osd create)
c auth get-or-create "osd.$osd_id" mon 'allow profile osd' osd 'allow *' mgr 'allow profile osd' \
    -o "$dir/ceph.osd.$osd_id.keyring"
ceph-osd --conf "$conf" -i "$osd_id" --mkfs --osd-uuid "$(cat /proc/sys/kernel/random/uuid)" >/dev/null 2>&1
ceph-osd --conf "$conf" -i "$osd_id" 2>/dev/null

c auth get-or-create mds.a mon 'allow profile mds' osd 'allow rwx' mds 'allow' mgr 'allow profile mds' \
    -o "$dir/ceph.mds.a.keyring"
ceph-mds --conf "$conf" -i a >/dev/null 2>&1

for _ in $(seq 300); do
    c mgr stat 2>/dev/null | grep -q '"available": true' && break
    sleep 0.2
done
c fs volume create tundra >/dev/null 2>&1
for _ in $(seq 300); do
    c fs status tundra 2>/dev/null | grep -q active && break
    sleep 0.2
done
c fs status tundra | grep -q active || { echo "ceph.sh: no active MDS; see $dir/log" >&2; stop; exit 1; }
trap - ERR
key=$(ceph-authtool "$admin" -n client.admin -p)
printf '{"fsid":"%s","monitors":["%s"],"key":"%s","conf":"%s"}\n' "$fsid" "$addr:$port" "$key" "$conf"
