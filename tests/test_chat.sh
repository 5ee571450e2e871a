#!/usr/bin/env bash
# tests/test_chat.sh: `dynq chat` with stdin not a terminal (one user turn per line): answers on
# stdout only, the KV cache reused across turns (checked against a fresh run and a full rebuild),
# /reset and /system, dropping old turns when the context fills, and quiet ends (EOF, closed
# stdout); at the end, tests/chat_templates.py (template renderings, end-of-turn stops, prefill of
# only the new turn, system prompt kept on drops). The terminal side (Ctrl-C, prompt, colour) is
# tests/test_chat.c. Needs the KJV model.
set -u
DYNQ="${DYNQ:-./dynq}"
DYNQ_SHARED="${DYNQ_SHARED:-../shared}"
DYNQ_TMP="${DYNQ_TMP:-$(mktemp -d)}"
KJV="$DYNQ_SHARED/models/kjv"
M="$DYNQ_TMP/kjv-chatpipe.dynq"
T="$DYNQ_TMP/chatpipe.$$"
mkdir -p "$T"
trap 'rm -rf "$T"' EXIT

check() { if [ "$2" = 1 ]; then echo "ok $1"; else echo "FAIL $1: $3"; fi; }

if [ ! -f "$KJV/kjv.bin" ] || [ ! -f "$KJV/kjv1k-tok.bin" ]; then
    echo "skip chat_pipe: no KJV model in $KJV"
    exit 0
fi
if ! "$DYNQ" chat --help >/dev/null 2>&1; then
    echo "FAIL chat_pipe: '$DYNQ chat --help' fails (chat command not in the dispatcher?)"
    exit 1
fi
if [ ! -s "$M" ] && ! "$DYNQ" convert "$KJV/kjv.bin" --tokenizer "$KJV/kjv1k-tok.bin" -o "$M" >/dev/null 2>&1; then
    echo "FAIL chat_pipe_convert: $DYNQ convert of $KJV/kjv.bin failed"
    exit 1
fi
C=(timeout 60 "$DYNQ" chat -m "$M" --template none --temp 0)

# Each line answered, exit 0 at end of input, nothing on stderr (no banner, no prompt off a terminal).
printf 'In the beginning\nAnd the LORD said\nBlessed are the poor\n' | "${C[@]}" -n 12 >"$T/a" 2>"$T/a.err"
rc=$?
check chat_pipe_answers_each_line "$([ $rc = 0 ] && [ "$(wc -l <"$T/a")" -ge 3 ] && echo 1)" \
    "status $rc, $(wc -l <"$T/a") lines: '$(head -c 200 "$T/a")'"
check chat_pipe_stderr_quiet "$([ ! -s "$T/a.err" ] && echo 1)" "stderr: '$(head -c 200 "$T/a.err")'"
check chat_pipe_no_prompt_marker "$(! grep -q '^> ' "$T/a" && echo 1)" "prompt marker on stdout off a terminal"

# The first turn of a 'none' chat is exactly `dynq run` on the same prompt (greedy).
echo "In the beginning" | "${C[@]}" -n 24 >"$T/c1" 2>/dev/null
timeout 60 "$DYNQ" run -m "$M" -p "In the beginning" -n 24 --temp 0 >"$T/r1" 2>/dev/null
check chat_pipe_first_turn_equals_run "$([ -s "$T/c1" ] && cmp -s "$T/c1" "$T/r1" && echo 1)" \
    "chat '$(head -c 120 "$T/c1")' vs run '$(head -c 120 "$T/r1")'"

# /reset forgets the conversation: the same line gives the same answer again.
printf 'In the beginning\n/reset\nIn the beginning\n' | "${C[@]}" -n 24 >"$T/r" 2>"$T/r.err"
rc=$?
check chat_pipe_reset "$([ $rc = 0 ] && cmp -s "$T/r" <(cat "$T/r1" "$T/r1") && echo 1)" \
    "status $rc; after /reset the answers differ: '$(head -c 300 "$T/r")'"

# Multi-turn: the second answer with the cache kept from turn one equals the second answer after
# the whole cache was rebuilt in one batched prefill (/system away and back).
printf 'In the beginning\nAnd the LORD said\n' | "${C[@]}" -n 24 --system "The first book of Moses" >"$T/m1" 2>/dev/null
printf 'In the beginning\n/system Psalms\n/system The first book of Moses\nAnd the LORD said\n' |
    "${C[@]}" -n 24 --system "The first book of Moses" >"$T/m2" 2>"$T/m2.err"
rc=$?
check chat_pipe_incremental_equals_rebuild "$([ $rc = 0 ] && [ -s "$T/m1" ] && cmp -s "$T/m1" "$T/m2" && echo 1)" \
    "status $rc; incremental '$(tr '\n' '|' <"$T/m1" | head -c 200)' vs rebuilt '$(tr '\n' '|' <"$T/m2" | head -c 200)'"
check chat_pipe_system_notice "$(grep -q 'system prompt set' "$T/m2.err" && echo 1)" "stderr: '$(head -c 200 "$T/m2.err")'"

