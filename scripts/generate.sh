#!/usr/bin/env bash
# Regenerates every committed generated artifact: provider docs under docs/,
# the input/output tables of modules/*/README.md,
# the OpenAPI document docs/openapi.json, the machine state diagram
# docs/machine-states.md, and the checksums of new migrations
# (service/store/migrations/RELEASED; lines already there never change). The tests that check them for drift run in the same way, so a clean
# run here followed by `git diff` shows exactly what changed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
UPDATE_GENERATED=1 cargo test -q -p terraform-provider-tundra --test docs  # provider docs, module READMEs
UPDATE_GENERATED=1 cargo test -q -p tundrad --lib -- http::tests::openapi_document_is_committed_and_current
UPDATE_GENERATED=1 cargo test -q -p tundra-engine --lib -- machine_states::tests::diagram_is_committed_and_current
UPDATE_GENERATED=1 cargo test -q -p tundra-store --lib -- tests::released_migrations_never_change
git status --short docs/ modules/ service/store/migrations/
