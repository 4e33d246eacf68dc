#!/usr/bin/env bash
# Switch-port programming benchmark (a command, not a test): N port moves on
# one emulated switch (fake-switches over SSH on loopback), one session per
# change vs one batched session, in the same run; then N moves on each of 8
# switches at once. Sessions are counted by the emulator.
#
#   scripts/bench-switch.sh [N]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
n=${1:-100}
[ -x .venv/bin/python ] || { echo "bench: no .venv; run scripts/setup.sh" >&2; exit 1; }
cargo build -q --release -p tundra-drivers --example bench-switch
target/release/examples/bench-switch .venv/bin/python scripts/peers/fake-switches.py "$n"
