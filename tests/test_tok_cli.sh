#!/usr/bin/env bash
# tests/test_tok_cli.sh: `dynq tokenize` end to end: ids against python3-sentencepiece,
# --decode round trip, --parse-special, the table output and error exit codes; a converted
# .dynq model tokenizes as its source tokenizer.bin; tokenizer_config.json's add_eos_token;
# --help has examples.
set -u
cd "$(dirname "$0")/.."
DYNQ="${DYNQ:-./dynq}"
S="${DYNQ_SHARED:-../shared}"
T="${DYNQ_TMP:-$(mktemp -d)}/tok_cli"
mkdir -p "$T"
PY=/usr/bin/python3
if [ ! -x "$DYNQ" ] || ! "$DYNQ" tokenize --help >/dev/null 2>&1; then
    echo "skip tok_cli: $DYNQ has no working 'tokenize' command"; exit 0
fi
if [ ! -f "$S/models/kjv/kjv1k-tok.bin" ]; then echo "skip tok_cli: $S/models not found (set DYNQ_SHARED)"; exit 0; fi
check() { if [ "$2" = "$3" ]; then echo "ok $1"; else echo "FAIL $1: got [$2] want [$3]"; fi; }

text="In the beginning God created the heaven and the earth.  Ünïcödé 🦙"
got=$("$DYNQ" tokenize -m "$S/models/kjv/kjv1k-tok.bin" --vocab 1024 --ids -p "$text")
if $PY -c "import sentencepiece" 2>/dev/null; then
    want=$($PY -c "import sentencepiece as s, sys; print(' '.join(map(str, [1] + s.SentencePieceProcessor(model_file=sys.argv[1]).encode(sys.argv[2]))))" \
           "$S/models/kjv/kjv1k.model" "$text")
    check tok_cli_ids_kjv1k "$got" "$want"
else
    echo "skip tok_cli_ids_kjv1k: python3-sentencepiece is not installed"
fi
back=$(printf '%s\n' "$got" | "$DYNQ" tokenize -m "$S/models/kjv/kjv1k-tok.bin" --vocab 1024 --decode)
check tok_cli_decode_kjv1k "$back" "$text"
got=$(printf '%s' "$text" | "$DYNQ" tokenize -m "$S/models/kjv/kjv-hf/tokenizer.json" --ids --no-bos)
want=$("$DYNQ" tokenize -m "$S/models/kjv/kjv1k-tok.bin" --ids --no-bos -p "$text")
check tok_cli_stdin_json_vs_bin "$got" "$want"

# tokenizer_config.json's add_eos_token: EOS (</s>, id 2) last unless --no-eos; BOS as before
mkdir -p "$T/eos"
cp "$S/models/kjv/kjv-hf/tokenizer.json" "$T/eos/"
sed 's/"add_eos_token": false/"add_eos_token": true/' "$S/models/kjv/kjv-hf/tokenizer_config.json" > "$T/eos/tokenizer_config.json"
if grep -q '"add_eos_token": true' "$T/eos/tokenizer_config.json"; then
    check tok_cli_add_eos_token "$("$DYNQ" tokenize -m "$T/eos" --ids -p "$text")" "1 $want 2"
    check tok_cli_no_eos "$("$DYNQ" tokenize -m "$T/eos" --ids --no-eos -p "$text")" "1 $want"
    check tok_cli_add_eos_absent "$("$DYNQ" tokenize -m "$S/models/kjv/kjv-hf" --ids -p "$text")" "1 $want"
else
    echo "skip tok_cli_add_eos_token: kjv-hf/tokenizer_config.json has no \"add_eos_token\": false to turn on"
fi

