#!/usr/bin/env bash
# Build the statically linked `rustchain` binary and the FROM-scratch image around it
# (testnet/Dockerfile), tagged $RUSTCHAIN_IMAGE (default rustchain-node:testnet).
#
#   scripts/testnet-build.sh                 # static release build (cargo), then the image
#   scripts/testnet-build.sh --bin PATH      # use an already built static binary (scripts/test.sh
#                                            # passes the one its test build made)
#
# The binary is built for the host's gnu target with `-C target-feature=+crt-static` (and
# getrandom's syscall backend, so nothing needs /dev/urandom); `ldd` must call it static. It is
# stripped of debug info before it goes into the image. Prints the image size.
set -euo pipefail
. "$(dirname "$0")/../testnet/lib.sh"

bin=""
while [ $# -gt 0 ]; do
    case $1 in
        --bin) bin=$2; shift 2 ;;
        -h|--help) usage ;;
        *) bad_option "$1" ;;
    esac
done

need_docker "cannot build the image"

if [ -z "$bin" ]; then
    host=$(rustc -vV | sed -n 's/^host: //p')
    case $host in
        *-linux-gnu) ;;
        *) die "static builds are set up for *-linux-gnu hosts; this one is $host" ;;
    esac
    log "building a static release binary for $host (cargo build --release --target $host)"
    ( cd "$ROOT" && RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static --cfg getrandom_backend=\"linux_getrandom\"" \
        cargo build --release --locked --target "$host" -p rustchain-cli --bin rustchain )
    bin=${CARGO_TARGET_DIR:-$ROOT/target}/$host/release/rustchain
fi
[ -x "$bin" ] || die "no executable at $bin"
if ldd "$bin" 2>&1 | grep -q '=>'; then
    die "$bin is dynamically linked (ldd lists libraries): a FROM scratch image needs a static one"
fi
log "binary: $bin ($(ldd "$bin" 2>&1 | head -n 1 | sed 's/^[[:space:]]*//'))"

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
if command -v strip >/dev/null 2>&1; then
    strip --strip-debug -o "$ctx/rustchain" "$bin"
else
    log "no strip on PATH: the image gets the binary with its debug info"
    cp "$bin" "$ctx/rustchain"
fi
cp "$ROOT/testnet/Dockerfile" "$ctx/Dockerfile"
# Without the buildx plugin the docker CLI falls back to the classic builder (with a notice);
# say so up front instead of failing when DOCKER_BUILDKIT=1 is set.
if ! docker buildx version >/dev/null 2>&1; then
    export DOCKER_BUILDKIT=0
fi
docker build -q -t "$IMAGE" "$ctx" >/dev/null 2> >(grep -v -i -e 'deprecated' -e 'buildx' -e 'buildkit' -e 'docs.docker.com' -e 'environment-variable' -e '^ *$' >&2)
size=$(docker image inspect -f '{{.Size}}' "$IMAGE")
# What the image's filesystem holds: the files of its (only) layer.
files=$(docker save "$IMAGE" | tar -xO --wildcards '*/layer.tar' | tar -t | tr '\n' ' ')
log "image $IMAGE: $((size / 1024 / 1024)) MiB ($size bytes); files: $files"
