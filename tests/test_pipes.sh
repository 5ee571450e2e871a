#!/usr/bin/env bash
# tests/test_pipes.sh: `dynq run` inside shell pipelines: prompt on stdin, --lines/--json,
# an early-closing reader (head), empty and binary stdin. Every command runs under `timeout`
# so a hang fails the check instead of blocking the suite. Needs the KJV model (skips without it).
set -u
DYNQ="${DYNQ:-./dynq}"
DYNQ_SHARED="${DYNQ_SHARED:-../shared}"
DYNQ_TMP="${DYNQ_TMP:-$(mktemp -d)}"
PY=/usr/bin/python3
KJV="$DYNQ_SHARED/models/kjv"
M="$DYNQ_TMP/kjv-pipes.dynq"
T="$DYNQ_TMP/pipes.$$"
mkdir -p "$T"
trap 'rm -rf "$T"' EXIT

ok() { echo "ok $1"; }
fail() { echo "FAIL $1: $2"; }
check() { if [ "$2" = 1 ]; then ok "$1"; else fail "$1" "$3"; fi; }

if [ ! -f "$KJV/kjv.bin" ] || [ ! -f "$KJV/kjv1k-tok.bin" ]; then
    echo "skip pipes: no KJV model in $KJV"
    exit 0
fi
if [ ! -s "$M" ] && ! "$DYNQ" convert "$KJV/kjv.bin" --tokenizer "$KJV/kjv1k-tok.bin" -o "$M" >/dev/null 2>&1; then
    echo "FAIL pipes_convert: $DYNQ convert of $KJV/kjv.bin failed"
    exit 1
fi
R=(timeout 60 "$DYNQ" run -m "$M")

# Prompt on stdin == the same prompt given with -p (greedy).
echo "In the beginning" | "${R[@]}" -n 16 --temp 0 --quiet >"$T/a" 2>"$T/a.err"
rc=$?
"${R[@]}" -p "In the beginning" -n 16 --temp 0 --quiet >"$T/b" 2>/dev/null
check pipes_stdin_prompt "$([ $rc = 0 ] && [ -s "$T/a" ] && cmp -s "$T/a" "$T/b" && echo 1)" \
    "status $rc; stdin gave '$(head -c 80 "$T/a")', -p gave '$(head -c 80 "$T/b")'"
check pipes_stdout_only_text "$([ ! -s "$T/a.err" ] && echo 1)" "--quiet run wrote to stderr: $(head -c 200 "$T/a.err")"

