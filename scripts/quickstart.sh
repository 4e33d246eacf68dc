#!/usr/bin/env bash
# The quickstart, on a fresh machine (root: the lab uses network namespaces):
#  1. build Tundra;
#  2. start a lab site (examples/lab/quickstart.toml: 6 machines with Redfish
#     and IPMI BMCs in network namespaces, firmware that network-boots);
#  3. start tundrad on its embedded default (SQLite under .tundra/quickstart),
#     serving DHCP/iPXE/HTTP boot on the lab's provisioning network;
#  4. build the node image (tundra-lab image build: Debian 12 with cloud-init
#     and sshd, from Debian packages; cached in .venv/images);
#  5. terraform apply examples/terraform/site (the admin enrolls, inspects
#     and cleans every machine) and then examples/terraform/quickstart (a
#     project, a keypair, the image and 4 nodes in one island) — each lab
#     machine then boots the Debian on its disk, configured by cloud-init
#     from the config drive tundrad wrote;
#  6. print the nodes and log into one over SSH with the keypair's key.
# Stops tundrad and tears the lab down on exit; QUICKSTART_KEEP=1 keeps both
# running (Ctrl-C to stop) so a person can log in with the printed command.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
scripts/setup.sh

echo "quickstart: building tundrad, tundra-agent, tundra-lab and terraform-provider-tundra"
cargo build -q -p tundrad -p tundra-agent -p tundra-lab -p terraform-provider-tundra
bin="$root/target/debug"

work="$root/.tundra/quickstart"
rm -rf "$work"
mkdir -p "$work/boot" "$work/tftp"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
# wait_for FILE PID LOG WHAT: until FILE has content, while PID lives.
wait_for() {
  for _ in $(seq 1 600); do
    [ -s "$1" ] && return 0
    kill -0 "$2" 2>/dev/null || { cat "$3" >&2; echo "quickstart: $4 exited (log: $3)" >&2; exit 1; }
    sleep 0.1
  done
  echo "quickstart: $4 did not start (log: $3)" >&2
  exit 1
}

# 2. The lab.
"$bin/tundra-lab" up --site examples/lab/quickstart.toml --dir "$work/lab" --venv "$root/.venv" >"$work/lab.log" 2>&1 &
pids+=($!)
wait_for "$work/lab/lab.json" "${pids[0]}" "$work/lab.log" "the lab"
echo "quickstart: lab up ($(python3 -c "import json,sys; print(len(json.load(open(sys.argv[1]))['machines']))" "$work/lab/lab.json") machines; $work/lab/lab.json)"

# 3. tundrad, with the lab's provisioning network. The lab's machines run
# the real agent binary as their initrd (they have no kernel of their own).
cp "$bin/tundra-agent" "$work/boot/initramfs"
echo "the lab boots no kernel of its own" >"$work/boot/vmlinuz"
python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
p = json.load(open(f"{work}/lab/lab.json"))["provisioning"]
net = p["address"].split("/")[0].rsplit(".", 1)[0]
with open(f"{work}/tundrad.toml", "w") as f:
    f.write(f'''listen = "127.0.0.1:0"
data_dir = "{work}/data"
boot_assets_dir = "{work}/boot"
reconcile_interval = "2s"

[[provisioning_networks]]
interface = "{p["interface"]}"
address = "{p["address"]}"
pool = "{p["pool"]}"
node_pool = "{net}.200-{net}.249"
http_port = 0
tftp_root = "{work}/tftp"
tftp_port = 0
''')
PY
"$bin/tundrad" --config "$work/tundrad.toml" --address-file "$work/address" 2>"$work/tundrad.log" &
pids+=($!)
wait_for "$work/address" "${pids[1]}" "$work/tundrad.log" "tundrad"
endpoint="http://$(cat "$work/address")"
echo "quickstart: tundrad is serving at $endpoint (log: $work/tundrad.log)"

# 4–5. The image, and Terraform with the provider just built (dev_overrides, no registry).
cat >"$work/terraformrc" <<RC
provider_installation {
  dev_overrides {
    "tundra/tundra" = "$bin"
  }
  direct {}
}
RC
terraform=$(cat "$root/.venv/terraform-cli")
TUNDRA_TOKEN=$(cat "$work/data/admin-token")
export TUNDRA_TOKEN TF_CLI_CONFIG_FILE="$work/terraformrc" CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION=1
# The node image (a no-op when .venv/images has it) and a key.
echo "quickstart: building the node image (Debian 12, cloud-init, sshd; cached in .venv/images)"
image=$("$bin/tundra-lab" image build --cache "$root/.venv/images" 2>>"$work/image.log" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["raw"])') \
  || { tail -20 "$work/image.log" >&2; echo "quickstart: the image build failed" >&2; exit 1; }
ssh-keygen -q -t ed25519 -N '' -C quickstart -f "$work/id_ed25519"

echo "quickstart: enrolling, inspecting and cleaning the lab's machines (examples/terraform/site)"
"$terraform" -chdir="$root/examples/terraform/site" apply -auto-approve -input=false -no-color \
  -var "endpoint=$endpoint" -var "lab_file=$work/lab/lab.json" -state="$work/site.tfstate" >"$work/site.log" \
  || { tail -40 "$work/site.log" >&2; exit 1; }
"$terraform" -chdir="$root/examples/terraform/site" output -no-color -state="$work/site.tfstate"

echo "quickstart: deploying 4 nodes (examples/terraform/quickstart)"
"$terraform" -chdir="$root/examples/terraform/quickstart" apply -auto-approve -input=false -no-color \
  -var "endpoint=$endpoint" -var "image_path=$image" -var "public_key=$(cat "$work/id_ed25519.pub")" \
  -state="$work/terraform.tfstate" >"$work/quickstart.log" || { tail -40 "$work/quickstart.log" >&2; exit 1; }

# 6. The nodes, and a way in: the host is on the lab's provisioning network.
"$terraform" -chdir="$root/examples/terraform/quickstart" output -no-color -state="$work/terraform.tfstate"
ip=$("$terraform" -chdir="$root/examples/terraform/quickstart" output -raw -no-color -state="$work/terraform.tfstate" worker_0_ip)
login=(ssh -i "$work/id_ed25519" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR "debian@$ip")
echo "quickstart: logging into worker-0 (cloud-init configured it from its config drive)"
for i in $(seq 1 90); do
  if out=$("${login[@]}" -o BatchMode=yes -o ConnectTimeout=3 \
      'cloud-init status --wait >/dev/null; echo "$(hostname): $(ip -o -4 addr show | awk "{print \$2, \$4}" | grep -v "^lo" | tr "\n" " ")"' 2>&1); then
    echo "quickstart: $out"
    break
  fi
  [ "$i" = 90 ] && { echo "quickstart: worker-0 did not answer over SSH: $out" >&2; exit 1; }
  sleep 2
done
echo "quickstart: log in with: ${login[*]}"
if [ "${QUICKSTART_KEEP:-0}" = 1 ]; then
  echo "quickstart: tundrad at $endpoint, token in $work/data/admin-token; Ctrl-C stops tundrad and the lab"
  wait
fi
