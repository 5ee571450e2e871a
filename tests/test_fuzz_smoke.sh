#!/usr/bin/env bash
# tests/test_fuzz_smoke.sh: builds the libFuzzer harnesses (tests/fuzz/, via tests/fuzz/fuzz.mk),
# replays every regression input in tests/regress/<harness>/, then fuzzes each harness for
# FUZZ_SMOKE_SECONDS (default 5) on its generated seeds. One harness at a time.
# Skips (with the reason) when clang-14 or the libFuzzer runtime is missing.
cd "$(dirname "$0")/.."
DYNQ=${DYNQ:-./dynq}
FUZZ_BUILD=${FUZZ_BUILD:-build-fuzz}
SECS=${FUZZ_SMOKE_SECONDS:-5}
export DYNQ_SHARED=${DYNQ_SHARED:-$(cd .. && pwd)/shared}
DYNQ_SHARED=$(cd "$DYNQ_SHARED" 2>/dev/null && pwd || echo "$DYNQ_SHARED")
if [ "${BUILD:-build}" != build ]; then echo "skip fuzz-smoke: runs in the plain suite only (BUILD=$BUILD)"; exit 0; fi
if ! command -v clang-14 > /dev/null; then echo "skip fuzz-smoke: clang-14 not installed"; exit 0; fi
if ! ls /usr/lib/llvm-14/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a > /dev/null 2>&1 &&
   ! ls /usr/lib/llvm-14/lib/clang/*/lib/linux/libclang_rt.fuzzer-aarch64.a > /dev/null 2>&1; then
    echo "skip fuzz-smoke: libFuzzer runtime missing (Debian libclang-rt-14-dev)"; exit 0
fi
if [ ! -x "$DYNQ" ]; then echo "skip fuzz-smoke: $DYNQ not built (needed for the seeds)"; exit 0; fi
W=$(mktemp -d /tmp/dynq-fuzzsmoke.XXXXXX)
trap 'rm -rf "$W"' EXIT
printf 'include Makefile\ninclude tests/fuzz/fuzz.mk\n' > "$W/fuzz-only.mk"
# Use the lead's Makefile if it already includes fuzz.mk, else a wrapper that does.
if grep -q 'tests/fuzz/fuzz.mk' Makefile; then MK=Makefile; else MK="$W/fuzz-only.mk"; fi
if ! make -f "$MK" -j2 FUZZ_BUILD="$FUZZ_BUILD" fuzz-build > "$W/build.log" 2>&1; then
    echo "FAIL fuzz-smoke-build: $(grep -m3 -E 'error' "$W/build.log" | tr '\n' ' ')"; exit 1
fi
echo "ok fuzz-smoke-build"
if ! /usr/bin/python3 scripts/make_seeds.py --dynq "$DYNQ" --out "$W/seeds" > "$W/seeds.log" 2>&1; then
    echo "FAIL fuzz-smoke-seeds: $(tail -2 "$W/seeds.log")"; exit 1
fi
bad=0
export FUZZ_TOKENIZER=$PWD/models/tok512.bin
for bin in "$FUZZ_BUILD"/fuzz_*; do
    h=$(basename "$bin")
    bin=$PWD/$bin
    reg=$PWD/tests/regress/$h
    if [ -d "$reg" ] && [ -n "$(ls -A "$reg" 2>/dev/null)" ]; then
        if "$bin" -runs=0 -rss_limit_mb=2048 "$reg" > "$W/$h.reg" 2>&1; then
            echo "ok fuzz-regress-$h ($(ls "$reg" | wc -l) inputs)"
        else
            echo "FAIL fuzz-regress-$h: $(grep -m2 -E 'ERROR|SUMMARY' "$W/$h.reg" | tr '\n' ' ')"; bad=$((bad + 1))
        fi
    fi
    mkdir -p "$W/corpus/$h" "$W/seeds/$h" "$W/crash"
    if (cd "$W" && "$bin" -max_total_time="$SECS" -rss_limit_mb=2048 -timeout=10 -close_fd_mask=3 -print_final_stats=1 \
            -artifact_prefix="$W/crash/$h-" "$W/corpus/$h" "$W/seeds/$h" > "$W/$h.log" 2>&1); then
        echo "ok fuzz-smoke-$h ($(grep -oE 'DONE[[:space:]]+cov: [0-9]+' "$W/$h.log" | grep -oE '[0-9]+$') edges," \
             "$(grep -oE 'stat::number_of_executed_units: [0-9]+' "$W/$h.log" | grep -oE '[0-9]+$') runs)"
    else
        echo "FAIL fuzz-smoke-$h: $(grep -m2 -E 'ERROR|SUMMARY' "$W/$h.log" | tr '\n' ' ') (input: $(ls "$W/crash" | head -1))"
        mkdir -p "$FUZZ_BUILD/crash" && cp "$W"/crash/* "$FUZZ_BUILD/crash/" 2>/dev/null
        bad=$((bad + 1))
    fi
done
exit $((bad > 0))
