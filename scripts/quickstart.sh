#!/usr/bin/env bash
# The quickstart: build Tundra, start tundrad on its embedded default (a data
# dir under .tundra/quickstart, a free loopback port), and `terraform apply`
# examples/terraform/quickstart against it with the freshly built provider.
# Stops tundrad on exit; the data dir stays for a second run.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
scripts/setup.sh

echo "quickstart: building tundrad and terraform-provider-tundra"
cargo build -q -p tundrad -p terraform-provider-tundra
bin="$root/target/debug"

work="$root/.tundra/quickstart"
mkdir -p "$work"
rm -f "$work/address"
"$bin/tundrad" --listen 127.0.0.1:0 --data-dir "$work/data" --address-file "$work/address" 2>"$work/tundrad.log" &
tundrad_pid=$!
trap 'kill "$tundrad_pid" 2>/dev/null || true; wait "$tundrad_pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 200); do
  [ -s "$work/address" ] && break
  kill -0 "$tundrad_pid" 2>/dev/null || { cat "$work/tundrad.log" >&2; echo "quickstart: tundrad exited" >&2; exit 1; }
  sleep 0.05
done
[ -s "$work/address" ] || { echo "quickstart: tundrad did not start (log: $work/tundrad.log)" >&2; exit 1; }
endpoint="http://$(cat "$work/address")"
echo "quickstart: tundrad is serving at $endpoint (log: $work/tundrad.log)"

# The provider just built, through dev_overrides (no registry involved).
cat >"$work/terraformrc" <<RC
provider_installation {
  dev_overrides {
    "tundra/tundra" = "$bin"
  }
  direct {}
}
RC
terraform=$(cat "$root/.venv/terraform-cli")
# The first start bootstrapped the admin and wrote its token (mode 0600).
TUNDRA_TOKEN=$(cat "$work/data/admin-token")
export TUNDRA_TOKEN TF_CLI_CONFIG_FILE="$work/terraformrc" CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION=1
# A small disk image and a key to declare.
[ -f "$work/demo.raw" ] || head -c 4194304 /dev/urandom >"$work/demo.raw"
[ -f "$work/id_ed25519.pub" ] || ssh-keygen -q -t ed25519 -N '' -C quickstart -f "$work/id_ed25519"
cd "$root/examples/terraform/quickstart"
"$terraform" apply -auto-approve -input=false -var "endpoint=$endpoint" \
  -var "image_path=$work/demo.raw" -var "public_key=$(cat "$work/id_ed25519.pub")" -state="$work/terraform.tfstate"
"$terraform" output -state="$work/terraform.tfstate"
