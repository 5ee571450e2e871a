#!/usr/bin/env bash
# tests/test_malformed.sh: every damaged file from scripts/make_malformed.py must be refused
# cleanly: exit status 2, exactly one line on stderr naming the file and the problem, no
# sanitizer report, and (for convert) neither the -o target nor a *.tmp.* file left behind. A case
# may also name a text the error must contain (the file to blame within a model directory).
# Valid controls in the same list must succeed (status 0). Uses $DYNQ (default ./dynq), so
# `make test-asan` runs it against the ASan + UBSan build.
cd "$(dirname "$0")/.."
DYNQ=${DYNQ:-./dynq}
PY=/usr/bin/python3
if [ ! -x "$DYNQ" ]; then echo "skip malformed: $DYNQ not built"; exit 0; fi
if [ ! -x "$PY" ]; then echo "skip malformed: $PY missing"; exit 0; fi
export DYNQ_SHARED=${DYNQ_SHARED:-$(cd .. && pwd)/shared}
W=$(mktemp -d /tmp/dynq-malformed.XXXXXX)
trap 'rm -rf "$W"' EXIT
# Sanitizer reports must not be hidden by a clean exit code.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:exitcode=99}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:exitcode=98:print_stacktrace=1}
if ! "$PY" scripts/make_malformed.py --dynq "$DYNQ" --out "$W/cases" > "$W/gen.log" 2>&1; then
    echo "FAIL malformed-generate: $(tail -3 "$W/gen.log" | tr '\n' ' ')"
    exit 1
