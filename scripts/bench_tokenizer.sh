#!/usr/bin/env bash
# scripts/bench_tokenizer.sh: tokenizer encoding speed (MB/s, one core) on English text.
# Usage: scripts/bench_tokenizer.sh [TEXT]   (default: $DYNQ_SHARED/data/wikitext2-test.txt)
# Vocabularies: the 32k Llama 2 SentencePiece vocabulary (the target: >= 5 MB/s), and, when
# present, the byte-level BPE (GPT-2) and WordPiece (BERT) test vocabularies.
set -eu
cd "$(dirname "$0")/.."
S="${DYNQ_SHARED:-../shared}"
TEXT="${1:-$S/data/wikitext2-test.txt}"
make -s build/tests/test_tok >/dev/null
for v in "models/llama2-tokenizer/tokenizer.bin 32000" "tokenizer-tests/ggml-vocab-gpt-2.gguf 0" \
         "tokenizer-tests/ggml-vocab-bert-bge.gguf 0"; do
    set -- $v
    [ -f "$S/$1" ] || { echo "skip: $S/$1 not found"; continue; }
    taskset -c 0 build/tests/test_tok --bench "$S/$1" "$2" "$TEXT" 3 2>/dev/null ||
        build/tests/test_tok --bench "$S/$1" "$2" "$TEXT" 3
done
