// tokenizer/unicode.c: lookups over the generated tables in unicode_data.c.
#include "unicode.h"

#include <stdlib.h>

int uc_flags(uint32_t cp) {
    int lo = 0, hi = uc_n_ranges - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (cp < uc_ranges[mid].lo) hi = mid - 1;
        else if (cp > uc_ranges[mid].hi) lo = mid + 1;
        else return uc_ranges[mid].flags;
    }
    return 0;
}

uint32_t uc_tolower(uint32_t cp) {
    if (cp < 128) return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
    int lo = 0, hi = uc_n_lower - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (cp < uc_lower[mid][0]) hi = mid - 1;
        else if (cp > uc_lower[mid][0]) lo = mid + 1;
        else return uc_lower[mid][1];
    }
    return cp;
}

int uc_decompose(uint32_t cp, uint32_t out[4]) {
    if (cp >= 0xAC00 && cp < 0xAC00 + 11172) {  // Hangul syllable: L V (T)
        uint32_t s = cp - 0xAC00;
        out[0] = 0x1100 + s / 588;
        out[1] = 0x1161 + (s % 588) / 28;
        if (s % 28) {
            out[2] = 0x11A7 + s % 28;
            return 3;
        }
        return 2;
    }
    int lo = 0, hi = uc_n_decomp - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (cp < uc_decomp[mid][0]) hi = mid - 1;
        else if (cp > uc_decomp[mid][0]) lo = mid + 1;
        else {
            int n = 0;
            while (n < 4 && uc_decomp[mid][1 + n]) {
                out[n] = uc_decomp[mid][1 + n];
                n++;
            }
            return n;
        }
    }
    out[0] = cp;
    return 1;
}

size_t uc_decode(const unsigned char *s, size_t n, uint32_t *cp) {
    unsigned c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t len;
    unsigned lo = 0x80, hi = 0xBF;
    uint32_t v;
    if (c >= 0xC2 && c <= 0xDF) len = 2, v = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3, v = c & 0x0F;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4, v = c & 0x07;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else goto bad;
    if (n < len || s[1] < lo || s[1] > hi) goto bad;
    for (size_t i = 1; i < len; i++) {
        if (s[i] < 0x80 || s[i] > 0xBF) goto bad;
        v = v << 6 | (s[i] & 0x3F);
    }
    *cp = v;
    return len;
bad:
    *cp = 0x110000 + c;
    return 1;
}

size_t uc_encode(uint32_t cp, char *o) {
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

// ---------------------------------------------------------------------------
// NFC: canonical decomposition, canonical ordering, canonical composition (UAX #15)

static int uc_ccc_of(uint32_t cp) {
    if (cp < 0x300) return 0;
    int lo = 0, hi = uc_n_ccc - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (cp < uc_ccc[mid].lo) hi = mid - 1;
        else if (cp > uc_ccc[mid].hi) lo = mid + 1;
        else return uc_ccc[mid].ccc;
    }
    return 0;
}

// Primary composite of a + b, or 0.
static uint32_t uc_compose_pair(uint32_t a, uint32_t b) {
    if (a >= 0x1100 && a < 0x1113 && b >= 0x1161 && b < 0x1176)  // Hangul L + V
        return 0xAC00 + ((a - 0x1100) * 21 + (b - 0x1161)) * 28;
    if (a >= 0xAC00 && a < 0xAC00 + 11172 && (a - 0xAC00) % 28 == 0 && b > 0x11A7 && b < 0x11C3)  // LV + T
        return a + (b - 0x11A7);
    int lo = 0, hi = uc_n_compose - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (a < uc_compose[mid][0] || (a == uc_compose[mid][0] && b < uc_compose[mid][1])) hi = mid - 1;
        else if (a > uc_compose[mid][0] || b > uc_compose[mid][1]) lo = mid + 1;
        else return uc_compose[mid][2];
    }
    return 0;
}

int uc_nfc(const char *s, size_t n, char **out, size_t *out_len) {
    uint32_t *d = malloc((n * 4 + 1) * sizeof *d);  // a byte decomposes to at most 4 code points
    char *o = malloc(n * 4 + 1);
    if (!d || !o) {
        free(d);
        free(o);
        return 4;  // DQ_ENOMEM
    }
    size_t m = 0;
    for (size_t i = 0; i < n;) {
        uint32_t c;
        i += uc_decode((const unsigned char *)s + i, n - i, &c);
        if (c >= 0x110000) {  // invalid byte: kept as is, never composes
            d[m++] = c;
            continue;
        }
        uint32_t t[4];
        int k = uc_decompose(c, t);
        for (int j = 0; j < k; j++) d[m++] = t[j];
    }
    // canonical ordering: stable insertion sort of each run of non-starters by class
    for (size_t i = 1; i < m; i++) {
        int ci = uc_ccc_of(d[i]);
        if (!ci) continue;
        uint32_t c = d[i];
        size_t j = i;
        while (j > 0 && uc_ccc_of(d[j - 1]) > ci) {
            d[j] = d[j - 1];
            j--;
        }
        d[j] = c;
    }
    // composition
    size_t w = 0;
    if (m) {
        size_t starter = 0;
        int last = uc_ccc_of(d[0]) ? 256 : 0;
        w = 1;
        for (size_t i = 1; i < m; i++) {
            uint32_t c = d[i];
            int cc = uc_ccc_of(c);
            uint32_t comp = (last < cc || last == 0) && d[starter] < 0x110000 ? uc_compose_pair(d[starter], c) : 0;
            if (comp && (last < cc || (last == 0 && w == starter + 1))) {
                d[starter] = comp;
                continue;
            }
            if (cc == 0) starter = w;
            last = cc;
            d[w++] = c;
        }
    }
    size_t ol = 0;
    for (size_t i = 0; i < w; i++) {
        if (d[i] >= 0x110000) o[ol++] = (char)(d[i] - 0x110000);
        else ol += uc_encode(d[i], o + ol);
    }
    free(d);
    *out = o;
    *out_len = ol;
    return 0;
}
