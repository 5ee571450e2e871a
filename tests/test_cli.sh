#!/usr/bin/env bash
# tests/test_cli.sh: the command line's contract: exit codes, quality gates, provenance,
# thread-count and ISA independence of a whole generation, help texts.
set -u
cd "$(dirname "$0")/.."
DYNQ="${DYNQ:-./dynq}"
SH="${DYNQ_SHARED:-../shared}"
T=$(mktemp -d "${DYNQ_TMP:-/tmp}/cli.XXXXXX")
trap 'rm -rf "$T"' EXIT
ok() { echo "ok $1"; }
bad() { echo "FAIL $1: $2"; }
expect_status() {  # NAME WANT cmd...
    local name=$1 want=$2; shift 2
    "$@" > "$T/out" 2> "$T/err"
    local rc=$?
    if [ "$rc" -eq "$want" ]; then ok "$name"; else bad "$name" "exit $rc, wanted $want; stderr: $(head -c 300 "$T/err")"; fi
}

# The shipped model works without ../shared.
"$DYNQ" convert models/stories260K.bin --tokenizer models/tok512.bin -o "$T/s8.dynq" 2>/dev/null \
    && "$DYNQ" convert models/stories260K.bin --tokenizer models/tok512.bin --type f32 -o "$T/sf.dynq" 2>/dev/null \
    || { bad convert_shipped "conversion failed"; exit 1; }
ok convert_shipped

expect_status version 0 "$DYNQ" --version
grep -q '^dynq [0-9]' "$T/out" && ok version_text || bad version_text "$(cat "$T/out")"
# Help: every command listed by `dynq --help` answers `dynq help CMD` and `dynq CMD --help`
# with exit 0, the same text on stdout only, a "usage: dynq CMD" line and an example section
# ("example:" or "examples:") holding at least one line that runs `dynq CMD`.
has_usage_and_example() {  # FILE CMD
    grep -q "^usage: dynq $2\b" "$1" &&
        awk -v c="dynq $2" '/^examples?:$/ {ex = 1; next} ex && index($0, c) {found = 1} END {exit !found}' "$1"
}
"$DYNQ" --help > "$T/h" 2> "$T/h.err"
rc=$?
cmds=$(awk '/^commands:$/ {on = 1; next} on && NF == 0 {on = 0} on {print $1}' "$T/h")
[ $rc -eq 0 ] && [ ! -s "$T/h.err" ] && [ "$(wc -w <<<"$cmds")" -ge 8 ] && grep -q '^usage: dynq ' "$T/h" \
    && awk '/^examples?:$/ {ex = 1; next} ex && /dynq /' "$T/h" | grep -q . \
    && ok help_top_level || bad help_top_level "exit $rc, commands '$(tr '\n' ' ' <<<"$cmds")'"
for c in $cmds; do
    "$DYNQ" help "$c" > "$T/h1" 2> "$T/h1.err"; rc1=$?
    "$DYNQ" "$c" --help > "$T/h2" 2> "$T/h2.err"; rc2=$?
    if [ $rc1 -ne 0 ] || [ $rc2 -ne 0 ]; then bad "help_$c" "exit $rc1 (help $c) / $rc2 ($c --help)"
    elif [ -s "$T/h1.err" ] || [ -s "$T/h2.err" ]; then bad "help_$c" "stderr: $(cat "$T/h1.err" "$T/h2.err" | head -c 200)"
    elif ! cmp -s "$T/h1" "$T/h2"; then bad "help_$c" "'dynq help $c' and 'dynq $c --help' differ"
    elif ! has_usage_and_example "$T/h1" "$c"; then bad "help_$c" "no 'usage: dynq $c' line or no example running 'dynq $c'"
    else ok "help_$c"; fi
