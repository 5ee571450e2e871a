#!/usr/bin/env bash
# tests/test_tok_cli.sh: `dynq tokenize` end to end: ids against python3-sentencepiece,
# --decode round trip, --parse-special, the table output and error exit codes.
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
