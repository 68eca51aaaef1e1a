#!/usr/bin/env bash
# Mesh benchmark (issue 3): real release `rustchain` nodes on 127.0.0.1, talking libp2p.
#
#   scripts/mesh-bench.sh
#
# Builds release (the binary and cli/examples/mesh_bench.rs), then runs the example, which starts
# the nodes itself, each phase on fresh temp data dirs:
#   1. propagation latency to all of 20 nodes (gossip preset small), ~100 samples, p50/p99
#   2. sustained throughput across 5 nodes (tiny): 20,000 attestations until every node stores all
#   3. resident memory (VmRSS) of 2 nodes (tiny) holding 100,000 attestations
# and prints a table. Loopback only; everything runs under `timeout`; the nodes run in the example's
# own process group, which is killed (and the temp dir removed) on exit, failure or Ctrl-C.
#
# Environment (all optional):
#   MESH_PHASES=latency,throughput,memory   which measurements
#   MESH_LATENCY_NODES=20  MESH_SAMPLES=100  MESH_POLL_MS=2
#   MESH_TP_NODES=5  MESH_TP_COUNT=20000  MESH_TP_CONCURRENCY=16   (in flight per node)
#   MESH_MEM_COUNT=100000
#   MESH_HEARTBEAT_MS=200    gossipsub heartbeat of every node
#   MESH_NODE_LOG=info       log filter of the nodes
#   MESH_KEEP_LOGS=DIR       copy every node's log there
#   MESH_DATA_PARENT=DIR     where the temp data dirs go (default: $TMPDIR or /tmp)
#   MESH_TIMEOUT=2400        seconds for the whole run
#   CARGO_TARGET_DIR         honoured as usual (default: ./target)
#
# Exits non-zero only if something failed to run; a missed target shows as NO in the table.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
export CARGO_TARGET_DIR="$TARGET_DIR"
DATA_PARENT="${MESH_DATA_PARENT:-${TMPDIR:-/tmp}}"

for tool in cargo jq python3 timeout setsid column; do
    command -v "$tool" >/dev/null || { echo "mesh-bench.sh: needs $tool" >&2; exit 2; }
done