done
expect_status help_unknown_command 1 "$DYNQ" help frobnicate
expect_status no_args 1 "$DYNQ"
expect_status unknown_command 1 "$DYNQ" frobnicate
expect_status unknown_flag 1 "$DYNQ" run -m "$T/s8.dynq" -p hi --bogus
expect_status bad_number 1 "$DYNQ" run -m "$T/s8.dynq" -p hi -n abc
expect_status missing_model 2 "$DYNQ" run -m "$T/nope.dynq" -p hi
[ "$(wc -l < "$T/err")" -eq 1 ] && grep -q "nope.dynq" "$T/err" && ok missing_model_one_line || bad missing_model_one_line "$(cat "$T/err")"
expect_status ctx_overflow 3 "$DYNQ" run -m "$T/s8.dynq" -p "Once upon a time" -n 600 --quiet
expect_status ctx_flag_overflow 3 "$DYNQ" run -m "$T/s8.dynq" -c 8 -p "Once upon a time there was a girl" -n 4 --quiet
[ ! -s "$T/out" ] && ok ctx_overflow_no_output || bad ctx_overflow_no_output "stdout not empty"
# -c above the model's context (512 for stories260K): run and logits go on with one warning line
# on stderr (even with --quiet), as llama.cpp does, and give what they give without -c (these
# positions are below 512); perplexity refuses with exit 3, one stderr line and no output.
# -c 0 means the model's context (llama.cpp's -c 0), silently.
for i in $(seq 1 40); do echo "Once upon a time there was a little girl named Lily. She loved to play in the park."; done > "$T/text.txt"
for c in run logits perplexity; do
    case $c in
        run) args=(-p "Once upon a time" -n 4 --temp 0 --quiet); res="$T/out" ;;
        logits) args=(--ids "1 2 3" -o "$T/l.f32"); res="$T/l.f32" ;;
        perplexity) args=(-f "$T/text.txt" --chunks 1); res="$T/out" ;;
    esac
    "$DYNQ" $c -m "$T/s8.dynq" -c 0 "${args[@]}" > "$T/out" 2> "$T/err0" && cp "$res" "$T/res0"
    rc0=$?
    "$DYNQ" $c -m "$T/s8.dynq" -c 512 "${args[@]}" > "$T/out" 2> "$T/err" && cp "$res" "$T/res512"
    rc=$?
    [ $rc0 -eq 0 ] && [ $rc -eq 0 ] && [ -s "$T/res0" ] && [ ! -s "$T/err" ] && { [ $c = perplexity ] || [ ! -s "$T/err0" ]; } \
        && { [ $c = perplexity ] || cmp -s "$T/res0" "$T/res512"; } \
        && ok "ctx_zero_is_model_ctx_$c" || bad "ctx_zero_is_model_ctx_$c" "exit $rc0/$rc: $(head -c 200 "$T/err0" "$T/err")"
    rm -f "$T/l.f32" "$T/out"
    "$DYNQ" $c -m "$T/s8.dynq" -c 513 "${args[@]}" > "$T/out" 2> "$T/err"
    rc=$?
    if [ $c = perplexity ]; then
        [ $rc -eq 3 ] && [ ! -s "$T/out" ] && [ "$(wc -l < "$T/err")" -eq 1 ] && grep -q "512" "$T/err" \
            && ok "ctx_above_model_$c" || bad "ctx_above_model_$c" "exit $rc (want 3), stdout $(wc -c < "$T/out") bytes, stderr: $(head -c 200 "$T/err")"
    else
        [ $rc -eq 0 ] && cmp -s "$T/res0" "$res" && [ "$(wc -l < "$T/err")" -eq 1 ] && grep -q "warning.*512" "$T/err" \
            && ok "ctx_above_model_$c" || bad "ctx_above_model_$c" "exit $rc (want 0, same output, one warning), stderr: $(head -c 200 "$T/err")"
    fi
    rm -f "$T/l.f32" "$T/res0" "$T/res512"
done
# chat too: one warning line, the same answer as without -c
for c in 0 513; do
    echo "Once upon a time" | "$DYNQ" chat -m "$T/s8.dynq" -c $c --template none --temp 0 -n 6 > "$T/chat$c" 2> "$T/err$c"
    echo $? > "$T/rc$c"
done
[ "$(cat "$T/rc0")" = 0 ] && [ "$(cat "$T/rc513")" = 0 ] && [ -s "$T/chat0" ] && cmp -s "$T/chat0" "$T/chat513" \
    && [ ! -s "$T/err0" ] && [ "$(wc -l < "$T/err513")" -eq 1 ] && grep -q "warning.*512" "$T/err513" \
    && ok ctx_above_model_chat || bad ctx_above_model_chat "exit $(cat "$T/rc0")/$(cat "$T/rc513"), stderr: $(head -c 200 "$T/err0" "$T/err513")"
DYNQ_MODEL="$T/s8.dynq" "$DYNQ" run -p "Once" -n 5 --temp 0 --quiet > "$T/o1" 2>/dev/null
"$DYNQ" run -m "$T/s8.dynq" -p "Once" -n 5 --temp 0 --quiet > "$T/o2" 2>/dev/null
[ -s "$T/o1" ] && cmp -s "$T/o1" "$T/o2" && ok env_model || bad env_model "DYNQ_MODEL run differs"

# A KV cache that cannot fit in memory is refused up front (exit 4, one stderr line: the warning
# about -c above the model's context comes only after the allocation), not OOM-killed:
# 8 layers x 512 wide = 32 KiB of cache per token, 4M tokens = 128 GiB.
if /usr/bin/python3 -c 'import numpy' 2>/dev/null; then
    /usr/bin/python3 scripts/random_model.py --dim 512 --hidden 64 --layers 8 --heads 8 --kv-heads 8 --vocab 512 --seq 64 \
        -o "$T/wide.bin" > /dev/null 2>&1 && "$DYNQ" convert "$T/wide.bin" --tokenizer models/tok512.bin -o "$T/wide.dynq" 2>/dev/null
    expect_status kv_cache_too_big 4 "$DYNQ" run -m "$T/wide.dynq" -c 4000000 -p "Once" -n 4 --quiet
    grep -q "GiB" "$T/err" && [ "$(wc -l < "$T/err")" -eq 1 ] && [ ! -s "$T/out" ] && ok kv_cache_too_big_message || bad kv_cache_too_big_message "$(cat "$T/err")"
