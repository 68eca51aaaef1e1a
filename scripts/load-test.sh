#!/usr/bin/env bash
# Production load test (issue 6): requests/s and latency percentiles of GET /health, GET /epoch,
# GET /wallet/balance and durable POST /attest/submit, against a release node on loopback with
# rate limiting off. Uses wrk (installed from Debian's packages if missing).
#
#   scripts/load-test.sh
#
# Environment (all optional):
#   LOAD_DURATION=10s        length of each wrk run
#   LOAD_CONNECTIONS=64      open connections
#   LOAD_THREADS=1           wrk threads (the node gets the other cores)
#   LOAD_PRELOAD=2000        attestations stored before the read runs (distinct miners)
#   LOAD_SUBMIT_BODIES=60000 signed bodies prepared for the submit run
#   LOAD_DATA_PARENT=DIR     where the node's temp data dir goes (default $TMPDIR or /tmp)
#   CARGO_TARGET_DIR         honoured as usual (default ./target)
#
# Prints one line per endpoint: requests/s, non-2xx, latency p50/p90/p99/p99.9/max. For the submit
# run, "stored/s" is what the node's own /api/stats counted as stored during the run.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
export CARGO_TARGET_DIR="$TARGET_DIR"
DURATION="${LOAD_DURATION:-10s}"
CONNS="${LOAD_CONNECTIONS:-64}"
THREADS="${LOAD_THREADS:-1}"
PRELOAD="${LOAD_PRELOAD:-2000}"
SUBMIT_BODIES="${LOAD_SUBMIT_BODIES:-60000}"
DATA_PARENT="${LOAD_DATA_PARENT:-${TMPDIR:-/tmp}}"

if ! command -v wrk >/dev/null; then
    echo "== installing wrk (Debian package)"
    SUDO=""; [[ "$(id -u)" != 0 ]] && SUDO="sudo"
    $SUDO apt-get install -y wrk >/dev/null 2>&1 || { $SUDO apt-get update >/dev/null && $SUDO apt-get install -y wrk >/dev/null; }
fi
for tool in cargo curl jq python3 wrk; do
    command -v "$tool" >/dev/null || { echo "load-test.sh: needs $tool" >&2; exit 2; }
done

WORK="$(mktemp -d "$DATA_PARENT/rustchain-load.XXXXXX")"
NODE_PID=""
cleanup() {
    if [[ -n "$NODE_PID" ]] && kill -0 "$NODE_PID" 2>/dev/null; then
        kill -TERM "$NODE_PID" 2>/dev/null || true
        wait "$NODE_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(uname -sr)"
echo "== building release (rustchain, signed_bodies)"
cargo build --release -q -p rustchain-cli --bin rustchain --example signed_bodies
NODE_BIN="$TARGET_DIR/release/rustchain"
BODIES_BIN="$TARGET_DIR/release/examples/signed_bodies"

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PORT="$(free_port)"; MPORT="$(free_port)"
URL="http://127.0.0.1:$PORT"
"$NODE_BIN" node --spec devnet --data-dir "$WORK/data" --http-addr "127.0.0.1:$PORT" --metrics-addr "127.0.0.1:$MPORT" \
    --rate-limit-per-minute 0 --admin-rate-limit-per-minute 0 --max-connections-per-ip "$((CONNS + 16))" \
    --log-level warn >"$WORK/node.log" 2>&1 &
NODE_PID=$!
for _ in $(seq 1 300); do
    curl -fsS "$URL/livez" >/dev/null 2>&1 && break
    kill -0 "$NODE_PID" 2>/dev/null || { cat "$WORK/node.log" >&2; exit 1; }
    sleep 0.1
done

LUA="$ROOT/scripts/load-test.lua"
run_wrk() { # name url [lua args...]
    local name="$1" url="$2"; shift 2
    local out
    out="$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -s "$LUA" "$url" ${1:+--} "$@" | sed -n 's/^RESULT //p')"
    echo "$out" >"$WORK/$name.json"
}
stored() { curl -fsS "$URL/api/stats" | jq .attestations; }

echo "== preloading $PRELOAD attestations (distinct miners)"
"$BODIES_BIN" "$URL" "$PRELOAD" "$WORK/preload.jsonl" 1
while IFS= read -r body; do
    curl -fsS -o /dev/null -H 'content-type: application/json' -d "$body" "$URL/attest/submit"
done <"$WORK/preload.jsonl"
WALLET="$(head -1 "$WORK/preload.jsonl" | jq -r .miner)"
echo "   stored: $(stored); enrolled now: $(curl -fsS "$URL/epoch" | jq .enrolled_miners)"

echo "== preparing $SUBMIT_BODIES signed submit bodies"
"$BODIES_BIN" "$URL" "$SUBMIT_BODIES" "$WORK/submit.jsonl" 2

echo "== wrk: $THREADS thread(s), $CONNS connections, $DURATION per endpoint"
run_wrk health "$URL/health"
run_wrk epoch "$URL/epoch"
run_wrk balance "$URL/wallet/balance?miner_id=$WALLET"
BEFORE="$(stored)"
run_wrk submit "$URL/attest/submit" "$WORK/submit.jsonl" "$THREADS"
AFTER="$(stored)"

echo
printf '%-32s %12s %8s %9s %9s %9s %9s %9s\n' endpoint "req/s" non2xx "p50 ms" "p90 ms" "p99 ms" "p99.9 ms" "max ms"
for name in health epoch balance submit; do
    j="$(cat "$WORK/$name.json")"
    label="GET /$name"
    [[ "$name" == balance ]] && label="GET /wallet/balance"
    [[ "$name" == submit ]] && label="POST /attest/submit"
    printf '%-32s %12s %8s %9s %9s %9s %9s %9s\n' "$label" "$(jq -r '.rps|floor' <<<"$j")" "$(jq -r .non2xx <<<"$j")" \
        "$(jq -r .p50_ms <<<"$j")" "$(jq -r .p90_ms <<<"$j")" "$(jq -r .p99_ms <<<"$j")" "$(jq -r .p999_ms <<<"$j")" "$(jq -r .max_ms <<<"$j")"
done
SECS="$(jq -r .seconds "$WORK/submit.json")"
echo "POST /attest/submit stored/s (node's own count): $(python3 -c "print(round(($AFTER - $BEFORE) / $SECS))") ($((AFTER - BEFORE)) stored in ${SECS}s; $SUBMIT_BODIES bodies prepared)"
kill -TERM "$NODE_PID"; wait "$NODE_PID" || { echo "node exited non-zero on SIGTERM" >&2; exit 1; }
NODE_PID=""
