// tokenizer/tok_bpe.c: byte-level BPE (GPT-2, Llama 3, Qwen2, Falcon, DeepSeek, SmolLM ...):
// the GPT-2 byte <-> printable-unicode map, each family's pre-tokenizer split rules as
// hand-written matchers (no regex library), then rank merges over the bytes of each piece.
//
// A family's pre-tokenizer is one or more regexes applied in sequence: the first splits
// the text into fragments (its matches and the gaps between them), each later one splits
// every fragment again, as Hugging Face's Sequence of Split pre-tokenizers does. A matcher
// returns the length (in characters) of the regex's match at position i of a fragment
// ending at `end`, or 0 when no alternative matches there; `findall` semantics follow.
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"
#include "unicode.h"

// ---------------------------------------------------------------------------
// GPT-2 byte map: bytes '!'..'~', 0xA1..0xAC and 0xAE..0xFF stand for themselves; the other
// 68 bytes map to U+0100, U+0101, ... in byte order.

static int cp_to_byte[324];
static pthread_once_t bytemap_once = PTHREAD_ONCE_INIT;

static int printable(int b) { return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF); }

static void bytemap_init(void) {
    for (int c = 0; c < 324; c++) cp_to_byte[c] = -1;
    int k = 0;
    for (int b = 0; b < 256; b++) cp_to_byte[printable(b) ? b : 256 + k++] = b;
}

int tok_bytelevel_unmap(const char *s, size_t n, char *out, size_t *out_len) {
    pthread_once(&bytemap_once, bytemap_init);
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        const unsigned char *u = (const unsigned char *)s + i;
        size_t l = dq_utf8_len(u, n - i);
        if (!l || l > 2) return 0;
        int cp = l == 1 ? u[0] : ((u[0] & 0x1F) << 6) | (u[1] & 0x3F);
        if (cp >= 324 || cp_to_byte[cp] < 0) return 0;
        out[o++] = (char)cp_to_byte[cp];
        i += l;
    }
    *out_len = o;
    return 1;
}

// ---------------------------------------------------------------------------
// decoded text: code points, their flags and byte offsets

typedef struct {
    uint32_t *cp;
    uint16_t *fl;
    size_t *off;  // byte offset of character i; off[n] = byte length
    size_t n;
} utext;

typedef struct {
    size_t a, b;  // character range [a, b)
} frag;

typedef struct {
    frag *v;
    size_t n, cap;
} frags;

static int frag_push(frags *f, size_t a, size_t b) {
    if (a >= b) return DQ_OK;
    if (f->n == f->cap) {
        size_t nc = f->cap ? f->cap * 2 : 64;
        frag *nv = realloc(f->v, nc * sizeof *nv);
        if (!nv) return DQ_ENOMEM;
        f->v = nv;
        f->cap = nc;
    }
    f->v[f->n++] = (frag){a, b};
    return DQ_OK;
}

static int decode_text(utext *u, const char *s, size_t n) {
    u->cp = malloc((n + 1) * sizeof *u->cp);
    u->fl = malloc((n + 1) * sizeof *u->fl);
    u->off = malloc((n + 1) * sizeof *u->off);
    if (!u->cp || !u->fl || !u->off) return DQ_ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        uint32_t c;
        size_t l = uc_decode((const unsigned char *)s + i, n - i, &c);
        u->cp[k] = c;
        u->fl[k] = (uint16_t)uc_flags(c);
        u->off[k++] = i;
        i += l;
    }
    u->off[k] = n;
    u->n = k;
    return DQ_OK;
}

static void utext_free(utext *u) {
    free(u->cp);
    free(u->fl);
    free(u->off);
}

typedef size_t (*matcher)(const utext *u, size_t i, size_t end);

// Splits every fragment of in by m (matches and the gaps between them) into out.
static int split(const utext *u, const frags *in, matcher m, frags *out) {
    out->n = 0;
    for (size_t k = 0; k < in->n; k++) {
        size_t a = in->v[k].a, b = in->v[k].b, gap = a;
        for (size_t i = a; i < b;) {
            size_t l = m(u, i, b);
            if (!l) {
                i++;
                continue;
            }
            if (frag_push(out, gap, i) || frag_push(out, i, i + l)) return DQ_ENOMEM;
            i += l;
            gap = i;
        }
        if (frag_push(out, gap, b)) return DQ_ENOMEM;
    }
    return DQ_OK;
}

