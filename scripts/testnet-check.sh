#!/usr/bin/env bash
# Print one row per node of a testnet (peers, epoch, last certified epoch, settlement hash, sync
# status) and exit non-zero when the nodes disagree (`rustchain testnet check`).
#
#   scripts/testnet-check.sh [--local [DIR]] [check options]
#     (default)       the docker-compose testnet; the check runs in a container on its network
#     --local [DIR]   the process testnet of scripts/local-testnet.sh (default .testnet/local)
#   check options, passed on:
#     --wait SECS     keep looking until they agree, up to SECS (default: look once)
#     --min-certified EPOCH, --max-lag EPOCHS, --compare N, --ledger FILE
#                     (see `rustchain testnet check --help`)
set -euo pipefail
. "$(dirname "$0")/../testnet/lib.sh"

mode=compose dir=$ROOT/.testnet/local args=()
while [ $# -gt 0 ]; do
    case $1 in
        --local) mode=local; if [ $# -gt 1 ] && [ "${2#--}" = "$2" ]; then dir=$2; shift; fi; shift ;;
        --wait) args+=(--wait "${2%s}s"); shift 2 ;;
        --ledger) ledger=$2; shift 2 ;;
        -h|--help) usage ;;
        *) args+=("$1"); shift ;;
    esac
done

if [ "$mode" = local ]; then
    [ -f "$dir/nodes" ] || die "no process testnet in $dir (start one with scripts/local-testnet.sh up)"
    bin=$(cat "$dir/bin")
    exec "$bin" testnet check --nodes "$(paste -sd, "$dir/nodes")" ${ledger:+--ledger "$ledger"} "${args[@]}"
fi

need_docker "cannot check the docker testnet"
if [ -n "${ledger:-}" ]; then
    mkdir -p "$RUN_DIR"
    cp "$ledger" "$RUN_DIR/check-ledger.txt"
    args+=(--ledger /run-dir/check-ledger.txt)
fi
tool testnet check --nodes "$(node_urls)" "${args[@]}"
