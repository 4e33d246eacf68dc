#!/usr/bin/env bash
# The chaos suite (issue #23): faults a site meets, on the lab, with figures —
# `kill -9` of one tundrad and of one of three replicas during deploy waves,
# BMC faults through a fault-injecting proxy, switch faults with read-back,
# PostgreSQL restarts, and two `terraform apply` racing for the last machines.
# Not a test: it prints what happened (the counts that must be 0, and how long
# the site took to converge) as Markdown; docs/reliability.md keeps a run.
#
#   scripts/chaos.sh [--scenarios kill,replicas,bmc,switch,db,race]
#                    [--machines 20] [--kills 50] [--db-restarts 3]
#                    [--switch-rounds 10] [--races 20] [--race-k 3]     (root)
#
# Needs what scripts/setup.sh installs (the lab's peers, PostgreSQL,
# fake-switches, Terraform). CHAOS_JSON=PATH also writes the figures as JSON.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ "$(id -u)" = 0 ] || { echo "chaos.sh: the lab needs root (network namespaces, loop mounts)" >&2; exit 1; }
[ -x .venv/bin/python ] || { echo "chaos.sh: no .venv; run scripts/setup.sh first" >&2; exit 1; }
cargo build --locked -q -p tundrad -p tundra-agent -p terraform-provider-tundra --bins
cargo build --locked -q -p tundra-lab --example chaos
exec target/debug/examples/chaos "$@"
