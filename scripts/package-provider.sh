#!/usr/bin/env bash
# Package terraform-provider-tundra the way Terraform installs providers:
#
#   scripts/package-provider.sh [--hostname HOST] [--profile release|debug] [--out DIR]
#
# writes into DIR (default target/provider):
#   terraform-provider-tundra_VERSION_linux_amd64.zip   the release archive
#   terraform-provider-tundra_VERSION_SHA256SUMS        its checksum
#   filesystem-mirror/HOST/tundra/tundra/…zip           for `filesystem_mirror { path = … }`
#   network-mirror/HOST/tundra/tundra/{index.json,VERSION.json,…zip}
#                                                       static files for `network_mirror { url = … }`
# Users then write `source = "HOST/tundra/tundra"`; docs/guides/install.md
# says how a site publishes either mirror. HOST defaults to
# terraform.tundra.internal (use the name of the site's web server).
set -euo pipefail
here=$(pwd)
cd "$(dirname "${BASH_SOURCE[0]}")/.."

host=terraform.tundra.internal profile=release out=target/provider
while [ $# -gt 0 ]; do
  case "$1" in
    --hostname) host="$2"; shift 2 ;;
    --profile) profile="$2"; shift 2 ;;
    --out) out=$(cd "$here" && realpath -m "$2"); shift 2 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "package-provider: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
# `--bin`, not `-p`: with `-p` cargo resolves features for this package alone,
# so every dependency is compiled again next to the workspace's build.
case "$profile" in
  release) cargo build -q --locked --release --bin terraform-provider-tundra; bin=target/release/terraform-provider-tundra ;;
  debug) cargo build -q --locked --bin terraform-provider-tundra; bin=target/debug/terraform-provider-tundra ;;
  *) echo "package-provider: --profile is release or debug" >&2; exit 2 ;;
esac

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
name=terraform-provider-tundra
zip_name=${name}_${version}_linux_amd64.zip
mkdir -p "$out"
# The archive holds one executable, terraform-provider-tundra_vVERSION, as
# Terraform expects; written by Python's zipfile with the mode bits set.
python3 - "$bin" "$out/$zip_name" "${name}_v${version}" "$profile" <<'PY'
import os, subprocess, sys, tempfile, zipfile
src, dest, inner, profile = sys.argv[1:]
if profile == "release":
    tmp = tempfile.NamedTemporaryFile(delete=False)
    tmp.close()
    subprocess.run(["strip", "-o", tmp.name, src], check=True)
    src = tmp.name
info = zipfile.ZipInfo(inner, date_time=(2026, 1, 1, 0, 0, 0))
info.external_attr = 0o100755 << 16
info.compress_type = zipfile.ZIP_DEFLATED
with open(src, "rb") as f, zipfile.ZipFile(dest + ".partial", "w") as z:
    z.writestr(info, f.read())
os.replace(dest + ".partial", dest)
if profile == "release":
    os.unlink(src)
PY
sum=$(sha256sum "$out/$zip_name" | cut -d' ' -f1)
# Terraform's h1: hash of the archive's contents (dirhash "Hash1": SHA-256 of
# the sorted "SHA256  NAME" lines), what it records from a filesystem mirror.
h1=$(python3 - "$out/$zip_name" <<'PY'
import base64, hashlib, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    lines = "".join(f"{hashlib.sha256(z.read(n)).hexdigest()}  {n}\n" for n in sorted(z.namelist()))
print("h1:" + base64.b64encode(hashlib.sha256(lines.encode()).digest()).decode())
PY
)
echo "$sum  $zip_name" > "$out/${name}_${version}_SHA256SUMS"

fs=$out/filesystem-mirror/$host/tundra/tundra
rm -rf "$out/filesystem-mirror" "$out/network-mirror"
mkdir -p "$fs"
cp "$out/$zip_name" "$fs/"

net=$out/network-mirror/$host/tundra/tundra
mkdir -p "$net"
cp "$out/$zip_name" "$net/"
printf '{"versions":{"%s":{}}}\n' "$version" > "$net/index.json"
printf '{"archives":{"linux_amd64":{"url":"%s","hashes":["%s","zh:%s"]}}}\n' "$zip_name" "$h1" "$sum" > "$net/$version.json"

echo "$out/$zip_name"
