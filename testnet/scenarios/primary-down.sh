#!/usr/bin/env bash
# Fault (d): the primary (the bootstrap node, a validator) stopped. The relays keep accepting
# attestations and gossiping them to each other, and the remaining validators (relay1-3, a quorum
# of 3 of 4) keep certifying epochs. Checked while the primary is down, then again after it is back.
. "$(dirname "$0")/../lib.sh"

ledger=primary-down.ledger
primary=$(container_of primary)
miners_start "$ledger" 4
e0=$(epoch_phase | awk '{print $1}')
docker stop -t 30 "$primary" >/dev/null
start=$SECONDS
log "epoch $e0: primary stopped"
relay=$(container_of relay1)
wait_epoch $((e0 + 2)) "$relay"
# Without the primary: every attestation the relays acknowledged so far is on every remaining
# node, and they agree on certificates up to an epoch that passed entirely without the primary.
# (What the primary acknowledged in its last moments may not have left it before it stopped: the
# final check, with the primary back, covers those.)
grep -v ' http://primary:8099 ' "$RUN_DIR/$ledger" >"$RUN_DIR/primary-down.during" || true
others=$(node_urls | tr ',' '\n' | grep -v '^primary=' | paste -sd, -)
tool testnet check --nodes "$others" --ledger /run-dir/primary-down.during --wait 180s --min-certified $((e0 + 1)) --compare 2
log "without the primary: the $(ledger_count primary-down.during) attestations the relays acknowledged are on every relay, epoch $((e0 + 1)) certified; restarting the primary after $((SECONDS - start)) s"
docker start "$primary" >/dev/null
wait_healthy "$primary" 180
miners_stop
log "$(ledger_count "$ledger") attestations acknowledged during the scenario; checking the primary caught up"
assert_agree "$ledger" --wait 180s --min-certified "$((e0 + 2))" --compare 4