# --echo: stdout is the prompt text, byte for byte, then the very continuation printed without
# --echo (greedy). The second prompt has a double space and quotes, which a re-decoding of the
# prompt tokens (instead of echoing the text) could alter.
for case in 'pipes_echo_prompt_then_continuation|In the beginning' \
    'pipes_echo_exact_prompt_bytes|And God  said, "Let there be light"'; do
    name=${case%%|*} pr=${case#*|}
    "${R[@]}" -p "$pr" -n 16 --temp 0 --quiet --echo >"$T/ec" 2>"$T/ec.err"
    rc=$?
    "${R[@]}" -p "$pr" -n 16 --temp 0 --quiet >"$T/ne" 2>/dev/null
    { printf '%s' "$pr"; cat "$T/ne"; } >"$T/ew"
    check "$name" \
        "$([ $rc = 0 ] && [ -s "$T/ne" ] && [ "$(wc -c <"$T/ne")" -gt 1 ] && cmp -s "$T/ec" "$T/ew" && echo 1)" \
        "status $rc; --echo gave '$(head -c 120 "$T/ec")', want '$(head -c 120 "$T/ew")' $(head -c 200 "$T/ec.err")"
done

# --lines --json over 3 lines: 3 JSON objects with the expected keys, prompts in order.
printf 'In the beginning\nAnd the LORD said unto Moses\nBlessed are the poor\n' |
    "${R[@]}" --lines --json -n 8 --temp 0 >"$T/j" 2>"$T/j.err"
rc=$?
msg=$($PY - "$T/j" <<'EOF' 2>&1
import json, sys
want = ["In the beginning", "And the LORD said unto Moses", "Blessed are the poor"]
lines = open(sys.argv[1], "rb").read().decode("utf-8").splitlines()
assert len(lines) == 3, f"{len(lines)} lines of output, want 3"
for l, p in zip(lines, want):
    o = json.loads(l)
    assert isinstance(o, dict), "not an object"
    for k in ("prompt", "text", "tokens", "tok_per_s"):
        assert k in o, f"key {k} missing in {l!r}"
    assert o["prompt"] == p, f"prompt {o['prompt']!r}, want {p!r}"
    assert isinstance(o["tokens"], int) and 0 <= o["tokens"] <= 8, f"tokens {o['tokens']!r}"
    assert isinstance(o["text"], str) and "\n" not in o["text"], f"text {o['text']!r}"
    assert isinstance(o["tok_per_s"], (int, float)) and o["tok_per_s"] >= 0, f"tok_per_s {o['tok_per_s']!r}"
EOF
)
check pipes_lines_json "$([ $rc = 0 ] && [ -z "$msg" ] && echo 1)" "status $rc: $msg $(head -c 200 "$T/j.err")"

# --lines: each line is independent (cache reset between): a line's text does not depend on the others.
printf 'Blessed are the poor\n' | "${R[@]}" --lines -n 8 --temp 0 --quiet >"$T/l1" 2>/dev/null
printf 'In the beginning\nBlessed are the poor\n' | "${R[@]}" --lines -n 8 --temp 0 --quiet >"$T/l2" 2>/dev/null
rc=$?
check pipes_lines_independent "$([ $rc = 0 ] && [ "$(wc -l <"$T/l2")" = 2 ] && [ "$(tail -n 1 "$T/l2")" = "$(cat "$T/l1")" ] && echo 1)" \
    "status $rc; alone '$(cat "$T/l1")', second of two '$(tail -n 1 "$T/l2")'"

# An early-closing reader: yes | head -1000 | dynq run --lines | head -1 ends at once with status 0.
start=$(date +%s%N)
yes | head -1000 | "${R[@]}" --lines -n 8 --temp 0 2>"$T/y.err" | head -1 >"$T/y"
st=("${PIPESTATUS[@]}")
ms=$(( ($(date +%s%N) - start) / 1000000 ))
check pipes_head_closes_early "$([ "${st[2]}" = 0 ] && [ "$ms" -lt 10000 ] && [ "$(wc -l <"$T/y")" = 1 ] && echo 1)" \
    "dynq status ${st[2]} after ${ms} ms, $(wc -l <"$T/y") lines (want 0, < 10 s, 1 line)"
check pipes_head_no_broken_pipe "$(! grep -qi 'broken pipe' "$T/y.err" && echo 1)" "stderr: $(head -c 200 "$T/y.err")"

# `dynq run | head -c 20`: quiet exit 0, no "Broken pipe".
start=$(date +%s%N)
"${R[@]}" -p "In the beginning" -n 2000 -c 2048 2>"$T/h.err" | head -c 20 >"$T/h"
st=("${PIPESTATUS[@]}")
ms=$(( ($(date +%s%N) - start) / 1000000 ))
check pipes_closed_stdout "$([ "${st[0]}" = 0 ] && [ "$(wc -c <"$T/h")" = 20 ] && ! grep -qi 'broken pipe' "$T/h.err" && echo 1)" \
    "status ${st[0]} (want 0), $(wc -c <"$T/h") bytes, stderr: $(head -c 200 "$T/h.err")"
check pipes_closed_stdout_fast "$([ "$ms" -lt 5000 ] && echo 1)" "took ${ms} ms for 20 bytes of a 2000-token run (want < 5 s)"

# Empty stdin: usage error, status 1, nothing on stdout.
"${R[@]}" -n 8 </dev/null >"$T/e" 2>"$T/e.err"
rc=$?
check pipes_empty_stdin_status_1 "$([ $rc = 1 ] && [ ! -s "$T/e" ] && [ -s "$T/e.err" ] && echo 1)" \
    "status $rc (want 1), stdout $(wc -c <"$T/e") bytes, stderr '$(head -c 200 "$T/e.err")'"

# Binary garbage on stdin: byte-fallback tokens, a continuation, status 0.
head -c 300 /dev/urandom >"$T/g.bin"
"${R[@]}" -n 8 -c 1024 --temp 0 <"$T/g.bin" >"$T/g" 2>"$T/g.err"
rc=$?
check pipes_binary_stdin "$([ $rc = 0 ] && echo 1)" "status $rc (want 0) on 300 random bytes: $(head -c 200 "$T/g.err")"
$PY -c 'import sys; sys.stdout.buffer.write(bytes(range(256)) * 2)' >"$T/all.bin"
"${R[@]}" -n 8 -c 1024 --temp 0 <"$T/all.bin" >"$T/g2" 2>"$T/g2.err"
rc=$?
check pipes_all_bytes_stdin "$([ $rc = 0 ] && echo 1)" "status $rc (want 0) on bytes 0..255 twice: $(head -c 200 "$T/g2.err")"

# Binary garbage with --lines --json: still one valid JSON object (valid UTF-8) per line.
"${R[@]}" --lines --json -n 4 -c 1024 --temp 0 <"$T/g.bin" >"$T/gj" 2>"$T/gj.err"
rc=$?
n_in=$($PY -c 'import sys; d=open(sys.argv[1],"rb").read(); print(len(d.split(b"\n")) - (1 if d.endswith(b"\n") else 0))' "$T/g.bin")
msg=$($PY - "$T/gj" <<'EOF' 2>&1
import json, sys
for l in open(sys.argv[1], "rb").read().split(b"\n")[:-1]:
    o = json.loads(l.decode("utf-8"))
    assert set(("prompt", "text", "tokens", "tok_per_s")) <= set(o), f"keys {sorted(o)}"
EOF
)
n_out=$(wc -l <"$T/gj")
check pipes_binary_lines_json "$([ $rc = 0 ] && [ -z "$msg" ] && [ "$n_out" -le "$n_in" ] && [ "$n_out" -ge 1 ] && echo 1)" \
    "status $rc, $n_out objects for $n_in input lines: ${msg:0:300} $(head -c 200 "$T/gj.err")"
exit 0
