#!/usr/bin/env bash
# tests/test_tok_spm.sh: dynq's SentencePiece-style tokenizers against python3-sentencepiece
# on every line of every text in $DYNQ_SHARED/data/ plus 2,000 random Unicode strings:
# tok512 (.bin and .model), the 32k Llama 2 tokenizer (.bin), kjv1k (.bin, the HF
# tokenizer.json, and that tokenizer.json rewritten in the newer Metaspace style). Then the
# byte-level pre-tokenizers (gpt-2, llama3, qwen2, falcon, deepseek-llm, smollm) against their
# published regexes run by the Python `regex` module, when python3-regex is installed. Then
# NFC against Python's unicodedata.
set -u
cd "$(dirname "$0")/.."
BUILD="${BUILD:-build}"
S="${DYNQ_SHARED:-../shared}"
T="${DYNQ_TMP:-$(mktemp -d)}/tok_spm"
mkdir -p "$T"
tool="$BUILD/tests/test_tok"
PY=/usr/bin/python3
if [ ! -d "$S/data" ] || [ ! -d "$S/models" ]; then
    echo "skip tok_spm: $S/data or $S/models not found (set DYNQ_SHARED)"; exit 0
fi
if [ ! -x "$tool" ]; then echo "FAIL tok_spm: $tool not built"; exit 1; fi
if ! $PY -c "import sentencepiece" 2>/dev/null; then
    echo "skip tok_spm: python3-sentencepiece is not installed"; exit 0
fi
$PY tests/tok_spm_ref.py items "$T/items.txt" 2000 || { echo "FAIL tok_spm_items: generator failed"; exit 1; }
n=$(wc -l < "$T/items.txt")

# name | file for dynq | vocab hint | SentencePiece model giving the expected ids
while IFS='|' read -r name file hint model; do
    [ -n "$name" ] || continue
    if [ ! -f "$S/$file" ] || [ ! -f "$S/$model" ]; then echo "skip tok_spm_$name: $S/$file or $S/$model missing"; continue; fi
    ref="$T/ref_$(basename "$model").txt"
    [ -f "$ref" ] || $PY tests/tok_spm_ref.py ids "$S/$model" "$T/items.txt" "$ref"
    "$tool" --dump "$S/$file" "$hint" "$T/items.txt" > "$T/got_$name.txt" 2> "$T/err_$name.txt"
    if cmp -s "$ref" "$T/got_$name.txt"; then
        echo "ok tok_spm_$name ($n strings identical to sentencepiece)"
    else
        bad=$(diff "$ref" "$T/got_$name.txt" | grep -c '^<')
        line=$(cmp "$ref" "$T/got_$name.txt" 2>&1 | sed -n 's/.*line \([0-9]*\).*/\1/p')
        echo "FAIL tok_spm_$name: $bad of $n strings differ; first at line ${line:-?}: $(head -c 200 "$T/err_$name.txt")"
        [ -n "$line" ] && { echo "  text: $(sed -n "${line}p" "$T/items.txt" | head -c 200)";
                            echo "  want: $(sed -n "${line}p" "$ref" | head -c 200)";
                            echo "  got:  $(sed -n "${line}p" "$T/got_$name.txt" | head -c 200)"; }
    fi
done <<'LIST'
tok512|models/stories260K/tok512.bin|512|models/stories260K/tok512.model
tok512-model|models/stories260K/tok512.model|0|models/stories260K/tok512.model
llama2-32k|models/llama2-tokenizer/tokenizer.bin|32000|models/llama2-tokenizer/tokenizer.model
kjv1k-bin|models/kjv/kjv1k-tok.bin|1024|models/kjv/kjv1k.model
kjv-hf-json|models/kjv/kjv-hf/tokenizer.json|0|models/kjv/kjv1k.model
LIST

# The newer SentencePiece-style tokenizer.json (Mistral, TinyLlama: normalizer null, Metaspace
# pre-tokenizer with prepend_scheme "first" and split false, Metaspace decoder), made from
# kjv-hf/tokenizer.json. Hugging Face's Metaspace adds the leading "▁" only to text that does not
# start with a space, so each expected line is sentencepiece's ids of the item less that space
# (tests/tok_spm_ref.py metaspace-ids); decoding gives the item back less that space.
kj="$S/models/kjv/kjv-hf/tokenizer.json"; km="$S/models/kjv/kjv1k.model"
if [ -f "$kj" ] && [ -f "$km" ]; then
    mkdir -p "$T/metaspace"
    $PY tests/tok_spm_ref.py metaspace-json "$kj" "$T/metaspace/tokenizer.json" &&
        $PY tests/tok_spm_ref.py metaspace-ids "$km" "$T/items.txt" "$T/mref.txt"
    "$tool" --dump "$T/metaspace/tokenizer.json" 0 "$T/items.txt" > "$T/mgot.txt" 2> "$T/merr.txt"
    lead=$(grep -c '^ ' "$T/items.txt")
    if cmp -s "$T/mref.txt" "$T/mgot.txt"; then
        echo "ok tok_spm_metaspace_json ($n strings, $lead starting with a space, same ids as sentencepiece)"
    else
        line=$(cmp "$T/mref.txt" "$T/mgot.txt" 2>&1 | sed -n 's/.*line \([0-9]*\).*/\1/p')
        echo "FAIL tok_spm_metaspace_json: $(diff "$T/mref.txt" "$T/mgot.txt" | grep -c '^<') of $n strings differ; first at line ${line:-?}: $(head -c 200 "$T/merr.txt")"
    fi
    "$tool" --roundtrip "$T/metaspace/tokenizer.json" 0 "$T/items.txt" > "$T/mback.txt" 2> "$T/merr.txt"
    if sed 's/^ //' "$T/items.txt" | cmp -s - "$T/mback.txt"; then
        echo "ok tok_spm_metaspace_roundtrip ($n strings decode to themselves, less a leading space)"
    else
        echo "FAIL tok_spm_metaspace_roundtrip: $(sed 's/^ //' "$T/items.txt" | diff - "$T/mback.txt" | grep -c '^<') of $n strings differ $(head -c 200 "$T/merr.txt")"
    fi
