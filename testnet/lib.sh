# Shared by scripts/testnet-*.sh and testnet/scenarios/*.sh (sourced, not run).
#
# The compose testnet is project $PROJECT. Its nodes are reached by name on the compose network
# (http://primary:8099, ...): the check and the miner simulator run in throwaway containers of the
# same image on that network, so nothing needs a published port, a route from the host into the
# network, or a binary on the host. Names, unlike container IPs, survive restarts.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PROJECT=${RUSTCHAIN_TESTNET_PROJECT:-rustchain-testnet}
IMAGE=${RUSTCHAIN_IMAGE:-rustchain-node:testnet}
export RUSTCHAIN_IMAGE=$IMAGE
COMPOSE_FILE=$ROOT/testnet/docker-compose.yml
# Ledgers, logs and results of the scripts.
RUN_DIR=${RUSTCHAIN_TESTNET_RUN_DIR:-$ROOT/.testnet/compose}
# The fixed nodes; extra relays (`relay` service replicas) are found at run time.
FIXED_NODES=(primary relay1 relay2 relay3 archive)

log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
# --help: the running script's header comment (line 2 up to the first line that is not a comment).
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0; }
bad_option() { die "unknown option $1 (see --help)"; }
# Stop with "$1: <why docker cannot be used>" unless a docker engine answers.
need_docker() {
    local reason
    reason=$(docker_unavailable)
    [ -z "$reason" ] || die "$1: $reason"
}

# Why docker cannot be used here (empty when it can): no client, or no engine answering.
docker_unavailable() {
    if ! command -v docker >/dev/null 2>&1; then
        echo "no docker client on PATH"
        return
    fi
    local out
    if ! out=$(timeout 20 docker info --format '{{.ServerVersion}}' 2>&1); then
        echo "the docker engine does not answer: $(printf '%s' "$out" | tail -n 1)"
        return
    fi
    if [ -z "$(compose_cmd)" ]; then
        echo "neither 'docker compose' nor 'docker-compose' is installed"
    fi
}

# `docker compose` (v2 plugin) when present, else `docker-compose` (v1).
compose_cmd() {
    if [ -z "${_COMPOSE:-}" ]; then
        if docker compose version >/dev/null 2>&1; then
            _COMPOSE="docker compose"
        elif command -v docker-compose >/dev/null 2>&1; then
            _COMPOSE="docker-compose"
        else
            return 0
        fi
    fi
    echo "$_COMPOSE"
}

compose() {
    local c
    c=$(compose_cmd)
    [ -n "$c" ] || die "neither 'docker compose' nor 'docker-compose' is installed"
    # shellcheck disable=SC2086
    $c -p "$PROJECT" -f "$COMPOSE_FILE" "$@"
}

# The container of a fixed service (running or not).
container_of() {
    docker ps -aq --filter "label=com.docker.compose.project=$PROJECT" --filter "label=com.docker.compose.service=$1" | head -n 1
}

# Every node container of the testnet, running or not: "<dns name> <container id>" per line.
# A fixed node's name is its service; an extra relay's is its container name.
node_containers() {
    local id service name
    for id in $(docker ps -aq --filter "label=com.docker.compose.project=$PROJECT"); do
        service=$(docker inspect -f '{{index .Config.Labels "com.docker.compose.service"}}' "$id")
        case $service in
            init) continue ;;
            relay) name=$(docker inspect -f '{{.Name}}' "$id"); name=${name#/} ;;
            *) name=$service ;;
        esac
        echo "$name $id"
    done | sort
}

# NAME=URL,... for `rustchain testnet check` and `testnet miners`.
node_urls() {
    node_containers | awk '{printf "%s%s=http://%s:8099", (NR>1?",":""), $1, $1}'
}

# Just the URLs, comma-separated.
node_url_list() {
    node_containers | awk '{printf "%shttp://%s:8099", (NR>1?",":""), $1}'
}

network_name() {
    local primary
    primary=$(container_of primary)
    [ -n "$primary" ] || die "no testnet is running (project $PROJECT): start it with scripts/testnet-up.sh"
    docker inspect -f '{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}' "$primary" | awk '{print $1}'
}

# Run the rustchain binary in a throwaway container on the testnet network, with $RUN_DIR as /run-dir.
tool() {
    mkdir -p "$RUN_DIR"
    docker run --rm --network "$(network_name)" --user "$(id -u):$(id -g)" -v "$RUN_DIR:/run-dir" "$IMAGE" "$@"
}

# GET a path of a node's API from inside its own container (prints the JSON body).
api() {
    local container=$1 path=$2 out
    out=$(docker exec "$container" /rustchain probe --url "http://127.0.0.1:8099$path" --timeout 5s 2>/dev/null) || true
    printf '%s\n' "${out#* }"
}