WORK="$(mktemp -d "$DATA_PARENT/rustchain-mesh-bench.XXXXXX")"
BENCH_PID=""
TAIL_PID=""
cleanup() {
    # The example and every node it started share one process group (setsid below).
    if [[ -n "$BENCH_PID" ]] && kill -0 "$BENCH_PID" 2>/dev/null; then
        kill -TERM -- "-$BENCH_PID" 2>/dev/null || true
        sleep 2
        kill -KILL -- "-$BENCH_PID" 2>/dev/null || true
    fi
    if [[ -n "$TAIL_PID" ]]; then kill "$TAIL_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

CPU_MODEL="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "== machine: $(nproc) cores, $CPU_MODEL, $(uname -sr), $(free -g | awk '/^Mem:/ {print $2}') GiB"
echo "== load average before the run: $(cut -d' ' -f1-3 /proc/loadavg) (other work on these cores skews every number below)"
echo "== temp dir: $WORK ($(df -T "$WORK" | awk 'NR==2 {print $2}'))"

echo "== building release (rustchain, mesh_bench)"
timeout 1800 cargo build --release -p rustchain-cli --bin rustchain --example mesh_bench

ARGS=(
    --bin "$TARGET_DIR/release/rustchain"
    --work-dir "$WORK"
    --phases "${MESH_PHASES:-latency,throughput,memory}"
    --latency-nodes "${MESH_LATENCY_NODES:-20}"
    --latency-samples "${MESH_SAMPLES:-100}"
    --poll-ms "${MESH_POLL_MS:-2}"
    --tp-nodes "${MESH_TP_NODES:-5}"
    --tp-count "${MESH_TP_COUNT:-20000}"
    --tp-concurrency "${MESH_TP_CONCURRENCY:-16}"
    --mem-count "${MESH_MEM_COUNT:-100000}"
    --heartbeat-ms "${MESH_HEARTBEAT_MS:-200}"
    --node-log "${MESH_NODE_LOG:-info}"
)
[[ -n "${MESH_KEEP_LOGS:-}" ]] && ARGS+=(--keep-logs "$MESH_KEEP_LOGS")

echo "== mesh_bench ${ARGS[*]}"
: >"$WORK/bench.out"
# Own session and process group: `timeout` (the group leader) kills the whole group when it
# expires, and cleanup() kills the group on any exit.
setsid timeout "${MESH_TIMEOUT:-2400}" "$TARGET_DIR/release/examples/mesh_bench" "${ARGS[@]}" >"$WORK/bench.out" 2>&1 &
BENCH_PID=$!
tail -n +1 -f --pid="$BENCH_PID" "$WORK/bench.out" | grep --line-buffered -v '^RESULT_JSON ' &
TAIL_PID=$!
BENCH_RC=0
wait "$BENCH_PID" || BENCH_RC=$?
wait "$TAIL_PID" 2>/dev/null || true
TAIL_PID=""
BENCH_PID=""
RESULT="$(sed -n 's/^RESULT_JSON //p' "$WORK/bench.out" | tail -1)"
[[ -n "$RESULT" ]] || { echo "mesh_bench produced no result (exit $BENCH_RC)" >&2; exit 1; }

# ---------------------------------------------------------------------------------------------
ROWS=()
row() { ROWS+=("$1|$2|$3|$4"); }
j() { jq -r "$1" <<<"$RESULT"; }
check() { # value op target -> yes/NO/n/a
    [[ -z "$1" || "$1" == null ]] && { echo "n/a"; return; }
    python3 -c "import sys; v, t = float(sys.argv[1]), float(sys.argv[3]); print('yes' if (v >= t if sys.argv[2] == '>=' else v < t) else 'NO')" "$1" "$2" "$3"
}
f1() { python3 -c "import sys; print(format(float(sys.argv[1]), sys.argv[2]))" "$1" "${2:-.1f}"; }
cpu_row() { # json path of a cpu object -> "nodes / client / others cores"
    echo "$(f1 "$(j "$1.nodes_cores")" .2f) / $(f1 "$(j "$1.client_cores")" .2f) / $(f1 "$(j "$1.others_cores")" .2f) cores"
}

if [[ "$(j 'has("latency")')" == true ]]; then
    if [[ "$(j '.latency.error // empty')" != "" ]]; then
        row "propagation latency" "failed: $(j .latency.error | head -c 120)" "p99 < 250 ms" "NO"
    else
        n="$(j .latency.nodes)"
        row "propagation to all $n nodes, p50 / p99 ($(j .latency.samples) samples)" "$(f1 "$(j .latency.all_p50_ms)") / $(f1 "$(j .latency.all_p99_ms)") ms" "p99 < 250 ms" "$(check "$(j .latency.all_p99_ms)" '<' 250)"
        row "  max; samples timed out" "$(f1 "$(j .latency.all_max_ms)") ms; $(j .latency.timed_out)" "-" "info"
        row "  to half the nodes, p50 / p99" "$(f1 "$(j .latency.half_p50_ms)") / $(f1 "$(j .latency.half_p99_ms)") ms" "-" "info"
        row "  submit answered (origin stored), p50 / p99" "$(f1 "$(j .latency.ack_p50_ms)") / $(f1 "$(j .latency.ack_p99_ms)") ms" "-" "info"
        row "  polling: every $(j .latency.poll_ms) ms + one GET (median $(f1 "$(j .latency.poll_rtt_p50_ms)" .2f) ms)" "times late by <= ~$(f1 "$(python3 -c "print($(j .latency.poll_ms) + $(j .latency.poll_rtt_p50_ms))")") ms" "-" "info"
        row "  CPU while sampling: nodes / client / others" "$(cpu_row .latency.cpu)" "-" "info"
    fi
fi

if [[ "$(j 'has("throughput")')" == true ]]; then
    if [[ "$(j '.throughput.error // empty')" != "" ]]; then
        row "sustained throughput" "failed: $(j .throughput.error | head -c 120)" ">= 2,000/s" "NO"
    elif [[ "$(j .throughput.converged)" == true ]]; then
        row "throughput, $(j .throughput.nodes) nodes, until every node stores all $(j .throughput.accepted)" "$(f1 "$(j .throughput.throughput)" ',.0f')/s ($(f1 "$(j .throughput.all_stored_s)" .2f) s)" ">= 2,000/s" "$(check "$(j .throughput.throughput)" '>=' 2000)"
    else
        row "throughput, $(j .throughput.nodes) nodes" "not converged: $(j ".throughput.final_per_node | tojson") of $(j .throughput.accepted)" ">= 2,000/s" "NO"
    fi
    if [[ "$(j '.throughput.error // empty')" == "" ]]; then
        row "  accepted at the receiving nodes (submit phase, c=$(j .throughput.concurrency_per_node)/node)" "$(f1 "$(j .throughput.submit_rate)" ',.0f')/s ($(f1 "$(j .throughput.submit_s)" .2f) s)" "-" "info"
        row "  refused / transport errors" "$(j ".throughput.refused | tojson") / $(j .throughput.transport_errors)" "{} / 0" "$([[ "$(j ".throughput.refused | tojson")" == '{}' && "$(j .throughput.transport_errors)" == 0 ]] && echo yes || echo NO)"
        row "  CPU until converged: nodes / client / others" "$(cpu_row .throughput.cpu)" "-" "info"
        row "  gossip rejected; penalties; bans (all nodes)" "$(j '[.throughput.p2p[].gossip.rejected] | add'); $(j '[.throughput.p2p[].log_penalties] | add'); $(j '[.throughput.p2p[].log_bans] | add')" "0; 0; 0" "$([[ "$(j '[.throughput.p2p[] | .gossip.rejected + .log_penalties + .log_bans] | add')" == 0 ]] && echo yes || echo NO)"
        row "  anti-entropy pulls that found missing records" "$(j '[.throughput.p2p[].log_anti_entropy_pulls] | add')" "-" "info"
    fi
fi

if [[ "$(j 'has("memory")')" == true ]]; then
    if [[ "$(j '.memory.error // empty')" != "" ]]; then
        row "memory" "failed: $(j .memory.error | head -c 120)" "< 150 MB" "NO"
    else
        maxrss="$(j '[.memory.rss_mb[] // 1e9] | max')"
        row "VmRSS with $(j .memory.count) stored, node 0 / node 1" "$(j '.memory.rss_mb | map(tostring) | join(" / ")') MB" "< 150 MB" "$( [[ "$(j .memory.converged)" == true ]] && check "$maxrss" '<' 150 || echo "NO (not converged)")"
        row "  peak VmHWM, node 0 / node 1" "$(j '.memory.hwm_mb | map(tostring) | join(" / ")') MB" "-" "info"
        row "  VmRSS before the fill" "$(j '.memory.rss_before_mb | map(tostring) | join(" / ")') MB" "-" "info"
        row "  database file" "$(j '.memory.db_file_mb | map(. * 10 | round / 10 | tostring) | join(" / ")') MB" "-" "info"
        row "  stored per node; fill time" "$(j ".memory.stored_per_node | tojson"); $(f1 "$(j '.memory.fill_s // 0')") s" "-" "info"
    fi
fi

echo
echo "== results ($(nproc) cores, $CPU_MODEL)"
{
    echo "name|measured|target|ok?"
    printf '%s\n' "${ROWS[@]}"
} | column -t -s '|' -o ' | '

exit "$BENCH_RC"
