#!/usr/bin/env bash
# Fault (a): `kill -9` of a relay in the middle of an epoch while miners attest, then restart it.
# It must catch up (every attestation acknowledged anywhere, including while it was down, ends up
# in its registry), settle that epoch to the certified hash and sign it (its vote is among the
# votes for the certified hash), and all nodes must agree.
#   testnet/scenarios/kill-relay.sh [SERVICE]     (default relay1, a validating relay)
. "$(dirname "$0")/../lib.sh"

victim=${1:-relay1}
c=$(container_of "$victim")
[ -n "$c" ] || die "no $victim container"
key=$(api "$c" /api/stats | json_str node_public_key)
primary=$(container_of primary)
ledger=kill-relay.ledger

miners_start "$ledger" 4
read -r _ _ spe secs <<<"$(epoch_phase)"
epoch=$(wait_slot_in_epoch $((spe / 4)))
before=$(api "$primary" /api/stats | json_num attestations)
log "epoch $epoch, slot $((spe / 4)) of $spe: kill -9 $victim (validator key ${key:0:16}...)"
docker kill -s KILL "$c" >/dev/null
# While it is down the others keep acknowledging attestations that it will have to catch up on.
start=$SECONDS
until [ "$(api "$primary" /api/stats | json_num attestations)" -ge $((before + 3)) ]; do
    [ $((SECONDS - start)) -lt 60 ] || die "the other nodes accepted nothing while $victim was down"
    sleep 0.2
done
log "the others acknowledged $(( $(api "$primary" /api/stats | json_num attestations) - before )) attestations meanwhile; restarting $victim"
docker start "$c" >/dev/null
wait_healthy "$c" 120
now=$(epoch_phase | awk '{print $1}')
log "$victim is back and ready (epoch $now) after $((SECONDS - start)) s down"
[ "$now" = "$epoch" ] || log "note: $victim came back only in epoch $now, after epoch $epoch ended"

# Its own settlement of the epoch it was killed in, and its vote.
start=$SECONDS
while :; do
    s=$(api "$c" "/api/epoch/$epoch/settlement")
    status=$(json_str status <<<"$s")
    [ "$status" = certified ] && break
    [ $((SECONDS - start)) -lt 120 ] || die "$victim: epoch $epoch is '${status:-not settled}' after 120 s: $s"
    sleep 0.5
done
ours=$(sed -n 's/.*"our_settlement_hash_differs":null.*"settlement_hash":"\([0-9a-f]*\)","status".*/\1/p' <<<"$s")
certified=$(grep -o '"certificate":{"epoch":[0-9]*,"round":[0-9]*,"settlement_hash":"[0-9a-f]*"' <<<"$s" | sed 's/.*"settlement_hash":"//; s/"$//')
[ -n "$ours" ] && [ "$ours" = "$certified" ] || die "$victim settled epoch $epoch to ${ours:-?}, the certificate says $certified"
votes=$(grep -o '{"round":[0-9]*,"settlement_hash":"[0-9a-f]*","validators":\[[^]]*\]}' <<<"$s")
signed=$(grep "\"settlement_hash\":\"$certified\"" <<<"$votes" | grep -c "$key" || true)
[ "$signed" -ge 1 ] || die "$victim did not sign the certified hash of epoch $epoch; votes: $votes"
log "$victim settled epoch $epoch to the certified hash ${certified:0:16}... and signed it"

miners_stop
log "$(ledger_count "$ledger") attestations acknowledged during the scenario; checking every node holds them and all agree"
assert_agree "$ledger" --wait 180s --min-certified "$((epoch + 1))" --compare 3
