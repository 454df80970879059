#!/usr/bin/env bash
# Builds every fuzz target and runs each a short while (FUZZ_SECONDS, 20 by default) from its
# committed seeds: exits non-zero if a target does not build or any input breaks an
# invariant (the failing input is left in fuzz/artifacts/<target>/). For CI; FUZZING.md says
# how to run them longer.
#
# Needs cargo-fuzz (cargo install cargo-fuzz --locked) and runs on stable Rust through
# RUSTC_BOOTSTRAP=1. Everything is built in fuzz/target, apart from the main workspace's
# target directory; the corpus grows in fuzz/corpus/<target>/ (not committed). One fuzzer
# process at a time (libFuzzer's default; -jobs/-workers would fork a child).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-20}"
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="$PWD/fuzz/target"
# -O: optimised, with the debug assertions and overflow checks that fuzz/Cargo.toml turns on.
# No sanitizer: the code fuzzed is safe Rust (unsafe_code is forbidden), so a short run gets
# further without one.
flags=(-O --sanitizer none)

targets=$(cargo fuzz list)
echo "fuzz targets: $(echo "$targets" | tr '\n' ' ')"
nice -n 19 cargo fuzz build "${flags[@]}"

status=0
for t in $targets; do
    mkdir -p "fuzz/corpus/$t"
    case "$t" in
        report | message_headers | smtp_data | header_fields) max_len=65536 ;;
        *) max_len=4096 ;;
    esac
    echo "==> $t (${seconds}s, max_len $max_len)"
    if ! nice -n 19 cargo fuzz run "${flags[@]}" "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -- \
        -max_total_time="$seconds" -max_len="$max_len" -timeout=10 -rss_limit_mb=2048 -seed=1 \
        -print_final_stats=1 2>"fuzz/target/$t.log"; then
        tail -n 40 "fuzz/target/$t.log"
        echo "FAILED: $t (input in fuzz/artifacts/$t/)"
        status=1
    else
        grep -E '^(#[0-9]+[[:space:]]+DONE|stat::number_of_executed_units|stat::average_exec_per_sec)' \
            "fuzz/target/$t.log" || true
    fi
done
if [ "$status" = 0 ]; then
    echo "fuzz: all targets ran without a failure"
fi
exit "$status"