else
    echo "skip kv_cache_too_big: /usr/bin/python3 with numpy missing"
fi

# Provenance: info shows the source's SHA-256 and the settings.
"$DYNQ" info "$T/s8.dynq" > "$T/info" 2>&1
sum=$(sha256sum models/stories260K.bin | cut -d' ' -f1)
grep -q "$sum" "$T/info" && ok info_source_sha || bad info_source_sha "sha256 $sum not shown"
grep -q "weight_type=int8" "$T/info" && grep -q "blk.4.w2.scale" "$T/info" && grep -q "^kernels: " "$T/info" \
    && ok info_contents || bad info_contents "missing fields"
"$DYNQ" info --cpu > "$T/cpu" 2>&1 && grep -qi "chosen\|kernel" "$T/cpu" && ok info_cpu || bad info_cpu "$(head -3 "$T/cpu")"

# Sampling: same seed, same text; greedy is deterministic; a whole generation is the same
# for -t 1 and -t 2, and for every ISA this CPU can run.
for a in sym asym group tensor; do
    "$DYNQ" run -m "$T/s8.dynq" -p "Once upon a time" -n 40 --temp 0.9 --seed 7 --act $a -t 1 --quiet > "$T/t1" 2>/dev/null
    "$DYNQ" run -m "$T/s8.dynq" -p "Once upon a time" -n 40 --temp 0.9 --seed 7 --act $a -t 2 --quiet > "$T/t2" 2>/dev/null
    [ -s "$T/t1" ] && cmp -s "$T/t1" "$T/t2" && ok "threads_identical_$a" || bad "threads_identical_$a" "-t 1 and -t 2 differ"
done
"$DYNQ" run -m "$T/s8.dynq" -p "Once upon a time" -n 60 --temp 0 --quiet > "$T/ref" 2>/dev/null
for isa in scalar avx2 avx512vnni amx neon; do
    if DYNQ_ISA=$isa "$DYNQ" run -m "$T/s8.dynq" -p "Once upon a time" -n 60 --temp 0 --quiet > "$T/isa" 2> "$T/err"; then
        cmp -s "$T/ref" "$T/isa" && ok "isa_same_tokens_$isa" || bad "isa_same_tokens_$isa" "$(head -c 200 "$T/isa")"
    else
        grep -q "$isa" "$T/err" && ok "isa_unavailable_error_$isa" || bad "isa_unavailable_error_$isa" "$(cat "$T/err")"
    fi
done
expect_status isa_unknown 1 env DYNQ_ISA=sse9 "$DYNQ" run -m "$T/s8.dynq" -p hi -n 2
# The GEMVs' panel streams (DYNQ_GEMV_STREAMS, benchmarks): the same tokens either way, and
# info --cpu says which was asked for; anything but 1 or 4 is a usage error.
for st in 1 4; do
    DYNQ_GEMV_STREAMS=$st "$DYNQ" run -m "$T/s8.dynq" -p "Once upon a time" -n 60 --temp 0 --quiet > "$T/isa" 2>/dev/null
    cmp -s "$T/ref" "$T/isa" && ok "gemv_streams_same_tokens_$st" || bad "gemv_streams_same_tokens_$st" "$(head -c 200 "$T/isa")"
    DYNQ_GEMV_STREAMS=$st "$DYNQ" info --cpu 2>&1 | grep -q "panel streams: $st (DYNQ_GEMV_STREAMS)" \
        && ok "gemv_streams_info_$st" || bad "gemv_streams_info_$st" "$(DYNQ_GEMV_STREAMS=$st "$DYNQ" info --cpu 2>&1 | grep streams)"
done
expect_status gemv_streams_bad 1 env DYNQ_GEMV_STREAMS=2 "$DYNQ" run -m "$T/s8.dynq" -p hi -n 2
# Decode's idle-time warming (DYNQ_DECODE_WARM; on for Intel otherwise): only prefetches, so the
# same tokens either way at two and three threads; info --cpu says which was asked for.
for w in off on; do
    for t in 2 3; do
        DYNQ_DECODE_WARM=$w "$DYNQ" run -m "$T/s8.dynq" -p "Once upon a time" -n 60 -t $t --temp 0 --quiet > "$T/isa" 2>/dev/null
        cmp -s "$T/ref" "$T/isa" && ok "decode_warm_same_tokens_${w}_t$t" || bad "decode_warm_same_tokens_${w}_t$t" "$(head -c 200 "$T/isa")"
    done
    DYNQ_DECODE_WARM=$w "$DYNQ" info --cpu 2>&1 | grep -q "decode warming: $w (DYNQ_DECODE_WARM)" \
        && ok "decode_warm_info_$w" || bad "decode_warm_info_$w" "$(DYNQ_DECODE_WARM=$w "$DYNQ" info --cpu 2>&1 | grep warming)"
