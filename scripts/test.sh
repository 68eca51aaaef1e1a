#!/usr/bin/env bash
# Run every test: unit and property tests, the end-to-end tests against the real binary, and the
# doc checks. Needs only cargo (python3, if present, adds an independent settlement-hash check).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v python3 >/dev/null || echo "NOTE: python3 not found: the independent Python settlement-hash check will be SKIPPED"
cargo test --workspace --locked "$@"
