#!/usr/bin/env bash
# Regenerates every committed generated artifact: provider docs under docs/
# and the OpenAPI document docs/openapi.json. The tests that check them for drift run in the same way, so a clean
# run here followed by `git diff` shows exactly what changed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
UPDATE_GENERATED=1 cargo test -q -p terraform-provider-tundra --test docs
UPDATE_GENERATED=1 cargo test -q -p tundrad --lib -- routes::tests::openapi_document_is_committed_and_current
git status --short docs/