done
expect_status decode_warm_bad 1 env DYNQ_DECODE_WARM=1 "$DYNQ" run -m "$T/s8.dynq" -p hi -n 2
# The AVX2 prefill GEMM's widening (DYNQ_AVX2_WIDEN; by CPU family otherwise): the same tokens
# either way (the prompt fills a 3-token block), info --cpu says which; any other value is a
# usage error.
if [ "$(uname -m)" = x86_64 ] && DYNQ_ISA=avx2 "$DYNQ" info --cpu > /dev/null 2>&1; then
    for wf in madd mixed; do
        DYNQ_ISA=avx2 DYNQ_AVX2=plain DYNQ_AVX2_WIDEN=$wf "$DYNQ" run -m "$T/s8.dynq" -p "Once upon a time" -n 60 --temp 0 --quiet > "$T/isa" 2>/dev/null
        cmp -s "$T/ref" "$T/isa" && ok "avx2_widen_same_tokens_$wf" || bad "avx2_widen_same_tokens_$wf" "$(head -c 200 "$T/isa")"
        DYNQ_AVX2_WIDEN=$wf "$DYNQ" info --cpu 2>&1 | grep -q "avx2 gemm widening: $wf (DYNQ_AVX2_WIDEN)" \
            && ok "avx2_widen_info_$wf" || bad "avx2_widen_info_$wf" "$(DYNQ_AVX2_WIDEN=$wf "$DYNQ" info --cpu 2>&1 | grep widen)"
    done
