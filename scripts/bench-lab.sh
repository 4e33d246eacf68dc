#!/usr/bin/env bash
# The lab benchmark: N lab machines available → deployed → cleaned through a
# release tundrad, wall times per phase, the share of deploy time spent
# outside image I/O, and the agent's image write vs dd to the same disk file.
#   scripts/bench-lab.sh [MACHINES=50] [IMAGE_MIB=64]      (root)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
machines="${1:-50}"
image_mib="${2:-64}"
cargo build --release --locked -q -p tundra-agent -p tundrad --bins
cargo build --release --locked -q -p tundra-lab --example bench
exec target/release/examples/bench --machines "$machines" --image-mib "$image_mib"