// ---------------------------------------------------------------------------
// character classes and the pieces regexes share

#define IS_L(u, i) ((u)->fl[i] & UC_L)
#define IS_N(u, i) ((u)->fl[i] & UC_N)
#define IS_WS(u, i) ((u)->fl[i] & UC_WS)
#define IS_OTHER(u, i) (!((u)->fl[i] & (UC_L | UC_N | UC_WS)))  // [^\s\p{L}\p{N}]
#define IS_CRLF(u, i) ((u)->cp[i] == '\r' || (u)->cp[i] == '\n')

static size_t run(const utext *u, size_t i, size_t end, int mask) {
    size_t j = i;
    while (j < end && (u->fl[j] & mask)) j++;
    return j - i;
}

static size_t run_other(const utext *u, size_t i, size_t end) {
    size_t j = i;
    while (j < end && IS_OTHER(u, j)) j++;
    return j - i;
}

static uint32_t fold(uint32_t c) {
    if (c >= 'A' && c <= 'Z') return c + 32;
    if (c == 0x17F) return 's';  // LATIN SMALL LETTER LONG S folds to s
    if (c == 0x212A) return 'k';  // KELVIN SIGN
    return c;
}

// 's|'t|'re|'ve|'m|'ll|'d (case-insensitive if ci)
static size_t contraction(const utext *u, size_t i, size_t end, int ci) {
    if (u->cp[i] != '\'' || i + 1 >= end) return 0;
    uint32_t c1 = ci ? fold(u->cp[i + 1]) : u->cp[i + 1];
    if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return 2;
    if (i + 2 >= end) return 0;
    uint32_t c2 = ci ? fold(u->cp[i + 2]) : u->cp[i + 2];
    if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) return 3;
    return 0;
}

// \s+(?!\S): a whitespace run that ends the fragment, or all of it but the last character
static size_t ws_not_before_nonspace(const utext *u, size_t i, size_t end) {
    size_t r = run(u, i, end, UC_WS);
    if (!r) return 0;
    if (i + r == end) return r;
    return r >= 2 ? r - 1 : 0;
}

// ---------------------------------------------------------------------------
// GPT-2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+

static size_t gpt2_core(const utext *u, size_t i, size_t end) {
    size_t l = contraction(u, i, end, 0);
    if (l) return l;
    size_t sp = (u->cp[i] == ' ' && i + 1 < end) ? 1 : 0;
    if (sp && IS_L(u, i + 1)) return 1 + run(u, i + 1, end, UC_L);
    if (IS_L(u, i)) return run(u, i, end, UC_L);
    if (sp && IS_N(u, i + 1)) return 1 + run(u, i + 1, end, UC_N);
    if (IS_N(u, i)) return run(u, i, end, UC_N);
    if (sp && IS_OTHER(u, i + 1)) return 1 + run_other(u, i + 1, end);
    if (IS_OTHER(u, i)) return run_other(u, i, end);
    return ws_not_before_nonspace(u, i, end);
}

static size_t m_gpt2(const utext *u, size_t i, size_t end) {
    size_t l = gpt2_core(u, i, end);
    return l ? l : run(u, i, end, UC_WS);
}

// ---------------------------------------------------------------------------
// Llama 3 / Qwen2:
// (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
// (Qwen2 has \p{N} instead of \p{N}{1,3})

static size_t llama3_like(const utext *u, size_t i, size_t end, size_t max_digits) {
    size_t l = contraction(u, i, end, 1);
    if (l) return l;
    if (!IS_L(u, i) && !IS_N(u, i) && !IS_CRLF(u, i) && i + 1 < end && IS_L(u, i + 1))
        return 1 + run(u, i + 1, end, UC_L);
    if (IS_L(u, i)) return run(u, i, end, UC_L);
    if (IS_N(u, i)) {
        l = run(u, i, end, UC_N);
        return l < max_digits ? l : max_digits;
    }
    size_t sp = (u->cp[i] == ' ' && i + 1 < end && IS_OTHER(u, i + 1)) ? 1 : 0;
    if (sp || IS_OTHER(u, i)) {
        size_t j = i + sp;
        j += run_other(u, j, end);
        while (j < end && IS_CRLF(u, j)) j++;
        return j - i;
    }
    size_t r = run(u, i, end, UC_WS);
    if (!r) return 0;
    for (size_t k = i + r; k > i; k--)  // \s*[\r\n]+: up to the last newline of the run
        if (IS_CRLF(u, k - 1)) return k - i;
    l = ws_not_before_nonspace(u, i, end);
    return l ? l : r;
}