fi
expect_status avx2_widen_bad 1 env DYNQ_AVX2_WIDEN=shift "$DYNQ" run -m "$T/s8.dynq" -p hi -n 2
# The x86 four-stream GEMVs' per-stream prefetch distance by CPU vendor and family (kernels.h,
# dq_gemv4_prefetch_bytes): Intel 2048, AMD family 23 256, later AMD none; info --cpu says which.
if [ "$(uname -m)" = x86_64 ]; then
    vendor=$(awk -F': ' '/^vendor_id/ {print $2; exit}' /proc/cpuinfo)
    family=$(awk -F': ' '/^cpu family/ {print $2; exit}' /proc/cpuinfo)
    case "$vendor/$family" in
        GenuineIntel/*) want=2048 ;;
        AuthenticAMD/23) want=256 ;;
        AuthenticAMD/*) want=0 ;;
        *) want= ;;
    esac
    if [ -n "$want" ]; then
        "$DYNQ" info --cpu 2>&1 | grep -q "four-stream prefetch: $want bytes ahead" \
            && ok "gemv4_prefetch_info_$want" || bad "gemv4_prefetch_info_$want" "$("$DYNQ" info --cpu 2>&1 | grep prefetch)"
        case "$vendor" in GenuineIntel) warm=on ;; *) warm=off ;; esac
        "$DYNQ" info --cpu 2>&1 | grep -q "decode warming: $warm\$" \
            && ok "decode_warm_default_$warm" || bad "decode_warm_default_$warm" "$("$DYNQ" info --cpu 2>&1 | grep warming)"
    else
        echo "skip gemv4_prefetch_info: vendor '$vendor' has no set distance"
    fi
fi
# A small stack (`ulimit -s 160`, main thread and pool threads alike): the same tokens. The AVX2
# prefill GEMM kept a 256 KiB scratch on the stack until 2026-12-01 and crashed here. Not in the
# sanitizer run: there every local gets its own slot with redzones (no sharing between the inlined
# cache-type instances), and attn_kv__vec's frame grows from 1096 bytes to 80 KiB (AVX2) or 149 KiB
# (AVX-512) by gcc -fstack-usage, which overflowed 160 KiB in 24 of 30 runs on a Zen 4.
if [ -n "${DYNQ_SANITIZED:-}" ]; then
    echo "skip small_stack_same_tokens: sanitizer frames are not the binary's (runs in make test)"
elif (ulimit -s 160 && "$DYNQ" run -m "$T/s8.dynq" -p "Once upon a time" -n 60 -t 2 --temp 0 --quiet > "$T/isa" 2> "$T/err"); then
    cmp -s "$T/ref" "$T/isa" && ok small_stack_same_tokens || bad small_stack_same_tokens "$(head -c 200 "$T/isa")"
else
    bad small_stack_same_tokens "exit status $?: $(head -c 200 "$T/err")"
fi
# FP16 and q8_0 KV caches (-ctk / -ctv, llama.cpp's flags): a whole generation gives the same
# tokens on every ISA and thread count; a batched prefill gives the logits of one token at a time,
# bit for bit (prefill widens the cache to FP32, decode reads it as stored: the same values);
# perplexity stays near the FP32 cache's: within 0.5 % for binary16 (11 significant bits per
# value), 2 % for q8_0 (8 bits per value, one scale per 32); prompts one after another in one
# process (--lines: each from an empty cache) give what each gives alone: nothing widened from an
# earlier prompt's cache is reused for a later one. An unknown type is a usage error.
ppl_of() { "$DYNQ" perplexity -m "$T/s8.dynq" -f "$T/text.txt" --ctx 128 --json "$@" 2>/dev/null | sed -n 's/.*"ppl": \([0-9.]*\).*/\1/p'; }
"$DYNQ" logits -m "$T/s8.dynq" -p "Once upon a time there was a little girl" -o "$T/l32" 2>/dev/null
p32=$(ppl_of)
for kv in f16:kv16:0.005 q8_0:kv8:0.02; do
    ty=${kv%%:*} tag=${kv#*:} tag=${tag%%:*} tol=${kv##*:}
    KVT=(-ctk "$ty" -ctv "$ty")
    "$DYNQ" run -m "$T/s8.dynq" -p "Once upon a time" -n 60 --temp 0 --quiet "${KVT[@]}" > "$T/ref16" 2>/dev/null
    for isa in scalar avx2 avx512vnni amx neon; do
        DYNQ_ISA=$isa "$DYNQ" info --cpu > /dev/null 2>&1 || continue
        for t in 1 2; do
            DYNQ_ISA=$isa "$DYNQ" run -m "$T/s8.dynq" -p "Once upon a time" -n 60 --temp 0 --quiet -t $t "${KVT[@]}" > "$T/isa" 2>/dev/null
            [ -s "$T/ref16" ] && cmp -s "$T/ref16" "$T/isa" && ok "${tag}_same_tokens_${isa}_t$t" \
                || bad "${tag}_same_tokens_${isa}_t$t" "$(head -c 200 "$T/isa")"
        done
    done
    "$DYNQ" logits -m "$T/s8.dynq" -p "Once upon a time there was a little girl" -o "$T/lb" "${KVT[@]}" 2>/dev/null
    "$DYNQ" logits -m "$T/s8.dynq" -p "Once upon a time there was a little girl" -o "$T/lo" "${KVT[@]}" --one-by-one 2>/dev/null
    [ -s "$T/lb" ] && cmp -s "$T/lb" "$T/lo" && ok ${tag}_batch_equals_one_by_one || bad ${tag}_batch_equals_one_by_one "logits differ"
    cmp -s "$T/lb" "$T/l32" && bad ${tag}_changes_logits "the $ty cache gave the FP32 cache's logits bit for bit" || ok ${tag}_changes_logits
    pb=$(ppl_of "${KVT[@]}"); pk=$(ppl_of -ctk "$ty"); pv=$(ppl_of -ctv "$ty")
    awk -v a="$p32" -v b="$pb" -v c="$pk" -v d="$pv" -v tol="$tol" 'BEGIN { r = 1; if (a > 0 && b > 0 && c > 0 && d > 0) {
            r = 0; n = split(b " " c " " d, x, " "); for (i = 1; i <= n; i++) if (x[i] / a > 1 + tol || x[i] / a < 1 - tol) r = 1 }
        exit r }' && ok ${tag}_perplexity_near_f32 || bad ${tag}_perplexity_near_f32 "f32 $p32, $ty/$ty $pb, $ty keys $pk, $ty values $pv"
    printf 'Once upon a time there was a big dog named Max who liked to run in the park\nThe little girl saw a cat\n' |
        "$DYNQ" run -m "$T/s8.dynq" --lines -n 20 --temp 0 --quiet "${KVT[@]}" > "$T/kl2" 2>/dev/null
    echo 'The little girl saw a cat' | "$DYNQ" run -m "$T/s8.dynq" --lines -n 20 --temp 0 --quiet "${KVT[@]}" > "$T/kl1" 2>/dev/null
    [ -s "$T/kl1" ] && [ "$(sed -n 2p "$T/kl2")" = "$(cat "$T/kl1")" ] && ok ${tag}_lines_independent \
        || bad ${tag}_lines_independent "second line '$(sed -n 2p "$T/kl2")' alone '$(cat "$T/kl1")'"
