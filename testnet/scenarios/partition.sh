#!/usr/bin/env bash
# Fault (b): a validator (relay3) and a non-validating relay (the archive) cut off the compose
# network (`docker network disconnect`) for a whole epoch while miners attest to the others, then
# reconnected. Meanwhile the other three validators (a quorum) keep certifying. Afterwards the two
# must converge: every certificate identical everywhere, including the epochs they missed, and
# every acknowledged attestation on every node.
#   testnet/scenarios/partition.sh [SERVICE...]   (default relay3 archive)
. "$(dirname "$0")/../lib.sh"

cut=("$@")
[ ${#cut[@]} -gt 0 ] || cut=(relay3 archive)
net=$(network_name)
ledger=partition.ledger

miners_start "$ledger" 4
e0=$(epoch_phase | awk '{print $1}')
for s in "${cut[@]}"; do
    docker network disconnect "$net" "$(container_of "$s")"
done
start=$SECONDS
log "epoch $e0: disconnected ${cut[*]} from $net"
wait_epoch $((e0 + 2))
# The remaining validators certified the epoch the others missed entirely.
primary=$(container_of primary)
until [ "$(api "$primary" /api/stats | json_num last_certified_epoch)" -ge $((e0 + 1)) ]; do
    [ $((SECONDS - start)) -lt 180 ] || die "the connected validators did not certify epoch $((e0 + 1))"
    sleep 0.5
done
log "epoch $((e0 + 1)) passed entirely without ${cut[*]} and was certified by the rest; reconnecting after $((SECONDS - start)) s"
for s in "${cut[@]}"; do
    # The service name is the node's address in the chain spec's bootnodes: keep it as an alias.
    docker network connect --alias "$s" "$net" "$(container_of "$s")"
done
for s in "${cut[@]}"; do
    wait_healthy "$(container_of "$s")" 180
    log "$s is connected and ready again"
done
miners_stop
log "$(ledger_count "$ledger") attestations acknowledged during the scenario; checking convergence from epoch $e0"
assert_agree "$ledger" --wait 180s --min-certified "$((e0 + 2))" --compare 4