static size_t m_llama3(const utext *u, size_t i, size_t end) { return llama3_like(u, i, end, 3); }
static size_t m_qwen2(const utext *u, size_t i, size_t end) { return llama3_like(u, i, end, 1); }

// ---------------------------------------------------------------------------
// Falcon: [\p{P}\$\+<=>\^~\|`]+ , then GPT-2 without its last \s+ , then [0-9][0-9][0-9]

static int falcon_punct(const utext *u, size_t i) {
    uint32_t c = u->cp[i];
    return (u->fl[i] & UC_P) || c == '$' || c == '+' || c == '<' || c == '=' || c == '>' || c == '^' || c == '~' ||
           c == '|' || c == '`';
}

static size_t m_falcon_punct(const utext *u, size_t i, size_t end) {
    size_t j = i;
    while (j < end && falcon_punct(u, j)) j++;
    return j - i;
}

static size_t m_digits3(const utext *u, size_t i, size_t end) {
    if (i + 3 > end) return 0;
    for (size_t k = i; k < i + 3; k++)
        if (u->cp[k] < '0' || u->cp[k] > '9') return 0;
    return 3;
}

// ---------------------------------------------------------------------------
// DeepSeek LLM: [\r\n] , \s?[cased letters]+ , \s?[!-/:-~！-／：-～‘-‟　-。]+ , \s+$ ,
// [一-龥ࠀ-一가-퟿]+ , \p{N}+

static size_t m_crlf(const utext *u, size_t i, size_t end) { return IS_CRLF(u, i) ? 1 : 0; }

static size_t ws_opt_run(const utext *u, size_t i, size_t end, int (*in)(uint32_t c, int fl)) {
    if (IS_WS(u, i) && i + 1 < end && in(u->cp[i + 1], u->fl[i + 1])) i++;
    else if (!in(u->cp[i], u->fl[i])) return 0;
    size_t j = i;
    while (j < end && in(u->cp[j], u->fl[j])) j++;
    return j;
}

static int ds_letter(uint32_t c, int fl) { return (fl & UC_LC) != 0 || c == 0xB5; }
static int ds_punct(uint32_t c, int fl) {
    (void)fl;
    return (c >= '!' && c <= '/') || (c >= ':' && c <= '~') || (c >= 0xFF01 && c <= 0xFF0F) ||
           (c >= 0xFF1A && c <= 0xFF5E) || (c >= 0x2018 && c <= 0x201F) || (c >= 0x3000 && c <= 0x3002);
}
static int ds_cjk(uint32_t c, int fl) {
    (void)fl;
    return (c >= 0x4E00 && c <= 0x9FA5) || (c >= 0x0800 && c <= 0x4E00) || (c >= 0xAC00 && c <= 0xD7FF);
}

static size_t m_ds_letters(const utext *u, size_t i, size_t end) {
    size_t j = ws_opt_run(u, i, end, ds_letter);
    return j ? j - i : 0;
}
static size_t m_ds_punct(const utext *u, size_t i, size_t end) {
    size_t j = ws_opt_run(u, i, end, ds_punct);
    return j ? j - i : 0;
}
static size_t m_ds_cjk(const utext *u, size_t i, size_t end) {
    size_t j = i;
    while (j < end && ds_cjk(u->cp[j], 0)) j++;
    return j - i;
}
static size_t m_trailing_ws(const utext *u, size_t i, size_t end) {
    size_t r = run(u, i, end, UC_WS);
    return (r && i + r == end) ? r : 0;
}
static size_t m_numbers(const utext *u, size_t i, size_t end) { return run(u, i, end, UC_N); }

