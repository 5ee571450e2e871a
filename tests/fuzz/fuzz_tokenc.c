// tests/fuzz/fuzz_tokenc.c: tokenizer encode/decode on arbitrary bytes, for every tokenizer
// family available: llama2.c tok512.bin (SPM scores), the KJV tokenizer.json, and the GGUF
// vocabularies of $DYNQ_SHARED/tokenizer-tests (SPM, byte-level BPE, WordPiece).
// Byte 0 picks the tokenizer and the flags; the rest is the text (NULL when empty). The same
// bytes, read as little-endian u16 ids, are also pushed through the streaming decoder.
#include "fuzz_tok_common.h"

static dq_tokenizer *toks[8];
static int n_toks;

static void add(const char *path, int hint) {
    dq_tokenizer *t;
    dq_err e = {0};
    if (path && dq_tok_load(&t, path, hint, &e) == DQ_OK) toks[n_toks++] = t;
    else if (path) fprintf(stderr, "fuzz_tokenc: cannot load %s: %s\n", path, e.msg);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    char b[512];
    add(fz_data("FUZZ_TOKENIZER", "models/tok512.bin"), 512);
    add(fz_shared(b, sizeof b, "models/kjv/kjv-hf/tokenizer.json"), 0);
    add(fz_shared(b, sizeof b, "tokenizer-tests/ggml-vocab-llama-spm.gguf"), 0);
    add(fz_shared(b, sizeof b, "tokenizer-tests/ggml-vocab-gpt-2.gguf"), 0);
    add(fz_shared(b, sizeof b, "tokenizer-tests/ggml-vocab-bert-bge.gguf"), 0);
    add(fz_shared(b, sizeof b, "tokenizer-tests/ggml-vocab-deepseek-llm.gguf"), 0);
    if (n_toks == 0) {
        fprintf(stderr, "fuzz_tokenc: no tokenizer found (run from the repo root; set DYNQ_SHARED)\n");
        abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const dq_tokenizer *t = toks[(data[0] & 7) % n_toks];
    int flags = (data[0] >> 3) & 3;
    // An empty text is passed as (NULL, 0), as callers may (tests/regress/fuzz_tokenc/empty-text-*).
    fz_encode(t, size > 1 ? (const char *)data + 1 : NULL, size - 1, flags);
    size_t n = (size - 1) / 2;
    int32_t *ids = malloc((n ? n : 1) * sizeof *ids);
    int nv = dq_tok_n_vocab(t);
    for (size_t i = 0; i < n; i++) {
        uint16_t v;
        memcpy(&v, data + 1 + 2 * i, 2);
        ids[i] = (data[0] & 0x80) ? (int32_t)v - 8 : (int32_t)(v % (uint32_t)nv);
    }
    fz_decode_ids(t, ids, n);
    free(ids);
    return 0;
}
