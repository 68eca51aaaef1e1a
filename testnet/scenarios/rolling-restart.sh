#!/usr/bin/env bash
# Fault (c): a rolling restart of every node (SIGTERM, start, wait until ready, next) while the
# miner simulator keeps attesting into random nodes. Every attestation that got a 200 must be in
# every node's registry afterwards, and all nodes must agree.
. "$(dirname "$0")/../lib.sh"

ledger=rolling-restart.ledger
miners_start "$ledger" 4
e0=$(epoch_phase | awk '{print $1}')
while read -r name id; do
    t=$SECONDS
    docker restart -t 30 "$id" >/dev/null
    wait_healthy "$id" 180
    log "restarted $name: ready again after $((SECONDS - t)) s ($(ledger_count "$ledger") acknowledged so far)"
done < <(node_containers)
miners_stop
log "$(ledger_count "$ledger") attestations acknowledged during the rolling restart (from epoch $e0)"
e1=$(epoch_phase | awk '{print $1}')
assert_agree "$ledger" --wait 180s --min-certified "$e1" --compare 3