# a .dynq model made by `dynq convert` tokenizes as the tokenizer.bin it was made with (the
# normalizer flags of tok512.model beside it included: runs of spaces collapse)
M=models
if [ -f "$M/stories260K.bin" ] && [ -f "$M/tok512.bin" ]; then
    if "$DYNQ" convert "$M/stories260K.bin" --tokenizer "$M/tok512.bin" -o "$T/s260k.dynq" >/dev/null 2>"$T/conv_err"; then
        bad=""
        for s in "Once upon a time, there was a little girl named Lily." "  Two  spaces  " "Tom said: \"123 + 4 = 127\"!" \
                 "Ünïcödé 🦙 中文" "" "a" "<s>"; do
            a=$("$DYNQ" tokenize -m "$T/s260k.dynq" --ids -p "$s"); b=$("$DYNQ" tokenize -m "$M/tok512.bin" --ids -p "$s")
            [ "$a" = "$b" ] && [ -n "$a" ] || bad="$bad [$s]: .dynq [$a] .bin [$b];"
        done
        a=$("$DYNQ" tokenize -m "$T/s260k.dynq" --ids --no-bos -p "Lily  and Tom"); b=$("$DYNQ" tokenize -m "$M/tok512.bin" --ids --no-bos -p "Lily  and Tom")
        [ "$a" = "$b" ] && [ -n "$a" ] || bad="$bad --no-bos: .dynq [$a] .bin [$b];"
        if [ -z "$bad" ]; then echo "ok tok_cli_dynq_model"; else echo "FAIL tok_cli_dynq_model:$bad"; fi
        d=$("$DYNQ" tokenize -m "$T/s260k.dynq" --ids -p "Once upon a time" | "$DYNQ" tokenize -m "$T/s260k.dynq" --decode)
        check tok_cli_dynq_model_decode "$d" "Once upon a time"
    else
        echo "FAIL tok_cli_dynq_model: dynq convert failed: $(head -c 200 "$T/conv_err")"
    fi
else
    echo "skip tok_cli_dynq_model: $M/stories260K.bin or $M/tok512.bin missing"
fi
if $PY -c "import sentencepiece" 2>/dev/null && [ -f "$M/tok512.model" ] && [ -f "$T/s260k.dynq" ]; then
    s="  Once upon a  time, Lily saw 3 big dogs.  "
    want=$($PY -c "import sentencepiece as s, sys; print(' '.join(map(str, [1] + s.SentencePieceProcessor(model_file=sys.argv[1]).encode(sys.argv[2]))))" \
           "$M/tok512.model" "$s")
    check tok_cli_dynq_model_vs_sentencepiece "$("$DYNQ" tokenize -m "$T/s260k.dynq" --ids -p "$s")" "$want"
fi

# --help: usage, exit statuses and examples, like the other subcommands
h=$("$DYNQ" tokenize --help)
if grep -q '^examples:' <<<"$h" && grep -q '^  dynq tokenize -m ' <<<"$h" && grep -q '^exit status:' <<<"$h"; then
    echo "ok tok_cli_help_examples"
else
    echo "FAIL tok_cli_help_examples: no 'examples:' section with dynq tokenize lines"
fi
if [ -f "$S/tokenizer-tests/ggml-vocab-gpt-2.gguf" ]; then
    g="$S/tokenizer-tests/ggml-vocab-gpt-2.gguf"
    check tok_cli_parse_special "$("$DYNQ" tokenize -m "$g" --ids --parse-special -p 'Hi<|endoftext|>')" "17250 50256"
    check tok_cli_special_as_text "$("$DYNQ" tokenize -m "$g" --ids -p '<|endoftext|>' | tr ' ' '\n' | grep -c '^50256$')" "0"
    tab=$("$DYNQ" tokenize -m "$g" -p 'Hello world' | tr -s ' ' | sed 's/^ //')
    check tok_cli_table "$tab" "$(printf '15496 Hello\n995 world')"
fi
"$DYNQ" tokenize -m "$T/does-not-exist" -p x >/dev/null 2>"$T/err"; rc=$?
check tok_cli_missing_file_status "$rc" "2"
grep -q "does-not-exist" "$T/err" && echo "ok tok_cli_missing_file_message" || echo "FAIL tok_cli_missing_file_message: $(cat "$T/err")"
"$DYNQ" tokenize -p x >/dev/null 2>&1; check tok_cli_usage_status "$?" "1"
