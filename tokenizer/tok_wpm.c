// tokenizer/tok_wpm.c: WordPiece (BERT).
#include "tok_internal.h"

int tok_encode_wordpiece(const dq_tokenizer *t, const char *s, size_t n, tok_ids *out) {
    (void)t; (void)s; (void)n; (void)out;
    return DQ_EFILE;
}
