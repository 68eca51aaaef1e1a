#!/usr/bin/env bash
# Run the fault scenarios against the docker-compose testnet, one after the other on the same
# testnet (each ends by proving that all nodes agree and nothing acknowledged was lost, so the
# next starts from a healthy network), and print how long each took.
#
#   scripts/testnet-faults.sh [scenario...]
#     kill-relay        (a) kill -9 of a relay mid-epoch, restart: it catches up and signs the same hash
#     partition         (b) a validator and a relay disconnected for a whole epoch, then reconnected
#     rolling-restart   (c) every node restarted in turn while the miner simulator attests
#     primary-down      (d) the primary stopped: the relays accept, gossip and certify without it
#   (default: all four, in this order). Start the testnet first (scripts/testnet-up.sh).
#   Each scenario is also a script of its own: testnet/scenarios/<name>.sh.
set -euo pipefail
. "$(dirname "$0")/../testnet/lib.sh"

all=(kill-relay partition rolling-restart primary-down)
case ${1:-} in -h|--help) usage ;; esac
scenarios=("$@")
[ ${#scenarios[@]} -gt 0 ] || scenarios=("${all[@]}")
for s in "${scenarios[@]}"; do
    [ -x "$ROOT/testnet/scenarios/$s.sh" ] || die "unknown scenario $s (${all[*]})"
done
need_docker "cannot run the fault scenarios"
[ -n "$(container_of primary)" ] || die "no testnet is running (project $PROJECT): scripts/testnet-up.sh first"

results=()
for s in "${scenarios[@]}"; do
    log "=== scenario $s ==="
    t=$SECONDS
    if "$ROOT/testnet/scenarios/$s.sh"; then
        results+=("$s PASSED $((SECONDS - t))")
        log "=== scenario $s PASSED in $((SECONDS - t)) s ==="
    else
        results+=("$s FAILED $((SECONDS - t))")
        log "=== scenario $s FAILED after $((SECONDS - t)) s ==="
        break
    fi
done
printf '%-16s %-7s %s\n' SCENARIO RESULT SECONDS
printf '%-16s %-7s %s\n' ${results[@]}
for r in "${results[@]}"; do
    case $r in *FAILED*) exit 1 ;; esac
done
[ ${#results[@]} -eq ${#scenarios[@]} ]
