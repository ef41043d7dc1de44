#!/usr/bin/env bash
# Runs each cargo-fuzz target of fuzz/ for a bounded time and prints how many inputs each ran.
#
#   scripts/fuzz.sh                  every target, FUZZ_SECONDS (default 60) seconds each
#   scripts/fuzz.sh 300 core_ops     one target for 300 seconds
#   scripts/fuzz.sh --smoke          every target for 25 seconds (CI)
#
# Exits non-zero if any target crashes (a panic, a failed check, a timeout or running out of
# memory); the input that did it is left in fuzz/artifacts/<target>/ and the log in
# fuzz/target/fuzz-logs/<target>.log. Installs cargo-fuzz if it is missing. The toolchain is
# stable: RUSTC_BOOTSTRAP=1 lets it take the -Z flags cargo fuzz passes (see fuzz/README.md).
# Each target starts from its seeds in fuzz/corpus/<target>/ and the inputs earlier runs on
# this machine found (fuzz/target/corpus/<target>/, not committed). One target at a time: the
# machine is shared.
set -euo pipefail

cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-60}"
targets=()
for arg in "$@"; do
    case "$arg" in
        --smoke) seconds=25 ;;
        -h | --help) sed -n '2,14p' "$0"; exit 0 ;;
        '' | *[!0-9]*) targets+=("$arg") ;;
        *) seconds="$arg" ;;
    esac
done
if [ ${#targets[@]} -eq 0 ]; then
    targets=(names http_request core_ops)
fi

if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

export RUSTC_BOOTSTRAP=1
# No sanitizer: the code under test is safe Rust, whose bounds and overflow checks (kept on
# with -a) catch what AddressSanitizer would, at about half its cost.
flags=(--sanitizer none --debug-assertions)

echo "fuzz: building the targets" >&2
cargo fuzz build "${flags[@]}"

logs=fuzz/target/fuzz-logs
mkdir -p "$logs"
failed=()
summary=()
for target in "${targets[@]}"; do
    work="fuzz/target/corpus/$target"
    seeds="fuzz/corpus/$target"
    mkdir -p "$work" "$seeds"
    log="$logs/$target.log"
    echo "fuzz: $target for ${seconds}s (log: $log)" >&2
    status=0
    cargo fuzz run "${flags[@]}" "$target" "$work" "$seeds" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=4096 \
        -print_final_stats=1 >"$log" 2>&1 || status=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    if [ "$status" -ne 0 ]; then
        failed+=("$target")
        tail -n 40 "$log" >&2
        summary+=("$(printf '%-14s CRASHED (exit %s); see %s and fuzz/artifacts/%s/' \
            "$target" "$status" "$log" "$target")")
    else
        summary+=("$(printf '%-14s %10s runs in %ss, %s/s' \
            "$target" "${runs:-?}" "$seconds" "${rate:-?}")")
    fi
done

echo "fuzz: summary"
printf '  %s\n' "${summary[@]}"
if [ ${#failed[@]} -ne 0 ]; then
    echo "fuzz: FAILED: ${failed[*]}" >&2
    exit 1
fi
