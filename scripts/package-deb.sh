#!/usr/bin/env bash
# Build the tundrad Debian package:
#   /usr/bin/tundrad, the operators' CLI /usr/bin/tundra (with bash
#   completions), /usr/lib/tundra/tundra-agent, the agent's boot assets
#   (/usr/lib/tundra/boot/{vmlinuz,initramfs}, made from Debian's kernel by
#   `tundra-lab ramdisk build`), the hardened systemd unit, the commented
#   /etc/tundra/tundrad.toml (a conffile) and the docs.
#
#   scripts/package-deb.sh [--profile release|debug] [--out DIR]
#
# Prints the .deb's path. `--profile debug` packages the debug build the test
# suite already made (the packaging test uses it; a site wants release, the
# default). `--upgrade-probe` packages tundrad built with one extra migration
# as version VERSION+upgrade.probe: the packaging test's "next release".
set -euo pipefail
here=$(pwd)
cd "$(dirname "${BASH_SOURCE[0]}")/.."

profile=release out=target/package probe=
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile="$2"; shift 2 ;;
    --out) out=$(cd "$here" && realpath -m "$2"); shift 2 ;;
    --upgrade-probe) probe=1; shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "package-deb: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$profile" in
  release) cargo_profile=(--release); dir=target/release ;;
  debug) cargo_profile=(); dir=target/debug ;;
  *) echo "package-deb: --profile is release or debug" >&2; exit 2 ;;
esac

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
# `--bin`, not `-p`: features resolve as in the workspace build, so nothing
# is compiled a second time.
bins=(--bin tundrad --bin tundra --bin tundra-agent --bin tundra-lab)
bin=$dir/tundrad
if [ -n "$probe" ]; then
  bins+=(--bin tundrad-upgrade-probe)
  bin=$dir/tundrad-upgrade-probe
  version="$version+upgrade.probe"
fi
cargo build -q --locked "${cargo_profile[@]}" "${bins[@]}"

# The agent's ramdisk (cached by content in .venv/images, like the lab's).
ramdisk=$("$dir/tundra-lab" ramdisk build --agent "$dir/tundra-agent")
kernel=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["kernel"])' <<<"$ramdisk")
initramfs=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["initramfs"])' <<<"$ramdisk")

mkdir -p "$out"
stage=$(mktemp -d "${TMPDIR:-/tmp}/tundrad-deb.XXXXXX")
trap 'rm -rf "$stage"' EXIT
root=$stage/root
install -d "$root/DEBIAN" "$root/usr/bin" "$root/usr/lib/tundra/boot" "$root/lib/systemd/system" \
  "$root/etc/tundra" "$root/usr/share/doc/tundrad" "$root/usr/share/bash-completion/completions"
install -m 0755 "$bin" "$root/usr/bin/tundrad"
install -m 0755 "$dir/tundra" "$root/usr/bin/tundra"
"$dir/tundra" completion bash > "$root/usr/share/bash-completion/completions/tundra"
install -m 0755 "$dir/tundra-agent" "$root/usr/lib/tundra/tundra-agent"
if [ "$profile" = release ]; then
  strip "$root/usr/bin/tundrad" "$root/usr/bin/tundra" "$root/usr/lib/tundra/tundra-agent"
fi
install -m 0644 "$kernel" "$root/usr/lib/tundra/boot/vmlinuz"
install -m 0644 "$initramfs" "$root/usr/lib/tundra/boot/initramfs"
install -m 0644 packaging/deb/tundrad.service "$root/lib/systemd/system/tundrad.service"
install -m 0640 packaging/deb/tundrad.toml "$root/etc/tundra/tundrad.toml"
install -m 0644 docs/guides/install.md docs/guides/configuration.md docs/guides/cli.md CHANGELOG.md "$root/usr/share/doc/tundrad/"
printf 'Tundra — https://example.org/tundra\nLicense: Apache-2.0\n' > "$root/usr/share/doc/tundrad/copyright"
install -m 0755 packaging/deb/postinst packaging/deb/prerm packaging/deb/postrm "$root/DEBIAN/"
echo /etc/tundra/tundrad.toml > "$root/DEBIAN/conffiles"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
# The C library the binaries were linked against, at least (build on the
# Debian release the package is for); the build host's architecture.
glibc=$(objdump -T "$root/usr/bin/tundrad" "$root/usr/lib/tundra/tundra-agent" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1)
arch=$(dpkg --print-architecture)
cat > "$root/DEBIAN/control" <<CONTROL
Package: tundrad
Version: $version
Architecture: $arch
Maintainer: Tundra <tundra@example.org>
Installed-Size: $size
Depends: libc6 (>= $glibc), passwd, init-system-helpers (>= 1.52), ca-certificates, ipxe, qemu-utils, ipmitool, util-linux
Recommends: ceph-common
Suggests: postgresql
Section: admin
Priority: optional
Homepage: https://example.org/tundra
Description: Tundra bare-metal cloud service
 tundrad provisions a research site's servers: BMC power and boot (Redfish,
 IPMI), DHCP, TFTP and HTTP network boot, an agent that inspects, images and
 erases disks, switch ports over SSH, shares, and the API that Terraform's
 tundra provider drives. SQLite by default, PostgreSQL for replicas.
 The operators' CLI, tundra, comes with it.
CONTROL
deb="$out/tundrad_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