# The same two checks over an FP16 and a q8_0 KV cache (-ctk/-ctv): the first turn is `run` with
# that cache, and the cache kept across turns gives what a rebuilt one (batched prefill, widened
# per head) gives; an unknown cache type is a usage error.
for kv in f16:kv16 q8_0:kv8; do
    KV=(-ctk "${kv%%:*}" -ctv "${kv%%:*}") tag=${kv#*:}
    echo "In the beginning" | "${C[@]}" -n 24 "${KV[@]}" >"$T/k1" 2>/dev/null
    timeout 60 "$DYNQ" run -m "$M" -p "In the beginning" -n 24 --temp 0 "${KV[@]}" >"$T/kr" 2>/dev/null
    check chat_${tag}_first_turn_equals_run "$([ -s "$T/k1" ] && cmp -s "$T/k1" "$T/kr" && echo 1)" \
        "chat '$(head -c 120 "$T/k1")' vs run '$(head -c 120 "$T/kr")'"
    printf 'In the beginning\nAnd the LORD said\n' | "${C[@]}" -n 24 "${KV[@]}" --system "The first book of Moses" >"$T/k2" 2>/dev/null
    printf 'In the beginning\n/system Psalms\n/system The first book of Moses\nAnd the LORD said\n' |
        "${C[@]}" -n 24 "${KV[@]}" --system "The first book of Moses" >"$T/k3" 2>/dev/null
    check chat_${tag}_incremental_equals_rebuild "$([ -s "$T/k2" ] && cmp -s "$T/k2" "$T/k3" && echo 1)" \
        "incremental '$(tr '\n' '|' <"$T/k2" | head -c 200)' vs rebuilt '$(tr '\n' '|' <"$T/k3" | head -c 200)'"
done
echo hi | "${C[@]}" -n 2 -ctv q4_0 >/dev/null 2>"$T/kb.err"
rc=$?
check chat_kv_type_unknown "$([ $rc = 1 ] && grep -q 'cache-type-v' "$T/kb.err" && echo 1)" "status $rc: '$(head -c 200 "$T/kb.err")'"

# Context full in the middle of an answer (-c 128 -n 60): the oldest turn is dropped with a notice
# on stderr, the answer goes on to its 60 tokens, exit 0.
printf 'In the beginning\nAnd the LORD said\nBlessed are the poor\n/stats\n' | "${C[@]}" -n 60 -c 128 >"$T/f" 2>"$T/f.err"
rc=$?
check chat_pipe_context_full_drops "$([ $rc = 0 ] && grep -q 'dropped the 1 oldest turn' "$T/f.err" && ! grep -q 'answer stopped' "$T/f.err" && echo 1)" \
    "status $rc; stderr: '$(head -c 400 "$T/f.err")'"
check chat_pipe_context_full_answers "$(grep -q 'last answer: 60 tokens' "$T/f.err" && echo 1)" \
    "the last answer was not 60 tokens: '$(grep 'last answer' "$T/f.err")'"
n_notice=$(grep -c 'context full' "$T/f.err")
check chat_pipe_context_full_one_line_each "$([ "$n_notice" -ge 1 ] && [ "$(grep -vc -e 'context full' -e '^context:' -e '^last prompt' -e '^session:' "$T/f.err")" = 0 ] && echo 1)" \
    "unexpected stderr lines: '$(head -c 400 "$T/f.err")'"

# A single answer longer than the context stops with a notice (never a crash or silent cut).
echo "In the beginning" | "${C[@]}" -n 500 -c 48 >"$T/s" 2>"$T/s.err"
rc=$?
check chat_pipe_answer_outgrows_context "$([ $rc = 0 ] && grep -q 'answer stopped' "$T/s.err" && echo 1)" \
    "status $rc; stderr: '$(head -c 200 "$T/s.err")'"

# A turn that cannot fit at all is refused with a notice; the next line is still answered.
printf 'In the beginning God created the heaven and the earth. And the earth was without form, and void\nAmen\n' |
    "${C[@]}" -n 4 -c 16 >"$T/t" 2>"$T/t.err"
rc=$?
check chat_pipe_turn_too_long "$([ $rc = 0 ] && grep -q 'does not fit' "$T/t.err" && [ "$(wc -l <"$T/t")" = 1 ] && echo 1)" \
    "status $rc, $(wc -l <"$T/t") answers (want 1); stderr: '$(head -c 200 "$T/t.err")'"

# End of input at once: exit 0, no output.
"${C[@]}" -n 8 </dev/null >"$T/e" 2>"$T/e.err"
rc=$?
check chat_pipe_empty_stdin "$([ $rc = 0 ] && [ ! -s "$T/e" ] && echo 1)" "status $rc, $(wc -c <"$T/e") bytes out"

# Closed stdout: quiet exit 0.
yes "In the beginning" | head -200 | "${C[@]}" -n 32 2>"$T/h.err" | head -c 20 >"$T/h"
st=("${PIPESTATUS[@]}")
check chat_pipe_closed_stdout "$([ "${st[2]}" = 0 ] && [ "$(wc -c <"$T/h")" = 20 ] && ! grep -qi 'broken pipe' "$T/h.err" && echo 1)" \
    "status ${st[2]}, stderr '$(head -c 200 "$T/h.err")'"

# Binary garbage lines go through byte fallback.
head -c 300 /dev/urandom | "${C[@]}" -n 4 -c 1024 >/dev/null 2>"$T/g.err"
rc=$?
check chat_pipe_binary_stdin "$([ $rc = 0 ] && echo 1)" "status $rc; stderr '$(head -c 200 "$T/g.err")'"

# Commands and usage errors.
printf '/reset\n/help\n/bogus\n/exit\nIn the beginning\n' | "${C[@]}" -n 4 >"$T/x" 2>"$T/x.err"
rc=$?
check chat_pipe_commands "$([ $rc = 0 ] && [ ! -s "$T/x" ] && grep -q '/reset' "$T/x.err" && grep -q 'unknown command /bogus' "$T/x.err" && echo 1)" \
    "status $rc, stdout '$(head -c 100 "$T/x")', stderr '$(head -c 300 "$T/x.err")'"
timeout 60 "$DYNQ" chat -m "$M" --template bogus </dev/null >/dev/null 2>&1
rc1=$?
DYNQ_MODEL= timeout 60 "$DYNQ" chat </dev/null >/dev/null 2>&1
rc2=$?
check chat_usage_status_1 "$([ $rc1 = 1 ] && [ $rc2 = 1 ] && echo 1)" "unknown template: $rc1, no model: $rc2 (want 1, 1)"
timeout 60 "$DYNQ" chat -m "$DYNQ_TMP/no-such-model.dynq" </dev/null >/dev/null 2>&1
rc=$?
check chat_bad_model_status_2 "$([ $rc = 2 ] && echo 1)" "status $rc (want 2)"
# A chat template on a tokenizer without its special tokens: a warning, still answers.
echo "In the beginning" | "${C[@]}" -n 4 --template chatml >"$T/k" 2>"$T/k.err"
rc=$?
check chat_template_without_tokens "$([ $rc = 0 ] && [ -s "$T/k" ] && grep -q 'no <|im_end|> token' "$T/k.err" && echo 1)" \
    "status $rc; stderr '$(head -c 200 "$T/k.err")'"

# --template auto: none for the KJV base model; the family the converter recorded from a
# tokenizer_config.json chat_template otherwise (a copy of kjv-hf with a Zephyr-style template).
printf '/stats\n' | timeout 60 "$DYNQ" chat -m "$M" 2>"$T/au.err" >/dev/null
check chat_template_auto_none "$(grep -q 'template none' "$T/au.err" && echo 1)" "stderr '$(head -c 200 "$T/au.err")'"
if [ -d "$KJV/kjv-hf" ]; then
    mkdir -p "$T/hf"
    cp "$KJV"/kjv-hf/* "$T/hf/" && chmod u+w "$T/hf"/*
    /usr/bin/python3 - "$T/hf/tokenizer_config.json" <<'EOF2'
import json, sys
c = json.load(open(sys.argv[1]))
c["chat_template"] = ("{% for message in messages %}{% if message['role'] == 'user' %}{{ '<|user|>\\n' + message['content'] + eos_token }}"
                     "{% elif message['role'] == 'system' %}{{ '<|system|>\\n' + message['content'] + eos_token }}"
                     "{% else %}{{ '<|assistant|>\\n' + message['content'] + eos_token }}{% endif %}{% endfor %}")
json.dump(c, open(sys.argv[1], "w"))
EOF2
    if timeout 60 "$DYNQ" convert "$T/hf" -o "$T/hf.dynq" >/dev/null 2>&1; then
        printf 'In the beginning\n/stats\n' | timeout 60 "$DYNQ" chat -m "$T/hf.dynq" -n 8 >"$T/az" 2>"$T/az.err"
        rc=$?
        check chat_template_auto_from_config "$([ $rc = 0 ] && grep -q 'template zephyr' "$T/az.err" && echo 1)" \
            "status $rc; stderr '$(head -c 300 "$T/az.err")'"
    else
        echo "FAIL chat_template_auto_from_config: converting a kjv-hf copy failed"
    fi
fi

# Prompt rendering per template family, stops at end-of-turn tokens, prefill of only the new turn,
# and the system prompt kept when turns are dropped: tests/chat_templates.py on tiny crafted models
# (scripts/chat_synth_model.py) and on the KJV model with --template none.
if ! /usr/bin/python3 -c 'import numpy' 2>/dev/null; then
    echo "skip chat_templates: no /usr/bin/python3 with numpy"
elif [ ! -f "$KJV/kjv-hf/tokenizer.json" ]; then
    echo "skip chat_templates: no $KJV/kjv-hf/tokenizer.json"
else
    mkdir -p "$T/tpl"
    timeout 600 /usr/bin/python3 "$(dirname "$0")/chat_templates.py" "$DYNQ" "$T/tpl" "$KJV/kjv-hf" "$M"
    rc=$?
    [ $rc = 0 ] || [ $rc = 3 ] || echo "FAIL chat_templates: tests/chat_templates.py ended with status $rc"
fi
exit 0