fi
# Plain build: every command runs under a 2 GiB address-space limit, so an allocation sized by an
# unchecked field of the file fails (exit 4) instead of quietly succeeding. ASan builds reserve
# terabytes of shadow memory and cannot run under a limit.
is_asan=0
nm -a "$DYNQ" 2>/dev/null | grep -q __asan_init && is_asan=1
LIMIT=""
[ "$is_asan" = 0 ] && LIMIT="ulimit -v 2097152;"
n=0 bad=0
while IFS=$'\t' read -r name want kind input tok expect; do
    n=$((n + 1))
    out="$W/cases/out/$name.dynq"
    if [ "$kind" = run ]; then
        (eval "$LIMIT"; exec "$DYNQ" run -m "$input" -p "Once upon" -n 3 --seed 1 -t 1) > "$W/stdout" 2> "$W/stderr" < /dev/null
    else
        if [ -n "$tok" ]; then
            (eval "$LIMIT"; exec "$DYNQ" convert "$input" --tokenizer "$tok" -o "$out") > "$W/stdout" 2> "$W/stderr" < /dev/null
        else
            (eval "$LIMIT"; exec "$DYNQ" convert "$input" -o "$out") > "$W/stdout" 2> "$W/stderr" < /dev/null
        fi
    fi
    rc=$?
    why=""
    if grep -qE 'Sanitizer|runtime error|LeakSanitizer|internal error' "$W/stderr"; then
        why="sanitizer/internal report: $(grep -m1 -E 'ERROR|runtime error|internal error' "$W/stderr")"
    elif [ "$rc" != "$want" ]; then
        why="exit status $rc, want $want: $(head -c 300 "$W/stderr" | tr '\n' ' ')"
    elif [ "$want" = 2 ]; then
        lines=$(wc -l < "$W/stderr")
        # the damaged thing is the tokenizer when one is given and the input is a shared valid file
        blame=$name
        if [ "$lines" != 1 ]; then
            why="$lines lines on stderr, want 1: $(head -c 300 "$W/stderr" | tr '\n' '|')"
        elif ! grep -qF "$blame" "$W/stderr" && ! { [[ $name == *vocab_mismatch* ]] && grep -qF "$tok" "$W/stderr"; }; then
            # (a vocabulary mismatch may be blamed on either of the two files involved)
            why="error does not name $blame: $(cat "$W/stderr")"
        elif [ -n "$expect" ] && ! grep -qF "$expect" "$W/stderr"; then
            why="error does not mention '$expect': $(cat "$W/stderr")"
        elif [ -e "$out" ]; then
            why="output file left behind"
        elif ls "$W/cases/out/" | grep -q '\.tmp\.'; then
            why="temporary file left behind: $(ls "$W/cases/out/" | grep '\.tmp\.' | head -1)"
        fi
    fi
    [ "$kind" = convert ] && rm -f "$out"
    rm -f "$W"/cases/out/*.tmp.* 2>/dev/null
    if [ -n "$why" ]; then
        echo "FAIL malformed-$name: $why"
        bad=$((bad + 1))
    else
        echo "ok malformed-$name"
    fi
done < "$W/cases/cases.tsv"
# Resource limits: a --ctx whose KV cache cannot be allocated must be a clear one-line error
# (status 4), not a crash or an OOM kill. Run under a 1 GiB address-space limit so the test is
# safe on a shared machine (plain build only).
if [ "$is_asan" = 0 ]; then
    good="$W/cases/dynq_valid.dynq"
    (ulimit -v 1048576; exec "$DYNQ" run -m "$good" --ctx 4194304 -p "Once" -n 2 -t 1) > "$W/stdout" 2> "$W/stderr" < /dev/null
    rc=$?
    if [ "$rc" = 4 ] && [ "$(wc -l < "$W/stderr")" = 1 ] && grep -qiE 'context|kv' "$W/stderr"; then
        echo "ok resource-ctx-too-large (status 4: $(cat "$W/stderr"))"
    else
        echo "FAIL resource-ctx-too-large: status $rc, want 4 and one line naming the context: $(head -c 300 "$W/stderr" | tr '\n' '|')"
        bad=$((bad + 1))
    fi
    # A model whose KV cache at the largest --ctx exceeds this machine's RAM (16 layers x 64 KV
    # width = 8 KiB per position): must be refused before allocating (still under a limit, so a
    # missing check fails this test instead of waking the OOM killer).
    mem_kib=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo 2>/dev/null)
    ctx=$(( mem_kib / 8 * 1024 / 1024 + 4096 ))  # positions needed to exceed RAM
    if [ -n "$mem_kib" ] && [ "$ctx" -le 4194304 ]; then
        "$PY" -c "import sys; sys.path.insert(0, 'scripts'); import make_seeds as m
sys.stdout.buffer.write(m.llama2c_bin(dim=64, hidden=64, n_layers=16, n_heads=8, n_kv=8, vocab=512, seq=64))" > "$W/deep.bin"
        "$DYNQ" convert "$W/deep.bin" --tokenizer models/tok512.bin -o "$W/deep.dynq" > /dev/null 2>&1
        (ulimit -v 1048576; exec "$DYNQ" run -m "$W/deep.dynq" --ctx "$ctx" -p "Once" -n 2 -t 1) > "$W/stdout" 2> "$W/stderr" < /dev/null
        rc=$?
        if [ "$rc" = 4 ] && [ "$(wc -l < "$W/stderr")" = 1 ] && grep -qiE 'context|kv' "$W/stderr"; then
            echo "ok resource-ctx-exceeds-ram (--ctx $ctx, status 4: $(cat "$W/stderr"))"
        else
            echo "FAIL resource-ctx-exceeds-ram: --ctx $ctx: status $rc, want 4 and one line: $(head -c 300 "$W/stderr" | tr '\n' '|')"
            bad=$((bad + 1))
        fi
    else
        echo "skip resource-ctx-exceeds-ram: this machine has more RAM than a 4M-token cache of the test model needs"
    fi
else
    echo "skip resource-ctx-too-large: needs an address-space limit, which ASan builds cannot run under"
fi
[ "$n" -ge 40 ] && echo "ok malformed-count ($n cases)" || { echo "FAIL malformed-count: only $n cases"; bad=$((bad + 1)); }
exit $((bad > 0))
