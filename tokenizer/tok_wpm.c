// tokenizer/tok_wpm.c: WordPiece (BERT). The basic tokenizer first: drop control and
// unassigned characters, turn white space into spaces, put spaces around CJK ideographs,
// lower-case and strip accents (NFD, drop nonspacing marks) when the vocabulary is
// uncased, split on spaces and around punctuation. Then each word greedily takes the
// longest vocabulary piece from the left ("##" marks a continuation); a word that cannot
// be covered, or is longer than wpm_max_chars, becomes [UNK].
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"
#include "unicode.h"

static int is_cjk(uint32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
           (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

static int is_punct(uint32_t c, int fl) {
    return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126) ||
           (fl & UC_P);
}

// One word (UTF-8 in w[0..n), nchar characters) -> ids.
static int wordpiece(const dq_tokenizer *t, const char *w, size_t n, size_t nchar, tok_ids *out) {
    int unk = t->unk >= 0 ? t->unk : 0;
    if (nchar > (size_t)t->wpm_max_chars) return tok_ids_push(out, unk);
    size_t mark = out->n;
    char buf[TOK_MAX_PIECE + 3];
    for (size_t a = 0; a < n;) {
        int found = -1;
        size_t flen = 0;
        size_t maxl = n - a < TOK_MAX_PIECE ? n - a : TOK_MAX_PIECE;
        for (size_t l = maxl; l > 0; l--) {
            if (a + l < n && ((unsigned char)w[a + l] & 0xC0) == 0x80) continue;  // not a character boundary
            size_t bl = 0;
            if (a > 0) {
                buf[0] = buf[1] = '#';
                bl = 2;
            }
            memcpy(buf + bl, w + a, l);
            int id = tok_lookup(t, buf, bl + l);
            if (id >= 0) {
                found = id;
                flen = l;
                break;
            }
        }
        if (found < 0) {
            out->n = mark;
            return tok_ids_push(out, unk);
        }
        int rc = tok_ids_push(out, found);
        if (rc) return rc;
        a += flen;
    }
    return DQ_OK;
}

int tok_encode_wordpiece(const dq_tokenizer *t, const char *s, size_t n, tok_ids *out) {
    // normalized text: words separated by single spaces; each punctuation mark and CJK ideograph alone
    char *buf = malloc(n * 24 + 8);  // worst case: a character decomposes to 4 code points with spaces;
    if (!buf) return DQ_ENOMEM;
    size_t m = 0;
    for (size_t i = 0; i < n;) {
        uint32_t c;
        i += uc_decode((const unsigned char *)s + i, n - i, &c);
        int fl = uc_flags(c);
        if (c == '\t' || c == '\n' || c == '\r' || (fl & UC_WS)) {
            buf[m++] = ' ';
            continue;
        }
        if (c == 0 || c == 0xFFFD || fl == 0 || (fl & UC_CC)) continue;
        uint32_t d[4];
        int nd = 1;
        d[0] = c;
        if (t->flags & TOKF_LOWERCASE) {
            nd = uc_decompose(uc_tolower(c), d);
            for (int k = 0; k < nd; k++) d[k] = uc_tolower(d[k]);
        }
        for (int k = 0; k < nd; k++) {
            int f2 = uc_flags(d[k]);
            if ((t->flags & TOKF_LOWERCASE) && (f2 & UC_MN)) continue;
            int alone = is_cjk(d[k]) || is_punct(d[k], f2);
            if (alone) buf[m++] = ' ';
            m += uc_encode(d[k], buf + m);
            if (alone) buf[m++] = ' ';
        }
    }
    int rc = DQ_OK;
    for (size_t i = 0; i < m && !rc;) {
        while (i < m && buf[i] == ' ') i++;
        size_t a = i, nchar = 0;
        while (i < m && buf[i] != ' ') {
            if (((unsigned char)buf[i] & 0xC0) != 0x80) nchar++;
            i++;
        }
        if (i > a) rc = wordpiece(t, buf + a, i - a, nchar, out);
    }
    free(buf);
    return rc;
}
