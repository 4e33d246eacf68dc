#!/usr/bin/env bash
# Every test Tundra has, from a fresh machine: setup (idempotent), formatting,
# lints, doc tests, then the whole workspace under cargo-nextest (unit,
# integration and the real-Terraform tests; its summary closes the output).
# Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# Each phase's wall time, printed as the next one starts (and at the end):
# where the run's time goes, for whoever keeps it under its budget.
phase_name="setup"
phase_start=$SECONDS
phase() {
  echo "test: ${phase_name} took $((SECONDS - phase_start)) s"
  phase_name="$1"
  phase_start=$SECONDS
  echo "test: $1"
}
trap 'echo "test: ${phase_name} took $((SECONDS - phase_start)) s; the run took ${SECONDS} s"' EXIT
scripts/setup.sh
phase "cargo fmt --check"
cargo fmt --all --check
phase "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
phase "doc tests"
cargo test --workspace --locked --doc -q
phase "cargo build --bins (the lab tests run tundrad and tundra-agent as programs)"
cargo build --workspace --bins --locked -q
# sshd (the switch tests' and the lab switch's) needs /run/sshd; made once
# here, so no test removes it while another's sshd still needs it.
if [ ! -d /run/sshd ]; then
  mkdir -p /run/sshd
  trap 'rmdir /run/sshd 2>/dev/null || true; echo "test: ${phase_name} took $((SECONDS - phase_start)) s; the run took ${SECONDS} s"' EXIT
fi
if [ -z "${TUNDRA_K3S_BUNDLE:-}" ]; then
  echo "test: k3s_on_the_lab and kubernetes_module_on_the_lab are SKIPPED (listed as ignored): no registry"
  echo "      ships k3s; set TUNDRA_K3S_BUNDLE to a tar of the k3s binary and"
  echo "      k3s-airgap-images-amd64.tar.zst to run Kubernetes on the lab"
fi
phase "cargo nextest"
cargo nextest run --workspace --locked --no-fail-fast
