#!/usr/bin/env bash
# Fuzzes the parsers of untrusted bytes with cargo-fuzz (libFuzzer): the NDJSON and CSV
# decoders and the log's frame reader (fuzz/fuzz_targets/). Not run in CI.
#
# Usage: bench/fuzz.sh [target...]   (default: ndjson csv frame)
#   FUZZ_SECONDS   wall-clock seconds per target (default 60)
#   FUZZ_JOBS      libFuzzer processes per target (default 1)
#   FUZZ_SANITIZER address (default) or none; falls back to none if ASan cannot be built
#
# Needs: a C++ compiler (libfuzzer-sys builds libFuzzer), network to crates.io the first
# time (cargo install cargo-fuzz, ~1 minute), and -Z flags, which a stable toolchain
# accepts only with RUSTC_BOOTSTRAP=1 (set here, for the fuzz build alone: it lets the
# stable compiler take nightly options; no nightly toolchain is needed). The fuzz crate has
# its own workspace and target directory (fuzz/target, or $CARGO_TARGET_DIR). A first build
# takes ~5 minutes on the 2-core machine.
#
# Inputs that grow coverage stay in fuzz/corpus/<target>/ (not committed); a crash is written
# to fuzz/artifacts/<target>/ and stops the script. Keep each crash as a plain #[test] with
# its bytes next to the code it broke (see BENCHMARKS.md, "Fuzzing"), then fix the bug.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET="${FUZZ_SECONDS:-60}"
JOBS="${FUZZ_JOBS:-1}"
SANITIZER="${FUZZ_SANITIZER:-address}"
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(ndjson csv frame)

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install --locked cargo-fuzz
fi
export RUSTC_BOOTSTRAP=1

# 16 codegen units: the Arrow crates build in minutes instead of tens of minutes on two
# cores, for slightly slower fuzzing.
BUILD=(--sanitizer "$SANITIZER" --codegen-units 16)
cd fuzz
if ! cargo fuzz build "${BUILD[@]}"; then
    [ "$SANITIZER" != none ] || exit 1
    echo "fuzz.sh: cannot build with --sanitizer $SANITIZER here; fuzzing without one" >&2
    SANITIZER=none
    BUILD=(--sanitizer none --codegen-units 16)
    cargo fuzz build "${BUILD[@]}"
fi
PARALLEL=()
[ "$JOBS" -le 1 ] || PARALLEL=(-jobs="$JOBS" -workers="$JOBS")
FAILED=()
for target in "${TARGETS[@]}"; do
    echo "== fuzz $target for ${SECONDS_PER_TARGET}s (sanitizer: $SANITIZER)"
    mkdir -p "corpus/$target"
    cargo fuzz run "${BUILD[@]}" "$target" "corpus/$target" -- \
        -max_total_time="$SECONDS_PER_TARGET" "${PARALLEL[@]}" \
        -max_len=4096 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        || FAILED+=("$target")
done
if [ ${#FAILED[@]} -gt 0 ]; then
    echo "fuzz.sh: crashes in: ${FAILED[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