done
# The same on heads wider than one q8_0 block (stories260K's are 8 wide): head dim 80 = 32 + 32 +
# 16, two query heads on one KV head, random weights; logits of a batched prefill against one
# token at a time, and the scalar ISA's against the chosen one's, bit for bit, for each cache type.
if /usr/bin/python3 -c 'import numpy' 2>/dev/null &&
    /usr/bin/python3 scripts/random_model.py --dim 160 --hidden 96 --layers 2 --heads 2 --kv-heads 1 --vocab 512 --seq 64 \
        -o "$T/hd80.bin" > /dev/null 2>&1 && "$DYNQ" convert "$T/hd80.bin" --tokenizer models/tok512.bin -o "$T/hd80.dynq" 2>/dev/null; then
    for ty in f16 q8_0; do
        P=(-m "$T/hd80.dynq" -p "Once upon a time there was a little girl named Lily who" -ctk "$ty" -ctv "$ty")
        "$DYNQ" logits "${P[@]}" -o "$T/hb" 2>/dev/null
        "$DYNQ" logits "${P[@]}" -o "$T/ho" --one-by-one 2>/dev/null
        DYNQ_ISA=scalar "$DYNQ" logits "${P[@]}" -o "$T/hs" 2>/dev/null
        [ -s "$T/hb" ] && cmp -s "$T/hb" "$T/ho" && cmp -s "$T/hb" "$T/hs" && ok "hd80_${ty}_batch_one_by_one_scalar" \
            || bad "hd80_${ty}_batch_one_by_one_scalar" "logits differ (batch/one-by-one: $(cmp -s "$T/hb" "$T/ho" && echo same || echo differ))"
    done
else
    echo "skip hd80_kv: /usr/bin/python3 with numpy missing"
fi
expect_status kv_type_unknown 1 "$DYNQ" run -m "$T/s8.dynq" -p hi -n 2 -ctk q4_0
grep -q "cache-type-k" "$T/err" && ok kv_type_unknown_message || bad kv_type_unknown_message "$(cat "$T/err")"
# Quality gates: a model against itself passes every gate; impossible bounds fail with 5.
TXT="$T/text.txt"
expect_status gate_pass 0 "$DYNQ" perplexity -m "$T/s8.dynq" --ref "$T/s8.dynq" -f "$TXT" --ctx 128 --max-delta-ppl 0 --max-kld 0 --min-top1 1
expect_status gate_fail 5 "$DYNQ" perplexity -m "$T/s8.dynq" --ref "$T/sf.dynq" -f "$TXT" --ctx 128 --min-top1 1.01
grep -q "PPL" "$T/out" && ok gate_fail_prints_figures || bad gate_fail_prints_figures "no figures on stdout"
expect_status gate_needs_ref 1 "$DYNQ" perplexity -m "$T/s8.dynq" -f "$TXT" --max-kld 0.1
# A model against itself has delta PPL exactly 0 %: a negative bound is a real bound, not "off".
expect_status gate_negative_bound 5 "$DYNQ" perplexity -m "$T/s8.dynq" --ref "$T/s8.dynq" -f "$TXT" --ctx 128 --max-delta-ppl -0.001
grep -q "quality gate: FAILED" "$T/out" && ok gate_negative_bound_figures || bad gate_negative_bound_figures "$(tail -2 "$T/out")"

# --json paths are JSON strings: a model and a reference whose paths hold a quote, a backslash, a
# tab and non-ASCII text come back unchanged through python's json parser.
if /usr/bin/python3 -c 'import json' 2>/dev/null; then
    odd="$T/we\"ird\\dir"$'\t'"é"
    mkdir -p "$odd" && cp "$T/s8.dynq" "$odd/m\"8\\.dynq" && cp "$T/sf.dynq" "$odd/f\"32.dynq"
    for ref in "" "$odd/f\"32.dynq"; do
        name=ppl_json_escapes_paths${ref:+_ref}
        "$DYNQ" perplexity -m "$odd/m\"8\\.dynq" ${ref:+--ref "$ref"} -f "$TXT" --ctx 128 --json > "$T/j" 2> "$T/err"
        rc=$?
        if [ $rc -ne 0 ]; then bad "$name" "exit $rc: $(head -c 200 "$T/err")"
        elif /usr/bin/python3 -c 'import json, sys
j = json.load(open(sys.argv[1], encoding="utf-8"))
sys.exit(0 if j["model"] == sys.argv[2] and j.get("ref", "") == sys.argv[3] else 1)' "$T/j" "$odd/m\"8\\.dynq" "$ref" 2> "$T/perr"
        then ok "$name"; else bad "$name" "$(head -c 300 "$T/j") $(tail -1 "$T/perr")"; fi
    done
else
    echo "skip ppl_json_escapes_paths: /usr/bin/python3 missing"
fi

# bench --json escapes the model path like every other JSON output.
if [ -x /usr/bin/python3 ]; then
    cp "$T/s8.dynq" "$T/b\"q\\.dynq"
    if "$DYNQ" bench -m "$T/b\"q\\.dynq" -p 4 -n 4 -t 1 -r 1 --json > "$T/bj" 2>/dev/null &&
        /usr/bin/python3 -c 'import json, sys
