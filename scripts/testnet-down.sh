#!/usr/bin/env bash
# Stop the docker-compose testnet and delete its volumes (the chain: keys, spec, databases).
#
#   scripts/testnet-down.sh [--keep-data] [--logs DIR]
#     --keep-data   stop and remove the containers but keep the volumes (the next
#                   scripts/testnet-up.sh continues the same chain)
#     --logs DIR    save every container's log to DIR/<name>.log first
set -euo pipefail
. "$(dirname "$0")/../testnet/lib.sh"

keep=0 logs=""
while [ $# -gt 0 ]; do
    case $1 in
        --keep-data) keep=1; shift ;;
        --logs) logs=$2; shift 2 ;;
        -h|--help) usage ;;
        *) bad_option "$1" ;;
    esac
done
need_docker "cannot reach docker"

if [ -n "$logs" ]; then
    mkdir -p "$logs"
    node_containers | while read -r name id; do docker logs "$id" >"$logs/$name.log" 2>&1 || true; done
    log "container logs saved in $logs"
fi
docker rm -f -v "$PROJECT-miners" >/dev/null 2>&1 || true
if [ "$keep" = 1 ]; then
    compose down --remove-orphans 2>&1 | sed 's/^/    /' >&2
    log "testnet $PROJECT stopped; volumes kept"
else
    compose down -v --remove-orphans 2>&1 | sed 's/^/    /' >&2
    log "testnet $PROJECT stopped and its volumes deleted"
fi
