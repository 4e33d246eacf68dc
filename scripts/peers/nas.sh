#!/usr/bin/env bash
# A storage server for tests and benchmarks: NFS-Ganesha (VFS) and GlusterFS
# on one host that tundrad manages over SSH, as it would a site's file server.
# The host is a network namespace of its own, reached over a veth, and a mount
# namespace whose /run and /var/log/glusterfs are directories under DIR, so
# nothing it writes lands outside DIR.
#
#   scripts/peers/nas.sh start DIR NAME NET   → prints the JSON below
#   scripts/peers/nas.sh stop DIR NAME        → stops it, removes the namespace; keeps DIR
#
# NAME names the namespace (and its veth: NAME-h on this side); NET is a /30's
# first three octets and base, e.g. 198.18.7.0: this side gets .1, the server .2.
# Printed: {"address", "ssh_port", "host_key" (SHA256:…), "key" (the path of the
# private key tundrad logs in with, as root), "exports_file", "pid_file",
# "nfs_root", "gluster_root", "client_address"}.
set -euo pipefail

cmd=${1:?usage: nas.sh start DIR NAME NET | stop DIR NAME}
dir=$(realpath -m "${2:?usage: nas.sh start DIR NAME NET | stop DIR NAME}")
name=${3:?usage: nas.sh start DIR NAME NET | stop DIR NAME}

stop() {
    # Everything the server runs lives in its namespace: stop it all.
    if ip netns list | awk '{print $1}' | grep -qxF "$name"; then
        local pids
        pids=$(ip netns pids "$name" || true)
        [[ -n $pids ]] && kill $pids 2>/dev/null || true
        for _ in $(seq 50); do
            [[ -z $(ip netns pids "$name" 2>/dev/null) ]] && break
            sleep 0.1
        done
        pids=$(ip netns pids "$name" || true)
        [[ -n $pids ]] && kill -9 $pids 2>/dev/null || true
        ip netns del "$name" 2>/dev/null || true
    fi
    ip link del "$name-h" 2>/dev/null || true
}

if [[ $cmd == stop ]]; then
    stop
    exit 0
fi
[[ $cmd == start ]] || { echo "usage: nas.sh start DIR NAME NET | stop DIR NAME" >&2; exit 2; }
net=${4:?usage: nas.sh start DIR NAME NET}
base=${net%.*}
last=${net##*.}
here="$base.$((last + 1))"
addr="$base.$((last + 2))"

for bin in ganesha.nfsd glusterd gluster /usr/sbin/sshd ssh-keygen unshare; do
    command -v "$bin" >/dev/null || { echo "nas.sh: $bin is missing; run scripts/setup.sh" >&2; exit 1; }
done

mkdir -p "$dir"/{run/sshd,run/gluster,run/ganesha,log,glusterd,nfs,bricks,recovery}
chmod 755 "$dir" "$dir/run/sshd"
trap 'stop' ERR
ip netns add "$name"
ip link add "$name-h" type veth peer name eth0 netns "$name"
ip addr add "$here/30" dev "$name-h"
ip link set "$name-h" up
ip -n "$name" addr add "$addr/30" dev eth0
ip -n "$name" link set eth0 up
ip -n "$name" link set lo up

[[ -f $dir/host ]] || ssh-keygen -q -t ed25519 -N '' -C tundra-nas -f "$dir/host"
[[ -f $dir/tundra ]] || ssh-keygen -q -t ed25519 -N '' -C tundra -f "$dir/tundra"
cp "$dir/tundra.pub" "$dir/authorized_keys"
host_key=$(ssh-keygen -l -f "$dir/host.pub" | awk '{print $2}')

cat > "$dir/sshd_config" <<EOF
ListenAddress $addr
Port 22
HostKey $dir/host
AuthorizedKeysFile $dir/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
StrictModes no
UsePAM no
PidFile none
SetEnv SHLVL=1
EOF

cat > "$dir/glusterd.vol" <<EOF
volume management
    type mgmt/glusterd
    option working-directory $dir/glusterd
    option transport-type socket
    option transport.socket.bind-address $addr
    option transport.socket.listen-port 24007
    option ping-timeout 0
    option event-threads 1
end-volume
EOF

: > "$dir/exports.conf"
cat > "$dir/ganesha.conf" <<EOF
NFS_CORE_PARAM {
  Bind_addr = $addr;
  NFS_Port = 2049;
  Protocols = 4;
  Enable_NLM = false;
  Enable_RQUOTA = false;
  Enable_UDP = false;
}
NFSV4 {
  RecoveryBackend = fs;
  RecoveryRoot = $dir/recovery;
  Graceless = true;
  Lease_Lifetime = 10;
}
NFS_KRB5 { Active_krb5 = false; }
%include "$dir/exports.conf"
EOF

# One mount namespace for all three daemons (and the commands run over SSH),
# so the gluster CLI finds glusterd's socket under the same /run.
ip netns exec "$name" unshare -m --propagation private sh -c "
    mount --bind '$dir/run' /run
    mount --bind '$dir/log' /var/log/glusterfs
    glusterd -f '$dir/glusterd.vol' -p /run/glusterd.pid -l /var/log/glusterfs/glusterd.log
    ganesha.nfsd -f '$dir/ganesha.conf' -L '$dir/log/ganesha.log' -p /run/ganesha/ganesha.pid -N NIV_EVENT
    exec /usr/sbin/sshd -D -e -f '$dir/sshd_config'
" </dev/null >>"$dir/log/sshd.log" 2>&1 &

ok=0
for _ in $(seq 100); do
    if ip netns exec "$name" ss -ltn 2>/dev/null | grep -q "$addr:22 " &&
        ip netns exec "$name" ss -ltn 2>/dev/null | grep -q "$addr:24007 " &&
        ip netns exec "$name" ss -ltn 2>/dev/null | grep -q ":2049 "; then
        ok=1
        break
    fi
    sleep 0.1
done
[[ $ok == 1 ]] || { echo "nas.sh: the server did not come up; see $dir/log" >&2; stop; exit 1; }
trap - ERR
printf '{"address":"%s","ssh_port":22,"host_key":"%s","key":"%s","exports_file":"%s","pid_file":"/run/ganesha/ganesha.pid","nfs_root":"%s","gluster_root":"%s","client_address":"%s"}\n' \
    "$addr" "$host_key" "$dir/tundra" "$dir/exports.conf" "$dir/nfs" "$dir/bricks" "$here"