// ---------------------------------------------------------------------------
// SmolLM (also StarCoder, Refact, Command-R, CodeShell, EXAONE, Minerva in llama.cpp):
// \p{N} , then GPT-2. Hugging Face writes it as Sequence[Digits(individual_digits: true),
// ByteLevel(use_regex: true)]: each digit becomes a fragment of its own, then the GPT-2 regex
// splits what lies between them (so " 42" gives " ", "4", "2": a space never joins a digit).

static size_t m_one_digit(const utext *u, size_t i, size_t end) {
    (void)end;
    return IS_N(u, i) ? 1 : 0;
}

// ---------------------------------------------------------------------------
// pre-tokenizer table and the encoder

static const matcher pre_rules[PRE_COUNT][7] = {
    [PRE_GPT2] = {m_gpt2},
    [PRE_LLAMA3] = {m_llama3},
    [PRE_QWEN2] = {m_qwen2},
    [PRE_FALCON] = {m_falcon_punct, gpt2_core, m_digits3},
    [PRE_DEEPSEEK_LLM] = {m_crlf, m_ds_letters, m_ds_punct, m_trailing_ws, m_ds_cjk, m_numbers},
    [PRE_SMOLLM] = {m_one_digit, m_gpt2},
};

// Pre-tokenizes s[0..n) into byte spans (character fragments mapped through u->off).
static int pretokenize(const dq_tokenizer *t, utext *u, frags *out, const char *s, size_t n) {
    int rc = decode_text(u, s, n);
    if (rc) return rc;
    frags a = {0}, b = {0};
    if (frag_push(&a, 0, u->n)) return DQ_ENOMEM;
    int pre = t->pre > 0 && t->pre < PRE_COUNT && pre_rules[t->pre][0] ? t->pre : PRE_GPT2;
    for (int k = 0; k < 7 && pre_rules[pre][k] && !rc; k++) {
        rc = split(u, &a, pre_rules[pre][k], &b);
        frags tmp = a;
        a = b;
        b = tmp;
    }
    free(b.v);
    *out = a;
    return rc;
}

int tok_pre_split(int pre, const char *s, size_t n, size_t **ends, size_t *n_frag) {
    dq_tokenizer t;
    memset(&t, 0, sizeof t);
    t.pre = pre;
    utext u = {0};
    frags f = {0};
    *ends = NULL;
    *n_frag = 0;
    int rc = n ? pretokenize(&t, &u, &f, s, n) : DQ_OK;
    if (!rc && f.n) {
        *ends = malloc(f.n * sizeof **ends);
        if (!*ends) rc = DQ_ENOMEM;
        for (size_t k = 0; k < f.n && !rc; k++) (*ends)[k] = u.off[f.v[k].b];
        *n_frag = f.n;
    }
    free(f.v);
    utext_free(&u);
    return rc;
}

int tok_encode_bytelevel(const dq_tokenizer *t, const char *s, size_t n, tok_ids *out) {
    if (n == 0) return DQ_OK;
    utext u = {0};
    frags f = {0};
    int rc = pretokenize(t, &u, &f, s, n);
    int32_t *ids = rc ? NULL : malloc(n * sizeof *ids);
    if (!rc && !ids) rc = DQ_ENOMEM;
    tok_ws w = {0};
    for (size_t k = 0; k < f.n && !rc; k++) {
        size_t a = u.off[f.v[k].a], b = u.off[f.v[k].b];
        if (t->flags & TOKF_IGNORE_MERGES) {
            int id = tok_lookup(t, s + a, b - a);
            if (id >= 0 && t->attr[id] == TOKA_NORMAL) {
                rc = tok_ids_push(out, id);
                continue;
            }
        }
        size_t m = 0;
        for (size_t i = a; i < b; i++) {  // a byte the vocabulary lacks becomes UNK, or is dropped (as HF does)
            int id = t->byte_id[(unsigned char)s[i]];
            if (id < 0) id = t->unk;
            if (id >= 0) ids[m++] = id;
        }
        rc = tok_bpe_ranks(t, &w, ids, m, out);
    }
    tok_ws_free(&w);
    free(ids);
    free(f.v);
    utext_free(&u);
    return rc;
}
