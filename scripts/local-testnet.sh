#!/usr/bin/env bash
# The testnet of testnet/docker-compose.yml without docker: the same five nodes (primary, three
# relays, archive; validators primary and relay1-3) as plain processes on 127.0.0.1, configured
# the same way (RUSTCHAIN_* variables, every node a bootnode in the chain spec).
#
#   scripts/local-testnet.sh up [options]   init DIR, start the nodes, wait until all are ready
#   scripts/local-testnet.sh down           SIGTERM the nodes it started (by pid), keep DIR
#   scripts/local-testnet.sh smoke          up; agreement (testnet-check.sh --local); the miner
#                                           simulator for two epochs; every acknowledged
#                                           attestation on every node; down (scripts/test.sh runs it)
#   options:
#     --dir DIR              default .testnet/local (removed and recreated by `up`)
#     --base-port P          node i: HTTP P+i, p2p P+100+i, metrics P+200+i (default 18100)
#     --slot-seconds N, --slots-per-epoch N, --grace-slots N   (default 1, 8, 2: 8 s epochs)
#   The binary: $RUSTCHAIN_BIN, else target/release/rustchain (built with cargo when missing).
#   Node logs: DIR/<name>.log. Check it any time with scripts/testnet-check.sh --local DIR.
set -euo pipefail
. "$(dirname "$0")/../testnet/lib.sh"

cmd=${1:-}
[ $# -gt 0 ] && shift
dir=$ROOT/.testnet/local base=18100 slot=1 spe=8 grace=2
while [ $# -gt 0 ]; do
    case $1 in
        --dir) dir=$2; shift 2 ;;
        --base-port) base=$2; shift 2 ;;
        --slot-seconds) slot=$2; shift 2 ;;
        --slots-per-epoch) spe=$2; shift 2 ;;
        --grace-slots) grace=$2; shift 2 ;;
        -h|--help) usage ;;
        *) bad_option "$1" ;;
    esac
done
NAMES=(primary relay1 relay2 relay3 archive)
ROLES=(primary relay relay relay archive)

find_bin() {
    local bin=${RUSTCHAIN_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/rustchain}
    if [ ! -x "$bin" ]; then
        log "no binary at $bin: cargo build --release --bin rustchain"
        (cd "$ROOT" && cargo build --release --locked -p rustchain-cli --bin rustchain)
    fi
    echo "$bin"
}

port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

down() {
    [ -f "$dir/pids" ] || { log "no process testnet running in $dir"; return 0; }
    local pid name
    while read -r name pid; do
        kill -TERM "$pid" 2>/dev/null || true
    done <"$dir/pids"
    while read -r name pid; do
        local waited=0
        while kill -0 "$pid" 2>/dev/null; do
            if [ "$waited" -ge 300 ]; then
                log "$name (pid $pid) did not stop within 30 s of SIGTERM: SIGKILL"
                kill -KILL "$pid" 2>/dev/null || true
                break
            fi
            sleep 0.1
            waited=$((waited + 1))
        done
    done <"$dir/pids"
    rm -f "$dir/pids"
    log "process testnet stopped (logs in $dir)"
}

up() {
    local bin
    bin=$(find_bin)
    if [ -f "$dir/pids" ]; then
        die "a process testnet is already running from $dir: scripts/local-testnet.sh down first"
    fi
    local i
    for i in 0 1 2 3 4; do
        for p in $((base + i)) $((base + 100 + i)) $((base + 200 + i)); do
            port_taken "$p" && die "port $p on 127.0.0.1 is in use: pick other ports with --base-port"
        done
    done
    rm -rf "$dir"
    mkdir -p "$dir"
    echo "$bin" >"$dir/bin"
    "$bin" testnet init --out "$dir/net" --spec-bootnodes --validators 4 --relays 1 --host 127.0.0.1 \
        --base-http-port "$base" --base-p2p-port "$((base + 100))" \
        --slot-seconds "$slot" --slots-per-epoch "$spe" --grace-slots "$grace" --genesis-delay 3 >"$dir/init.txt"
    : >"$dir/nodes"
    for i in 0 1 2 3 4; do
        local name=${NAMES[$i]}
        RUSTCHAIN_SPEC=$dir/net/spec.toml \
        RUSTCHAIN_DATA_DIR=$dir/net/node-$i \
        RUSTCHAIN_ROLE=${ROLES[$i]} \
        RUSTCHAIN_HTTP_ADDR=127.0.0.1:$((base + i)) \
        RUSTCHAIN_P2P_ADDR=/ip4/127.0.0.1/tcp/$((base + 100 + i)) \
        RUSTCHAIN_METRICS_ADDR=127.0.0.1:$((base + 200 + i)) \
        RUSTCHAIN_GOSSIP_PRESET=tiny \
        RUSTCHAIN_GOSSIP_HEARTBEAT_MS=300 \
        RUSTCHAIN_MIN_PEERS=$([ "$i" = 0 ] && echo 0 || echo 1) \
        RUSTCHAIN_RATE_LIMIT_PER_MINUTE=0 \
        RUSTCHAIN_LOG=info \
            "$bin" node >"$dir/$name.log" 2>&1 </dev/null &
        echo "$name $!" >>"$dir/pids"
        echo "$name=http://127.0.0.1:$((base + i))" >>"$dir/nodes"
    done
    log "started 5 nodes from $dir (pids: $(awk '{printf "%s ", $2}' "$dir/pids")); waiting until each is ready"
    local start=$SECONDS name pid url
    while read -r name pid; do
        url=$(grep "^$name=" "$dir/nodes" | cut -d= -f2)
        until "$bin" probe --url "$url/readyz" >/dev/null 2>&1; do
            if ! kill -0 "$pid" 2>/dev/null; then
                tail -n 30 "$dir/$name.log" >&2
                die "$name (pid $pid) exited; its log is above"
            fi
            [ $((SECONDS - start)) -lt 120 ] || { tail -n 30 "$dir/$name.log" >&2; die "$name not ready after 120 s"; }
            sleep 0.5
        done
        log "$name ready at $url"
    done <"$dir/pids"
    log "process testnet up: check it with scripts/testnet-check.sh --local $dir"
}

smoke() {
    local started=$SECONDS bin epoch
    trap 'down' EXIT
    up
    bin=$(cat "$dir/bin")
    log "smoke: waiting until all 5 nodes agree on certified epochs"
    "$ROOT/scripts/testnet-check.sh" --local "$dir" --wait 180
    epoch=$("$bin" probe --url "http://127.0.0.1:$base/epoch" | sed -n 's/.*"epoch":\([0-9]*\).*/\1/p')
    log "smoke: miner simulator for two epochs (from epoch $epoch)"
    "$bin" testnet miners --nodes "$(cut -d= -f2 "$dir/nodes" | paste -sd,)" --rate 5 --miners 30 \
        --duration "$((2 * slot * spe))s" --ledger "$dir/ledger.txt" | grep -v '^RESULT_JSON' >&2
    log "smoke: every acknowledged attestation on every node, and agreement on the epochs they settled in"
    "$ROOT/scripts/testnet-check.sh" --local "$dir" --wait 180 --ledger "$dir/ledger.txt" --min-certified "$((epoch + 2))"
    down
    trap - EXIT
    log "smoke: process testnet passed in $((SECONDS - started)) s"
}

case $cmd in
    up) up ;;
    down) down ;;
    smoke) smoke ;;
    -h|--help|help|"") usage ;;
    *) die "unknown command $cmd (up, down, smoke)" ;;
esac
