#!/usr/bin/env bash
# Fuzz every decoder that takes bytes from outside (docs/SECURITY.md, "Fuzzing"). Not part of
# scripts/test.sh: it takes a long time. Two harnesses:
#   1. property-based (proptest): protocol/tests/fuzz_decoders.rs (release build) and
#      node/tests/fuzz_node_decoders.rs (test profile, optimized dependencies); every target runs FUZZ_CASES cases of arbitrary bytes or
#      of mutations of a valid encoding. Run on stable Rust.
#   2. coverage-guided (libFuzzer, `cargo fuzz`, fuzz/): FUZZ_RUNS runs per target, starting from
#      seeds the proptest harness writes (valid encodings). Needs a nightly toolchain and
#      cargo-fuzz; SKIPPED (with a banner) when either is missing.
# Prints a table (decoder, target, cases, panics, seconds) and exits non-zero if any target
# panicked or broke a property.
#
#   FUZZ_CASES=1000000   cases per proptest target (default 1,000,000)
#   FUZZ_RUNS=1000000    runs per libFuzzer target (default FUZZ_CASES)
#   FUZZ_JOBS=2          targets run at once (default: number of CPUs)
#   FUZZ_LIBFUZZER=0     skip the libFuzzer part
#   FUZZ_ONLY=regex      run only the proptest targets whose name matches
set -euo pipefail
cd "$(dirname "$0")/.."

cases=${FUZZ_CASES:-1000000}
runs=${FUZZ_RUNS:-$cases}
jobs=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 2)}
only=${FUZZ_ONLY:-.}
host=$(rustc -vV | sed -n 's/^host: //p')
target_dir=${CARGO_TARGET_DIR:-target}
case $target_dir in /*) ;; *) target_dir=$PWD/$target_dir ;; esac
export CARGO_TARGET_DIR=$target_dir
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The decoder each proptest target exercises (targets not listed are fixed checks).
declare -A decoder=(
    [submission_arbitrary_bytes]="POST /attest/submit (parse_submission)"
    [submission_byte_mutations]="POST /attest/submit (parse_submission)"
    [submission_field_mutations]="POST /attest/submit (parse_submission)"
    [transfer_arbitrary_bytes]="POST /wallet/transfer/signed (parse_transfer)"
    [transfer_byte_mutations]="POST /wallet/transfer/signed (parse_transfer)"
    [transfer_field_mutations]="POST /wallet/transfer/signed (parse_transfer)"
    [transfer_orders_round_trip]="POST /wallet/transfer/signed (parse_transfer)"
    [http_object_arbitrary_bytes]="challenge/enroll/settle-epoch JSON bodies"
    [http_object_mutations]="challenge/enroll/settle-epoch JSON bodies"
    [http_object_field_mutations]="challenge/enroll/settle-epoch JSON bodies"
    [canonical_json_arbitrary_bytes]="canonical JSON (canonical_json::parse)"
    [canonical_json_generated_documents]="canonical JSON (canonical_json::parse)"
    [python_float_repr_round_trips]="canonical JSON floats (py_float_repr)"
    [gossip_arbitrary_bytes]="gossip: InvAttestation, InvEpoch, decode_vote"
    [gossip_mutations]="gossip: InvAttestation, InvEpoch, decode_vote"
    [sync_arbitrary_bytes]="sync Request/Response (wire codec, per-kind answers)"
    [sync_mutations]="sync Request/Response (wire codec, per-kind answers)"
    [record_cbor_arbitrary_bytes]="AttestationRecord::from_cbor"
    [record_cbor_mutations]="AttestationRecord::from_cbor"
    [transfer_record_cbor_arbitrary_bytes]="Transfer/AdminRecord::from_cbor, EpochCertificate"
    [transfer_record_cbor_mutations]="Transfer/AdminRecord::from_cbor, EpochCertificate"
    [settlement_cbor_arbitrary_bytes]="Settlement::from_cbor"
    [settlement_cbor_mutations]="Settlement::from_cbor"
    [chain_spec_arbitrary_text]="chain spec TOML (ChainSpec::from_toml)"
    [chain_spec_mutations]="chain spec TOML (ChainSpec::from_toml)"
    [store_rows_arbitrary_bytes]="database rows (store/mod.rs row types)"
    [store_rows_mutations]="database rows (store/mod.rs row types)"
    [anchor_answer_arbitrary_bytes]="anchor chain answer (parse_transaction)"
    [anchor_answer_mutations]="anchor chain answer (parse_transaction)"
    [anchor_answer_field_mutations]="anchor chain answer (parse_transaction)"
    [anchor_registers]="anchor registers (decode_r4, decode_long)"
)

# --- 1. proptest harness -----------------------------------------------------------------------
export RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static --cfg getrandom_backend=\"linux_getrandom\""
build() { # crate test [--release] -> path of the test binary
    cargo test --locked --target "$host" -p "$1" --test "$2" ${3:-} --no-run --message-format=json 2>"$work/build-$2.log" |
        sed -n 's/.*"executable":"\([^"]*\/deps\/'"$2"'-[^"]*\)".*/\1/p' | tail -1
}
# The protocol harness in release. The node harness in the test profile: what it fuzzes runs in
# dependencies (ciborium, serde_json), which that profile already optimizes (opt-level 2), and a
# release build of the whole node (libp2p, axum, redb) would add a long compile for nothing.
echo "building the fuzz harnesses..."
bins=()
for t in rustchain-protocol:fuzz_decoders:--release rustchain-node:fuzz_node_decoders:; do
    IFS=: read -r crate test profile <<<"$t"
    bin=$(build "$crate" "$test" "$profile") || true
    if [ -z "$bin" ]; then cat "$work/build-$test.log" >&2; echo "build of $test failed" >&2; exit 1; fi
    bins+=("$bin")