sys.exit(0 if json.load(open(sys.argv[1]))["model"] == sys.argv[2] else 1)' "$T/bj" "$T/b\"q\\.dynq" 2>/dev/null
    then ok bench_json_escapes_path; else bad bench_json_escapes_path "$(head -c 300 "$T/bj")"; fi
fi

# bench --roofline --json: the measured limits and the fractions reached, per thread count.
if [ -x /usr/bin/python3 ]; then
    if "$DYNQ" bench -m "$T/s8.dynq" -p 8 -n 4 -t 1,2 -r 1 --roofline --json > "$T/rj" 2>/dev/null &&
        /usr/bin/python3 -c 'import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
need = ("pp_tok_s", "tg_tok_s", "tg_gbps", "tg_kv_gbps", "pp_gops", "read_gbps", "read_512mib_gbps", "int8_peak_gops", "tg_bw_fraction", "pp_peak_fraction",
        "tg_bw_fraction_paired", "pp_peak_fraction_paired")
ok = [r["threads"] for r in rows] == [1, 2] and all(r[k] > 0 for r in rows for k in need)
ok = ok and all(abs(r["tg_bw_fraction"] - r["tg_gbps"] / r["read_gbps"]) < 1e-3 for r in rows)
ok = ok and all(r["tg_kv_gbps"] > r["tg_gbps"] for r in rows)
ok = ok and all(r[k] < 10 for r in rows for k in ("tg_bw_fraction_paired", "pp_peak_fraction_paired"))
# one repetition: the loop form that reads fastest by median is that pass'"'"'s best, the same ratio
ok = ok and all(abs(r["tg_bw_fraction_paired_form"] - r["tg_bw_fraction_paired"]) < 2e-4 for r in rows)
# the prefill roofline: the prompt pass (pp_gops * n_prompt / pp_tok_s giga-operations) takes at least
# its operations at the peak or its weight bytes at the read bandwidth, whichever is longer
def roof(r):
    ops = r["pp_gops"] * r["n_prompt"] / r["pp_tok_s"]
    return ops / max(ops / r["int8_peak_gops"], r["weight_bytes"] / 1e9 / r["read_gbps"])
# (tolerances: the figures in the JSON are rounded to 2 decimals)
ok = ok and all(abs(r["pp_roofline_gops"] - roof(r)) <= 2e-3 * roof(r) + 0.02 and r["pp_roofline_gops"] <= r["int8_peak_gops"] + 0.01 for r in rows)
ok = ok and all(abs(r["pp_roofline_fraction"] - r["pp_gops"] / r["pp_roofline_gops"]) <= 2e-3 * r["pp_roofline_fraction"] + 1e-3 for r in rows)
ok = ok and all(0 <= r["pool_backoffs"] <= r["pool_stalls"] for r in rows) and rows[0]["pool_stalls"] == 0
# where the threads'"'"' time went: none with one thread; with two, shares of the wall time, and the
# caller always spends some outside the parallel jobs (the per-token steps of one-token decode)
tk = [p + k for p in ("pp_", "tg_") for k in ("workers_busy", "caller_outside", "caller_wait", "caller_alone", "caller_off_cpu")]
ok = ok and all(rows[0][k] == -1 for k in tk) and all(0 <= rows[1][k] <= 1 for k in tk)
ok = ok and rows[1]["tg_caller_outside"] > 0 and all(sum(rows[1][p + k] for k in ("caller_outside", "caller_wait", "caller_alone")) <= 1.0001 for p in ("pp_", "tg_"))
sys.exit(0 if ok else 1)' "$T/rj" 2>/dev/null
    then ok bench_roofline_json; else bad bench_roofline_json "$(head -c 400 "$T/rj")"; fi
    # several repetitions: each one'"'"'s ratio against one loop form is at least its ratio against
    # the best form of its pass, so the median is too
    if "$DYNQ" bench -m "$T/s8.dynq" -p 8 -n 4 -t 1 -r 5 --roofline --json > "$T/rj5" 2>/dev/null &&
        /usr/bin/python3 -c 'import json, sys
r = json.loads(open(sys.argv[1]).readline())
sys.exit(0 if r["reps"] == 5 and r["tg_bw_fraction_paired_form"] >= r["tg_bw_fraction_paired"] - 1e-4 > 0 else 1)' "$T/rj5" 2>/dev/null
    then ok bench_roofline_form; else bad bench_roofline_form "$(head -c 400 "$T/rj5")"; fi
fi

