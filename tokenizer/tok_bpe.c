// tokenizer/tok_bpe.c: byte-level BPE (GPT-2 family).
#include <string.h>

#include "tok_internal.h"

// GPT-2's byte <-> printable code point table: bytes '!'..'~', 0xA1..0xAC and 0xAE..0xFF
// stand for themselves; the other 68 bytes map to U+0100, U+0101, ... in byte order.
static int byte_to_cp(int b) {
    if ((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) return b;
    int k = 0;
    for (int x = 0; x < b; x++)
        if (!((x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF))) k++;
    return 256 + k;
}

int tok_bytelevel_unmap(const char *s, size_t n, char *out, size_t *out_len) {
    static int cp_to_byte[324];
    static int init;
    if (!init) {  // idempotent: racing threads write the same values
        for (int c = 0; c < 324; c++) cp_to_byte[c] = -1;
        for (int b = 0; b < 256; b++) cp_to_byte[byte_to_cp(b)] = b;
        init = 1;
    }
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        const unsigned char *u = (const unsigned char *)s + i;
        size_t l = tok_utf8_len(u, n - i);
        if (!l || l > 2) return 0;
        int cp = l == 1 ? u[0] : ((u[0] & 0x1F) << 6) | (u[1] & 0x3F);
        if (cp >= 324 || cp_to_byte[cp] < 0) return 0;
        out[o++] = (char)cp_to_byte[cp];
        i += l;
    }
    *out_len = o;
    return 1;
}

int tok_pre_from_name(const char *name) {
    (void)name;
    return PRE_GPT2;
}

int tok_encode_bytelevel(const dq_tokenizer *t, const char *s, size_t n, tok_ids *out) {
    (void)t; (void)s; (void)n; (void)out;
    return DQ_EFILE;
}