done

: >"$work/jobs"
for i in "${!bins[@]}"; do # one line per test: key (unique: two harnesses share test names), binary, name
    "${bins[$i]}" --list --format terse | sed -n 's/: test$//p' | { grep -E -- "$only" || true; } | while read -r name; do
        echo "$i-$name ${bins[$i]} $name" >>"$work/jobs"
    done
done

run_one() { # key bin name -> writes $work/result.<key>: name status panics seconds
    local key=$1 bin=$2 name=$3 start end status panics
    start=$(date +%s.%N)
    if FUZZ_CASES=$cases "$bin" --exact "$name" --test-threads 1 >"$work/out.$key" 2>&1; then status=ok; else status=FAILED; fi
    end=$(date +%s.%N)
    panics=$(grep -c 'panicked' "$work/out.$key" || true)
    echo "$name $status $panics $(awk "BEGIN{print $end - $start}")" >"$work/result.$key"
    echo "  $name: $status"
}
export -f run_one
export work cases
echo "running $(wc -l <"$work/jobs") proptest targets, $cases cases each, $jobs at a time..."
start_all=$(date +%s)
xargs -P "$jobs" -L 1 bash -c 'run_one "$0" "$1" "$2"' <"$work/jobs"
proptest_seconds=$(($(date +%s) - start_all))

failed=0
printf '\n%-48s %-52s %10s %7s %9s\n' decoder target cases panics seconds
while read -r key _ name; do
    read -r _ status panics secs <"$work/result.$key"
    n=$cases
    [ -n "${decoder[$name]:-}" ] || n="(fixed)"
    if [ "$status" != ok ]; then
        failed=1
        [ "$panics" -gt 0 ] || panics="0 (property failed)"
    fi
    printf '%-48s %-52s %10s %7s %9.1f\n' "${decoder[$name]:-fixed check}" "$name" "$n" "$panics" "$secs"
done <"$work/jobs"
echo "proptest harness: $proptest_seconds s wall clock"
while read -r key _ name; do
    read -r _ status _ <"$work/result.$key"
    if [ "$status" != ok ]; then echo; echo "=== $name FAILED ==="; tail -40 "$work/out.$key"; fi
done <"$work/jobs"

# --- 2. libFuzzer (coverage-guided) ------------------------------------------------------------
if [ "${FUZZ_LIBFUZZER:-1}" = 0 ]; then
    echo "libFuzzer part skipped (FUZZ_LIBFUZZER=0)"
elif ! cargo fuzz --version >/dev/null 2>&1 || ! cargo +nightly --version >/dev/null 2>&1; then
    echo
    echo "=== libFuzzer part SKIPPED: needs a nightly toolchain and cargo-fuzz (cargo install cargo-fuzz) ==="
else
    fuzz_dir=$target_dir/libfuzzer
    seeds=$work/seeds
    # Valid encodings to start from: the proptest harness writes its seeds.
    FUZZ_SEED_DIR=$seeds "${bins[0]}" --exact write_libfuzzer_seeds >/dev/null
    echo "building the libFuzzer targets (nightly, sanitizer flags)..."
    (cd fuzz && env -u RUSTFLAGS CARGO_TARGET_DIR="$fuzz_dir" cargo +nightly fuzz build -O >"$work/fuzz-build.log" 2>&1) ||
        { cat "$work/fuzz-build.log" >&2; exit 1; }
    printf '\n%-16s %10s %8s %9s %9s\n' libfuzzer runs crashes edges seconds
    start_all=$(date +%s)
    for t in $(cd fuzz && cargo +nightly fuzz list); do
        corpus=$work/corpus/$t
        mkdir -p "$corpus"
        cp "$seeds/$t"/* "$corpus/" 2>/dev/null || true
        start=$(date +%s)
        crashes=0
        (cd fuzz && env -u RUSTFLAGS CARGO_TARGET_DIR="$fuzz_dir" cargo +nightly fuzz run -O "$t" "$corpus" -- \
            -runs="$runs" -max_len=16384 -rss_limit_mb=4096 -print_final_stats=1 >"$work/fuzz-$t.log" 2>&1) || crashes=1
        edges=$(sed -n 's/^#[0-9]*.*DONE *cov: \([0-9]*\).*/\1/p' "$work/fuzz-$t.log" | tail -1)
        done_runs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$work/fuzz-$t.log")
        printf '%-16s %10s %8s %9s %9s\n' "$t" "${done_runs:-?}" "$crashes" "${edges:-?}" "$(($(date +%s) - start))"
        if [ "$crashes" != 0 ]; then failed=1; tail -60 "$work/fuzz-$t.log"; fi
    done
    echo "libFuzzer: $(($(date +%s) - start_all)) s wall clock"
fi

if [ "$failed" != 0 ]; then
    echo "FUZZING FOUND FAILURES (see above)" >&2
    exit 1
fi
echo "no panics, no broken properties"