# bench -d: as llama-bench, prompt and generation start from a cache of -d tokens; the key/value
# bytes a generated token reads (tg_kv_bytes, its mean) grow with it: positions d .. d + n - 1, so
# on average d + (n + 1) / 2 positions, and with -n 4 they are (40 + 2.5) / 2.5 times as many at
# -d 40 as at -d 0; tg_kv_gbps counts them beside the weights.
expect_status bench_depth_negative 1 "$DYNQ" bench -m "$T/s8.dynq" -p 4 -n 4 -d -1 -r 1 -t 1
if [ -x /usr/bin/python3 ]; then
    if "$DYNQ" bench -m "$T/s8.dynq" -p 8 -n 4 -t 1 -r 1 --json > "$T/d0" 2>/dev/null &&
        "$DYNQ" bench -m "$T/s8.dynq" -p 8 -n 4 -d 40 -t 1 -r 1 --json > "$T/d40" 2>/dev/null &&
        /usr/bin/python3 -c 'import json, sys
a, b = (json.load(open(f)) for f in sys.argv[1:3])
ok = a["n_depth"] == 0 and b["n_depth"] == 40 and b["n_prompt"] == 8 and b["n_gen"] == 4
ok = ok and a["tg_kv_bytes"] > 0 and abs(b["tg_kv_bytes"] / a["tg_kv_bytes"] - 42.5 / 2.5) < 1e-6
ok = ok and all(r["tg_kv_gbps"] > r["tg_gbps"] for r in (a, b))
sys.exit(0 if ok else 1)' "$T/d0" "$T/d40" 2>/dev/null
    then ok bench_depth; else bad bench_depth "$(head -c 300 "$T/d0") / $(head -c 300 "$T/d40")"; fi
fi

# scripts/ab_decode.c, the developers' paired A/B harness (not built by the Makefile), still
# builds against the library and runs: an A/A comparison (a stub stands for the library's switch)
# on the shipped model. Its ratio is printed, not checked: speed lives in benchmarks.
if [ -n "${DYNQ_SANITIZED:-}" ]; then
    echo "skip ab_decode: the sanitizer run's library needs the sanitizer's flags (runs in make test)"
elif echo 'int dq_ab_mode;' > "$T/ab_stub.c" &&
    ${CC:-cc} -std=c11 -O1 -Wall -Wextra -Werror -I. -o "$T/ab_decode" scripts/ab_decode.c "$T/ab_stub.c" \
        "${BUILD:-build}/libdynq.a" -lm -pthread 2> "$T/ab.err"; then
    ok ab_decode_builds
    expect_status ab_decode_usage 2 "$T/ab_decode" "$T/s8.dynq"
    expect_status ab_decode_no_model 1 "$T/ab_decode" "$T/none.dynq" 1
    "$T/ab_decode" "$T/s8.dynq" 2 8 3 > "$T/ab.out" 2>&1 &&
        grep -qE '^2 threads, 3 sequences of 8 tokens: time A / time B median [0-9.]+ \(quartiles [0-9.]+-[0-9.]+\)' "$T/ab.out" \
        && ok ab_decode_runs || bad ab_decode_runs "$(head -c 300 "$T/ab.out")"
else
    bad ab_decode_builds "$(head -c 300 "$T/ab.err")"
fi

# scripts/gemv_read.c (the decode GEMV against the read probe, not built by the Makefile) still
# builds and runs: a chain of small matrices on two threads; its rates are printed, not checked.
if [ -n "${DYNQ_SANITIZED:-}" ]; then
    echo "skip gemv_read: the sanitizer run's library needs the sanitizer's flags (runs in make test)"
elif ${CC:-cc} -std=c11 -O1 -Wall -Wextra -Werror -I. -o "$T/gemv_read" scripts/gemv_read.c \
        "${BUILD:-build}/libdynq.a" -lm -pthread 2> "$T/gr.err"; then
    ok gemv_read_builds
    expect_status gemv_read_usage 2 "$T/gemv_read"
    expect_status gemv_read_bad_k 2 "$T/gemv_read" 1 100
    "$T/gemv_read" 2 768 2 0.5 3 > "$T/gr.out" 2>&1 &&
        grep -qE '^2 threads, 4 matrices of 640 x 768 \(2\.0 MB in all\): GEMV [0-9.]+ GB/s, read probe [0-9.]+ GB/s \(medians of 3\), GEMV / read median [0-9.]+$' "$T/gr.out" \
        && ok gemv_read_runs || bad gemv_read_runs "$(head -c 300 "$T/gr.out")"
else
    bad gemv_read_builds "$(head -c 300 "$T/gr.err")"
fi

# Conversion is atomic: a failing conversion leaves neither the target nor a temporary file.
head -c 100000 models/stories260K.bin > "$T/trunc.bin"
expect_status convert_truncated 2 "$DYNQ" convert "$T/trunc.bin" --tokenizer models/tok512.bin -o "$T/x.dynq"
ls "$T" | grep -q '^x\.dynq' && bad convert_no_leftovers "$(ls "$T")" || ok convert_no_leftovers
# An interrupted conversion (SIGINT, SIGTERM): tests/test_convert_signal.sh.
exit 0
