#!/usr/bin/env bash
# tests/test_valgrind.sh: a short generation under valgrind memcheck (single- and multi-threaded)
# and a refused damaged model: 0 errors and 0 leaked bytes (definite, indirect, possible).
cd "$(dirname "$0")/.."
DYNQ=${DYNQ:-./dynq}
if ! command -v valgrind > /dev/null; then echo "skip valgrind: valgrind not installed"; exit 0; fi
if [ ! -x "$DYNQ" ]; then echo "skip valgrind: $DYNQ not built"; exit 0; fi
if "$DYNQ" --version > /dev/null 2>&1 && nm -a "$DYNQ" 2>/dev/null | grep -q __asan_init; then
    echo "skip valgrind: $DYNQ is an AddressSanitizer build (valgrind cannot run it)"; exit 0
fi
W=$(mktemp -d /tmp/dynq-valgrind.XXXXXX)
trap 'rm -rf "$W"' EXIT
if ! "$DYNQ" convert models/stories260K.bin --tokenizer models/tok512.bin -o "$W/s.dynq" > /dev/null 2> "$W/conv.err"; then
    echo "FAIL valgrind-convert: $(cat "$W/conv.err")"; exit 1
fi
# The damaged copy: the last byte's file-size field lies (truncated by one byte).
head -c -1 "$W/s.dynq" > "$W/trunc.dynq"
bad=0
check() {  # name, expected exit status, command...
    local name=$1 want=$2; shift 2
    valgrind --tool=memcheck --leak-check=full --show-leak-kinds=definite,indirect,possible \
        --errors-for-leak-kinds=definite,indirect,possible --error-exitcode=99 --log-file="$W/$name.vg" \
        "$@" > "$W/$name.out" 2> "$W/$name.err" < /dev/null
    local rc=$?
    local errs leaks
    errs=$(grep -oE 'ERROR SUMMARY: [0-9]+' "$W/$name.vg" | grep -oE '[0-9]+$')
    leaks=$(grep -E '(definitely|indirectly|possibly) lost:' "$W/$name.vg" | grep -vE 'lost: 0 bytes' | head -1)
    if [ "$rc" = 99 ] || [ "${errs:-1}" != 0 ] || [ -n "$leaks" ]; then
        echo "FAIL valgrind-$name: ${errs:-?} errors ${leaks:+, $leaks}: $(grep -m3 -E 'Invalid|uninitialised|lost' "$W/$name.vg" | tr '\n' ' ')"
        bad=$((bad + 1))
    elif [ "$rc" != "$want" ]; then
        echo "FAIL valgrind-$name: exit status $rc, want $want: $(head -c 200 "$W/$name.err")"
        bad=$((bad + 1))
    else
        echo "ok valgrind-$name (0 errors, 0 bytes lost)"
    fi
}
check run-1thread 0 "$DYNQ" run -m "$W/s.dynq" -p "Once upon a time" -n 24 --seed 42 -t 1
check run-2threads 0 "$DYNQ" run -m "$W/s.dynq" -p "Once upon a time" -n 8 --seed 42 -t 2
check truncated-model 2 "$DYNQ" run -m "$W/trunc.dynq" -p "Once" -n 4 -t 1
check convert 0 "$DYNQ" convert models/stories260K.bin --tokenizer models/tok512.bin -o "$W/s2.dynq"
exit $((bad > 0))
