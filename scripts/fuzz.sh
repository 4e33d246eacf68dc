#!/usr/bin/env bash
# Fuzzing as a command, not a test: tundra-fuzz runs each target (DHCP
# packets, TFTP requests, agent reports and inventories, inspection rules,
# the API's JSON bodies, SSH keys, qcow2 headers, switch port names) for
# 1,000,000 cases unless told otherwise, and prints figures per target.
#   scripts/fuzz.sh                      every target, 1M cases each
#   scripts/fuzz.sh --cases 5000000 dhcp one target, longer
# A debug build on purpose: overflow checks and debug assertions are part
# of what a case can trip. Exits non-zero when a target fails (the shrunk
# input is printed; it becomes a regression test).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build -q -p tundra-fuzz
exec target/debug/tundra-fuzz "$@"
