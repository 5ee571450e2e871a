// tests/fuzz/fuzz_tok_common.h: what the tokenizer harnesses do with a tokenizer that loaded:
// encode fixed and fuzzed text, stream-decode every id, serialize and deserialize again.
#ifndef DYNQ_FUZZ_TOK_COMMON_H
#define DYNQ_FUZZ_TOK_COMMON_H

#include "fuzz_common.h"
#include "tokenizer/tokenizer.h"

__attribute__((unused)) static void fz_decode_ids(const dq_tokenizer *tok, const int32_t *ids, size_t n) {
    dq_detok d;
    char out[512];
    dq_detok_init(&d, tok);
    for (size_t i = 0; i < n; i++) {
        size_t w = dq_detok_push(&d, ids[i], out, 256);
        if (w > 256) abort();
    }
    if (dq_detok_flush(&d, out, 256) > 256) abort();
}

__attribute__((unused)) static void fz_encode(const dq_tokenizer *tok, const char *text, size_t len, int flags) {
    int32_t *ids = NULL;
    size_t n = 0;
    dq_err e = {0};
    if (dq_tok_encode(tok, text, len, flags, &ids, &n, &e) == DQ_OK) {
        int nv = dq_tok_n_vocab(tok);
        for (size_t i = 0; i < n; i++)
            if (ids[i] < 0 || ids[i] >= nv) abort();  // encode must return valid ids only
        fz_decode_ids(tok, ids, n);
    }
    free(ids);
}

// Exercises a freshly loaded tokenizer (bounded work: the first 4096 ids are decoded).
__attribute__((unused)) static void fz_exercise_tok(const dq_tokenizer *tok, const uint8_t *extra, size_t extra_len) {
    static const char sample[] = "Once upon a time, <s> there was a caf\xc3\xa9 \xe2\x80\x94 \xf0\x9f\x98\x80 123\n\t!";
    fz_encode(tok, sample, sizeof sample - 1, DQ_TOK_ADD_BOS | DQ_TOK_PARSE_SPECIAL);
    if (extra_len > 256) extra_len = 256;
    fz_encode(tok, (const char *)extra, extra_len, 0);
    int nv = dq_tok_n_vocab(tok);
    int lim = nv < 4096 ? nv : 4096;
    dq_detok d;
    char out[512];
    dq_detok_init(&d, tok);
    for (int i = -1; i <= lim; i++) dq_detok_push(&d, i, out, 256);  // includes out-of-range ids
    dq_detok_flush(&d, out, 256);
    for (int i = 0; i < lim; i++) {
        const char *p = dq_tok_piece(tok, i);
        if (p) (void)strlen(p);
    }
    (void)dq_tok_bos(tok), (void)dq_tok_eos(tok), (void)dq_tok_is_eog(tok, 0), (void)dq_tok_find(tok, "a");
    uint8_t *blob = NULL;
    size_t blen = 0;
    dq_err e = {0};
    if (dq_tok_serialize(tok, &blob, &blen, &e) == DQ_OK) {
        dq_tokenizer *t2 = NULL;
        // What we wrote, we must read back.
        if (dq_tok_deserialize(&t2, blob, blen, "roundtrip", &e) != DQ_OK) {
            fprintf(stderr, "round trip failed: %s\n", e.msg);
            abort();
        }
        if (dq_tok_n_vocab(t2) != nv) abort();
        dq_tok_free(t2);
    }
    free(blob);
}

// Loads path with dq_tok_load and exercises it; checks the error contract on failure.
__attribute__((unused)) static void fz_tok_file(const char *path, int hint, const uint8_t *data, size_t size) {
    dq_tokenizer *tok = NULL;
    dq_err e = {0};
    int rc = dq_tok_load(&tok, path, hint, &e);
    if (rc == DQ_OK) {
        fz_exercise_tok(tok, data, size);
        dq_tok_free(tok);
    } else if (e.msg[0] == 0 || strchr(e.msg, '\n') || tok != NULL) {
        abort();
    }
}

#endif