# The number in a flat JSON field ("epoch":12 -> 12).
json_num() { sed -n "s/.*\"$1\":\([0-9][0-9]*\).*/\1/p" | head -n 1; }
json_str() { sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p" | head -n 1; }

health_of() { docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$1" 2>/dev/null || echo gone; }

# Wait until the container is healthy (its /readyz answers 200), or fail after $2 seconds.
wait_healthy() {
    local container=$1 secs=${2:-120} start=$SECONDS
    while [ "$(health_of "$container")" != healthy ]; do
        if [ $((SECONDS - start)) -ge "$secs" ]; then
            docker logs --tail 30 "$container" >&2 || true
            die "container $container not healthy after ${secs}s (status $(health_of "$container"))"
        fi
        sleep 1
    done
}

wait_all_healthy() {
    local secs=${1:-180} name id
    while read -r name id; do
        wait_healthy "$id" "$secs"
        log "$name is healthy"
    done < <(node_containers)
}

# The current epoch and the slot within it, as the primary (or $1) sees them: "EPOCH SLOT_IN_EPOCH SLOTS_PER_EPOCH SLOT_SECONDS".
epoch_phase() {
    local c=${1:-$(container_of primary)} body
    body=$(api "$c" /epoch)
    local e s n secs
    e=$(json_num epoch <<<"$body"); s=$(json_num slot <<<"$body"); n=$(json_num blocks_per_epoch <<<"$body"); secs=$(json_num slot_seconds <<<"$body")
    [ -n "$e" ] && [ -n "$s" ] && [ -n "$n" ] || return 1
    echo "$e $((s % n)) $n $secs"
}

# Wait until the current epoch (seen from container $2, default the primary) is at least $1.
wait_epoch() {
    local want=$1 c=${2:-$(container_of primary)} secs=${3:-300} start=$SECONDS e
    while :; do
        e=$(epoch_phase "$c" | awk '{print $1}') || true
        [ -n "$e" ] && [ "$e" -ge "$want" ] && return 0
        [ $((SECONDS - start)) -lt "$secs" ] || die "epoch $want not reached after ${secs}s (now ${e:-unknown})"
        sleep 0.5
    done
}

# Wait until we are in slot $1 (or later) of an epoch, and print that epoch.
wait_slot_in_epoch() {
    local want=$1 c=${2:-$(container_of primary)} start=$SECONDS phase e s
    while :; do
        phase=$(epoch_phase "$c") || true
        read -r e s _ _ <<<"$phase"
        if [ -n "${s:-}" ] && [ "$s" -ge "$want" ] && [ "$s" -le $((want + 1)) ]; then
            echo "$e"
            return 0
        fi
        [ $((SECONDS - start)) -lt 120 ] || die "slot $want of an epoch never came"
        sleep 0.3
    done
}

# The miner simulator, in a container named $PROJECT-miners; acknowledged attestations go to
# $RUN_DIR/$1 (a ledger). Stop it with miners_stop.
miners_start() {
    local ledger=$1 rate=${2:-4}
    mkdir -p "$RUN_DIR"
    : >"$RUN_DIR/$ledger"
    docker rm -f -v "$PROJECT-miners" >/dev/null 2>&1 || true
    docker run -d --name "$PROJECT-miners" --network "$(network_name)" --user "$(id -u):$(id -g)" \
        -v "$RUN_DIR:/run-dir" "$IMAGE" testnet miners --nodes "$(node_url_list)" --rate "$rate" --miners 40 \
        --seed "$((RANDOM % 200 + 20))" --ledger "/run-dir/$ledger" >/dev/null
    log "miner simulator started: $rate attestations/s into $(node_containers | wc -l) nodes, ledger $RUN_DIR/$ledger"
}

miners_stop() {
    docker stop -t 40 "$PROJECT-miners" >/dev/null 2>&1 || true
    docker logs "$PROJECT-miners" 2>&1 | grep -v '^miners: [0-9]*s:' | sed 's/^/    /' >&2 || true
    local code
    code=$(docker inspect -f '{{.State.ExitCode}}' "$PROJECT-miners" 2>/dev/null || echo 1)
    docker rm -f -v "$PROJECT-miners" >/dev/null 2>&1 || true
    [ "$code" = 0 ] || die "the miner simulator failed (exit $code)"
}

# Acknowledged attestations in a ledger.
ledger_count() { wc -l <"$RUN_DIR/$1" | tr -d ' '; }

# The final assertion of every scenario: all nodes agree on their certified settlements and every
# acknowledged attestation of the ledger is on every node. Extra args go to `testnet check`.
assert_agree() {
    local ledger=$1
    shift
    tool testnet check --nodes "$(node_urls)" --ledger "/run-dir/$ledger" "$@"
}