else
    echo "skip tok_spm_metaspace_json: $kj or $km missing"
fi

# Special tokens parsed from the text (--parse-special): every text fragment between them gets
# SentencePiece's leading space, as llama.cpp and Hugging Face's Prepend normalizer do; expected
# ids from sentencepiece encoding each fragment on its own (tests/tok_spm_ref.py special-ids).
$PY tests/tok_spm_ref.py special-items "$T/items.txt" "$T/sitems.txt" 1500
while IFS='|' read -r name file hint model; do
    [ -n "$name" ] || continue
    if [ ! -f "$S/$file" ] || [ ! -f "$S/$model" ]; then echo "skip tok_spm_special_$name: $S/$file missing"; continue; fi
    $PY tests/tok_spm_ref.py special-ids "$S/$model" "$T/sitems.txt" "$T/sref_$name.txt"
    "$tool" --dump-special "$S/$file" "$hint" "$T/sitems.txt" > "$T/sgot_$name.txt" 2> "$T/serr_$name.txt"
    if cmp -s "$T/sref_$name.txt" "$T/sgot_$name.txt"; then
        echo "ok tok_spm_special_$name ($(wc -l < "$T/sitems.txt") strings with <s>/</s> inside, same ids as sentencepiece per fragment)"
    else
        line=$(cmp "$T/sref_$name.txt" "$T/sgot_$name.txt" 2>&1 | sed -n 's/.*line \([0-9]*\).*/\1/p')
        echo "FAIL tok_spm_special_$name: $(diff "$T/sref_$name.txt" "$T/sgot_$name.txt" | grep -c '^<') strings differ; first at line ${line:-?}: $(sed -n "${line:-1}p" "$T/sitems.txt" | head -c 120) $(head -c 200 "$T/serr_$name.txt")"
    fi
done <<'LIST'
llama2-32k|models/llama2-tokenizer/tokenizer.bin|32000|models/llama2-tokenizer/tokenizer.model
kjv1k-bin|models/kjv/kjv1k-tok.bin|1024|models/kjv/kjv1k.model
kjv-hf-json|models/kjv/kjv-hf/tokenizer.json|0|models/kjv/kjv1k.model
LIST

if ! $PY -c "import regex" 2>/dev/null; then
    echo "skip tok_pretok: python3-regex is not installed (reference regex engine)"
else
$PY tests/tok_pretok_ref.py items "$T/pitems.bin" 3000
for fam in gpt2 llama3 qwen2 falcon deepseek-llm smollm; do
    $PY tests/tok_pretok_ref.py split $fam "$T/pitems.bin" > "$T/pref_$fam.txt"
    "$tool" --split $fam "$T/pitems.bin" > "$T/pgot_$fam.txt"
    if cmp -s "$T/pref_$fam.txt" "$T/pgot_$fam.txt"; then
        echo "ok tok_pretok_$fam ($(wc -l < "$T/pref_$fam.txt") strings split as the regex does)"
    else
        echo "FAIL tok_pretok_$fam: $(diff "$T/pref_$fam.txt" "$T/pgot_$fam.txt" | grep -c '^<') strings split differently"
    fi
done
# whole byte-level BPE through tokenizer.json (GPT-2's 50k vocabulary with each family's
# pre-tokenizer: Split regex, llama3 with ignore_merges; smollm Sequence[Digits(individual_digits),
# ByteLevel]) against the small Python BPE in tests/tok_bpe_ref.py
g="$S/tokenizer-tests/ggml-vocab-gpt-2.gguf"
for fam in gpt2 llama3 qwen2 smollm; do
    [ -f "$g" ] || { echo "skip tok_bpe_json_$fam: $g missing"; continue; }
    "$tool" --write-json "$g" $fam "$T/tj_$fam.json" &&
        $PY tests/tok_bpe_ref.py "$T/tj_$fam.json" "$T/pitems.bin" > "$T/bref_$fam.txt" &&
        "$tool" --dump0 "$T/tj_$fam.json" "$T/pitems.bin" > "$T/bgot_$fam.txt"
    if cmp -s "$T/bref_$fam.txt" "$T/bgot_$fam.txt"; then
        echo "ok tok_bpe_json_$fam ($(wc -l < "$T/bref_$fam.txt") strings, same ids as the Python BPE)"
    else
        echo "FAIL tok_bpe_json_$fam: $(diff "$T/bref_$fam.txt" "$T/bgot_$fam.txt" | grep -c '^<') strings differ from tests/tok_bpe_ref.py"
    fi
done
fi

# NFC (tokenizer.json "NFC" normalizer) against Python's unicodedata
$PY tests/tok_nfc_ref.py items "$T/nitems.bin" 5000
$PY tests/tok_nfc_ref.py nfc "$T/nitems.bin" > "$T/nref.txt"
"$tool" --nfc "$T/nitems.bin" > "$T/ngot.txt"
if cmp -s "$T/nref.txt" "$T/ngot.txt"; then
    echo "ok tok_nfc ($(wc -l < "$T/nref.txt") strings normalized as unicodedata does)"
else
    echo "FAIL tok_nfc: $(diff "$T/nref.txt" "$T/ngot.txt" | grep -c '^<') strings differ from unicodedata.normalize('NFC')"
fi
