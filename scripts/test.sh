#!/usr/bin/env bash
# Run every test: unit and property tests, the end-to-end tests against the real binary, the doc
# checks, clippy (warnings are errors), then the testnets (docs/TESTNET.md):
#   - the process testnet (scripts/local-testnet.sh smoke: five nodes on 127.0.0.1 agree on
#     certified epochs and hold every acknowledged attestation), always;
#   - the docker-compose testnet (scripts/testnet-up.sh, scripts/testnet-check.sh) and its fault
#     scenarios (scripts/testnet-faults.sh), when a docker engine answers; otherwise a banner says
#     it was SKIPPED and why.
# Needs only cargo (python3, if present, adds an independent settlement-hash check; docker adds the
# compose testnet).
#
# On a *-linux-gnu host the test build is itself the static binary the FROM scratch image needs:
# cargo builds for the host triple with `-C target-feature=+crt-static`, so the `rustchain` the
# end-to-end tests run is the one that goes into the image and nothing is compiled twice (the
# output is in target/<host triple>/debug/).
#
#   scripts/test.sh [cargo test args]   with arguments, the testnets run only if RUSTCHAIN_TESTNET=1
#   RUSTCHAIN_TESTNET=0                 skip both testnets
#   RUSTCHAIN_DOCKER=0                  skip the docker part only
set -euo pipefail
cd "$(dirname "$0")/.."
command -v python3 >/dev/null || echo "NOTE: python3 not found: the independent Python settlement-hash check will be SKIPPED"

banner() {
    echo
    echo "======================================================================"
    printf '%s\n' "$@"
    echo "======================================================================"
    echo
}

host=$(rustc -vV | sed -n 's/^host: //p')
target_dir=${CARGO_TARGET_DIR:-target}
case $target_dir in /*) ;; *) target_dir=$PWD/$target_dir ;; esac
# Tests that cannot run here (no root for a tmpfs, no python3) say so in this file (tests/common).
skipped_file=$target_dir/tmp/SKIPPED.txt
rm -f "$skipped_file"
case $host in
    *-linux-gnu)
        export RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static --cfg getrandom_backend=\"linux_getrandom\""
        cargo test --workspace --locked --target "$host" "$@"
        bin=$target_dir/$host/debug/rustchain
        static_reason=""
        ;;
    *)
        cargo test --workspace --locked "$@"
        bin=$target_dir/debug/rustchain
        static_reason="this host ($host) is not *-linux-gnu, so the test build is not the static binary a FROM scratch image needs"
        ;;
esac
if [ -s "$skipped_file" ]; then
    banner "TESTS SKIPPED (they could not run on this machine):" "$(cat "$skipped_file")"
fi

# Lints: the whole workspace, every target, warnings are errors (not when running a subset).
if [ $# -eq 0 ]; then
    if cargo clippy --version >/dev/null 2>&1; then
        echo "clippy: cargo clippy --workspace --all-targets -- -D warnings"
        case $host in
            *-linux-gnu) cargo clippy --workspace --locked --target "$host" --all-targets -- -D warnings ;;
            *) cargo clippy --workspace --locked --all-targets -- -D warnings ;;
        esac
    else
        banner "CLIPPY SKIPPED: cargo clippy is not installed (rustup component add clippy)"
    fi
fi

if [ "${RUSTCHAIN_TESTNET:-}" = 0 ] || { [ $# -gt 0 ] && [ "${RUSTCHAIN_TESTNET:-}" != 1 ]; }; then
    banner "TESTNETS SKIPPED: $([ "${RUSTCHAIN_TESTNET:-}" = 0 ] && echo "RUSTCHAIN_TESTNET=0" || echo "arguments were given (set RUSTCHAIN_TESTNET=1 to run them too)")"
    exit 0
fi

# The process testnet, on ports nobody else here uses.
for _ in 1 2 3 4 5 6 7 8 9 10; do
    base=$((20000 + (RANDOM % 1200) * 10))
    busy=0
    for p in $(seq "$base" $((base + 4))) $(seq $((base + 100)) $((base + 104))) $(seq $((base + 200)) $((base + 204))); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then busy=1; break; fi
    done
    [ "$busy" = 0 ] && break
done
t=$SECONDS
RUSTCHAIN_BIN=$bin scripts/local-testnet.sh smoke --dir "$target_dir/testnet/local" --base-port "$base"
process_s=$((SECONDS - t))

# The docker-compose testnet and the fault scenarios.
. testnet/lib.sh
reason=${static_reason}
[ -n "$reason" ] || reason=$(docker_unavailable)
[ "${RUSTCHAIN_DOCKER:-}" != 0 ] || reason="RUSTCHAIN_DOCKER=0"
if [ -n "$reason" ]; then
    banner "DOCKER TESTNET AND FAULT SCENARIOS SKIPPED: $reason" \
        "(the process testnet above did run: five nodes agreed and held every acknowledged attestation)"
    exit 0
fi

# A project, image and run directory of this run's own, so a developer's testnet is left alone.
export RUSTCHAIN_TESTNET_PROJECT=rustchain-test-$$
export RUSTCHAIN_IMAGE=rustchain-node:test-$$
export RUSTCHAIN_TESTNET_RUN_DIR=$target_dir/testnet/compose
logs=$target_dir/testnet/compose-logs
cleanup() {
    local code=$?
    if [ "$code" != 0 ]; then
        scripts/testnet-down.sh --logs "$logs" || true
        echo "the docker testnet failed: container logs in $logs, ledgers in $RUSTCHAIN_TESTNET_RUN_DIR" >&2
    else
        scripts/testnet-down.sh || true
    fi
    docker rmi "$RUSTCHAIN_IMAGE" >/dev/null 2>&1 || true
    exit "$code"
}
trap cleanup EXIT
t=$SECONDS
# 1 s slots, 10 per epoch: an epoch every 10 s.
scripts/testnet-up.sh --bin "$bin" --slot-seconds 1 --slots-per-epoch 10
scripts/testnet-check.sh --wait 120 --min-certified 1
up_s=$((SECONDS - t))
t=$SECONDS
scripts/testnet-faults.sh
faults_s=$((SECONDS - t))
banner "process testnet: ${process_s} s; docker testnet up and agreeing: ${up_s} s; fault scenarios: ${faults_s} s"
