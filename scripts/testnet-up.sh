#!/usr/bin/env bash
# Start the docker-compose testnet (testnet/docker-compose.yml): one primary, three relays, one
# archive (and N extra relays), and wait until every node is healthy (its /readyz answers 200).
#
#   scripts/testnet-up.sh [options]
#     --relays N             extra relays besides the three fixed ones (compose --scale relay=N)
#     --slot-seconds N       chain timing of a NEW testnet (default 2 s slots x 10 = 20 s epochs,
#     --slots-per-epoch N      like the devnet); an existing one keeps its spec until
#     --grace-slots N          scripts/testnet-down.sh removes it
#     --no-build             use the image as it is (default: scripts/testnet-build.sh first)
#     --bin PATH             build the image around this static binary instead of running cargo
#     --timeout SECS         how long to wait for the nodes to become healthy (default 240)
#
# Needs a docker engine and `docker compose` or `docker-compose`; pulls no image.
set -euo pipefail
. "$(dirname "$0")/../testnet/lib.sh"

build=1 bin="" relays=0 timeout=240
while [ $# -gt 0 ]; do
    case $1 in
        --relays) relays=$2; shift 2 ;;
        --slot-seconds) export RUSTCHAIN_TESTNET_SLOT_SECONDS=$2; shift 2 ;;
        --slots-per-epoch) export RUSTCHAIN_TESTNET_SLOTS_PER_EPOCH=$2; shift 2 ;;
        --grace-slots) export RUSTCHAIN_TESTNET_GRACE_SLOTS=$2; shift 2 ;;
        --no-build) build=0; shift ;;
        --bin) bin=$2; shift 2 ;;
        --timeout) timeout=$2; shift 2 ;;
        -h|--help) usage ;;
        *) bad_option "$1" ;;
    esac
done

need_docker "cannot start the docker testnet"
if [ "$build" = 1 ]; then
    "$ROOT/scripts/testnet-build.sh" ${bin:+--bin "$bin"}
elif ! docker image inspect "$IMAGE" >/dev/null 2>&1; then
    die "no image $IMAGE: run without --no-build (or scripts/testnet-build.sh)"
fi

log "starting project $PROJECT with $(compose_cmd) ($((5 + relays)) nodes); compose waits for the primary to be healthy before the others"
compose up -d --scale relay="$relays" 2>&1 | sed 's/^/    /' >&2
wait_all_healthy "$timeout"
phase=$(epoch_phase) || phase="? ? ? ?"
read -r epoch _ spe secs <<<"$phase"
log "testnet up: $((5 + relays)) nodes healthy; epoch $epoch, ${spe} slots of ${secs}s per epoch"
node_containers | while read -r name id; do
    printf '    %-28s http://%s:8099 (container %s, %s)\n' "$name" "$name" "${id:0:12}" "$(health_of "$id")" >&2
done
log "check agreement: scripts/testnet-check.sh --wait 120; logs: $(compose_cmd) -p $PROJECT -f testnet/docker-compose.yml logs -f"
