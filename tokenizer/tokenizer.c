// tokenizer/tokenizer.c: the tokenizer object and everything shared by all families:
// allocation and validation, the piece hash, the llama2.c tokenizer.bin loader, the
// serialized blob embedded in .dynq files (docs/TOKENIZER_FORMAT.md), special-token
// splitting, SentencePiece-style encoding, the merge engine and the streaming decoder.
#include "tok_internal.h"
#include "unicode.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>

// ---------------------------------------------------------------------------
// UTF-8 helpers

int tok_utf8_valid(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t l = dq_utf8_len(u + i, n - i);
        if (!l) return 0;
        i += l;
    }
    return 1;
}

int tok_ids_push(tok_ids *a, int32_t id) {
    if (a->n == a->cap) {
        size_t nc = a->cap ? a->cap * 2 : 64;
        int32_t *nv = realloc(a->v, nc * sizeof *nv);
        if (!nv) return DQ_ENOMEM;
        a->v = nv;
        a->cap = nc;
    }
    a->v[a->n++] = id;
    return DQ_OK;
}

// ---------------------------------------------------------------------------
// allocation, piece hash, validation

static uint32_t hash_bytes(const char *s, size_t n) {
    uint32_t h = 2166136261u;  // FNV-1a
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h ^ (h >> 15);
}

static uint32_t hash_pair(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return (uint32_t)k;
}

int tok_alloc(dq_tokenizer **tok, int n, size_t blob_cap, const char *path, dq_err *e) {
    *tok = NULL;
    if (n <= 0 || n > (1 << 24)) return DQ_ERR(e, DQ_EFILE, "%s: vocabulary size %d out of range", path, n);
    if (blob_cap > UINT32_MAX - 1) return DQ_ERR(e, DQ_EFILE, "%s: vocabulary text too large", path);
    dq_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return DQ_ERR(e, DQ_ENOMEM, "%s: out of memory", path);
    t->n_vocab = n;
    t->bos = t->eos = t->unk = t->pad = t->sep = t->cls = -1;
    t->wpm_max_chars = 100;
    t->blob = malloc(blob_cap + 1);
    t->off = calloc((size_t)n, sizeof *t->off);
    t->len = calloc((size_t)n, sizeof *t->len);
    t->scores = calloc((size_t)n, sizeof *t->scores);
    t->attr = calloc((size_t)n, sizeof *t->attr);
    if (!t->blob || !t->off || !t->len || !t->scores || !t->attr) {
        dq_tok_free(t);
        return DQ_ERR(e, DQ_ENOMEM, "%s: out of memory", path);
    }
    *tok = t;
    return DQ_OK;
}

void tok_set_piece(dq_tokenizer *t, int id, const char *s, size_t len, size_t *blob_used) {
    t->off[id] = (uint32_t)*blob_used;
    t->len[id] = (uint32_t)len;
    if (len) memcpy(t->blob + *blob_used, s, len);
    t->blob[*blob_used + len] = 0;
    *blob_used += len + 1;
}

int tok_lookup(const dq_tokenizer *t, const char *s, size_t len) {
    if (!t->hash) return -1;
    uint32_t i = hash_bytes(s, len) & t->hmask;
    for (;;) {
        int32_t v = t->hash[i];
        if (!v) return -1;
        int id = v - 1;
        if (t->len[id] == len && memcmp(t->blob + t->off[id], s, len) == 0) return id;
        i = (i + 1) & t->hmask;
    }
}

static int merge_rank(const dq_tokenizer *t, int32_t a, int32_t b) {
    if (!t->mhash_key) return -1;
    uint64_t key = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
    uint32_t i = hash_pair(key) & t->mmask;
    for (;;) {
        uint64_t k = t->mhash_key[i];
        if (!k) return -1;
        if (k == key) return t->mhash_rank[i];
        i = (i + 1) & t->mmask;
    }
}

static int cmp_special(const void *a, const void *b, void *ctx) {
    const dq_tokenizer *t = ctx;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    if (t->len[x] != t->len[y]) return t->len[x] > t->len[y] ? -1 : 1;
    return x < y ? -1 : x > y;
}

static const char *const eog_names[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
                                        "<|eom_id|>", "<EOT>", "<|end_of_text|>", "</s>", NULL};

static int id_ok(const dq_tokenizer *t, int id) { return id >= -1 && id < t->n_vocab; }

static int spm_mergeable(const dq_tokenizer *t, int id) {
    return id >= 0 && (t->attr[id] == TOKA_NORMAL || t->attr[id] == TOKA_USER || t->attr[id] == TOKA_UNUSED);
}

static void pair_insert(uint64_t *keys, int32_t *vals, uint32_t mask, uint64_t key, int32_t v) {
    uint32_t i = hash_pair(key) & mask;
    while (keys[i] && keys[i] != key) i = (i + 1) & mask;
    if (!keys[i]) {
        keys[i] = key;
        vals[i] = v;
    }
}

// Score-mode helpers. Pair table: for every mergeable piece and every split of it into two
// pieces (split at character boundaries), (left id, right id) -> piece id. Symbols in the
// merge engine are always pieces (or unknown characters, handled by string lookup), so this
// answers "is left+right a mergeable piece" without hashing strings.
// Barriers: an ASCII character that occurs in no mergeable piece longer than one byte (and
// whose byte piece is in no merge) can never merge, so the text splits there exactly.
static int build_spm_pairs(dq_tokenizer *t, const char *path, dq_err *e) {
    int n = t->n_vocab;
    for (int c = 0; c < 128; c++) {
        t->ascii_id[c] = tok_lookup(t, (const char[]){(char)c}, 1);
        t->barrier[c] = 1;
    }
    free(t->phash_key);
    free(t->phash_val);
    t->phash_key = NULL;
    t->phash_val = NULL;
    if (t->type != DQ_TOK_SPM) return DQ_OK;
    size_t npairs = 0;
    for (int id = 0; id < n; id++) {
        if (!spm_mergeable(t, id) || t->len[id] < 2) continue;
        const unsigned char *p = (const unsigned char *)t->blob + t->off[id];
        for (uint32_t k = 0; k < t->len[id]; k++) {
            if (p[k] < 128) t->barrier[p[k]] = 0;
            if (k > 0 && (p[k] & 0xC0) != 0x80) npairs++;
        }
    }
    for (int r = 0; r < t->n_merges; r++) {
        for (int c = 0; c < 128; c++)
            if (t->byte_id[c] == t->m_left[r] || t->byte_id[c] == t->m_right[r]) t->barrier[c] = 0;
    }
    t->split_ws = 1;
    for (int id = 0; id < n && t->split_ws; id++) {
        if (t->attr[id] == TOKA_CONTROL) continue;
        const unsigned char *p = (const unsigned char *)t->blob + t->off[id];
        for (uint32_t k = 1; k + 2 < t->len[id]; k++) {
            if (p[k] != 0xE2 || p[k + 1] != 0x96 || p[k + 2] != 0x81) continue;
            if (k < 3 || p[k - 3] != 0xE2 || p[k - 2] != 0x96 || p[k - 1] != 0x81) t->split_ws = 0;
        }
    }
    if (t->n_merges > 0) return DQ_OK;  // rank mode uses the merge table
    uint32_t cap = 16;
    while (cap < npairs * 2 + 2) cap <<= 1;
    t->phash_key = calloc(cap, sizeof *t->phash_key);
    t->phash_val = malloc(cap * sizeof *t->phash_val);
    if (!t->phash_key || !t->phash_val) return DQ_ERR(e, DQ_ENOMEM, "%s: out of memory", path);
    t->pmask = cap - 1;
    for (int id = 0; id < n; id++) {
        if (!spm_mergeable(t, id) || t->len[id] < 2) continue;
        const char *p = t->blob + t->off[id];
        for (uint32_t k = 1; k < t->len[id]; k++) {
            if (((unsigned char)p[k] & 0xC0) == 0x80) continue;
            int a = tok_lookup(t, p, k), b = tok_lookup(t, p + k, t->len[id] - k);
            if (a < 0 || b < 0) continue;
            pair_insert(t->phash_key, t->phash_val, t->pmask, (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1, id);
        }
    }
    return DQ_OK;
}

static int spm_pair(const dq_tokenizer *t, int32_t a, int32_t b) {
    uint64_t key = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
    uint32_t i = hash_pair(key) & t->pmask;
    for (;;) {
        uint64_t k = t->phash_key[i];
        if (!k) return -1;
        if (k == key) return t->phash_val[i];
        i = (i + 1) & t->pmask;
    }
}

int tok_finalize(dq_tokenizer *t, const char *path, dq_err *e) {
    int n = t->n_vocab;
    int rc_pairs;
    if (!id_ok(t, t->bos) || !id_ok(t, t->eos) || !id_ok(t, t->unk) || !id_ok(t, t->pad) || !id_ok(t, t->sep) ||
        !id_ok(t, t->cls))
        return DQ_ERR(e, DQ_EFILE, "%s: special token id out of range (vocabulary of %d)", path, n);
    // validate pieces
    for (int i = 0; i < n; i++) {
        const char *p = t->blob + t->off[i];
        if (t->len[i] > TOK_MAX_PIECE)
            return DQ_ERR(e, DQ_EFILE, "%s: token %d: piece of %u bytes is longer than %d", path, i, t->len[i],
                          TOK_MAX_PIECE);
        if (t->attr[i] > TOKA_UNUSED) return DQ_ERR(e, DQ_EFILE, "%s: token %d: bad type %d", path, i, t->attr[i]);
        int raw = t->type == DQ_TOK_BPE && t->attr[i] == TOKA_NORMAL;  // byte-level pieces may split characters
        if (!raw && !tok_utf8_valid(p, t->len[i]))
            return DQ_ERR(e, DQ_EFILE, "%s: token %d: piece is not valid UTF-8", path, i);
        if (!isfinite(t->scores[i])) return DQ_ERR(e, DQ_EFILE, "%s: token %d: score is not finite", path, i);
    }
    // piece hash (first id wins for duplicates)
    uint32_t cap = 16;
    while (cap < (uint32_t)n * 2u) cap <<= 1;
    free(t->hash);
    t->hash = calloc(cap, sizeof *t->hash);
    if (!t->hash) return DQ_ERR(e, DQ_ENOMEM, "%s: out of memory", path);
    t->hmask = cap - 1;
    for (int id = 0; id < n; id++) {
        const char *p = t->blob + t->off[id];
        uint32_t i = hash_bytes(p, t->len[id]) & t->hmask;
        int dup = 0;
        while (t->hash[i]) {
            int o = t->hash[i] - 1;
            if (t->len[o] == t->len[id] && memcmp(t->blob + t->off[o], p, t->len[id]) == 0) {
                dup = 1;
                break;
            }
            i = (i + 1) & t->hmask;
        }
        if (!dup) t->hash[i] = id + 1;
    }
    // byte table: SPM <0xNN> pieces, BPE single-byte pieces
    for (int b = 0; b < 256; b++) t->byte_id[b] = -1;
    for (int id = n - 1; id >= 0; id--) {
        const char *p = t->blob + t->off[id];
        if (t->type == DQ_TOK_SPM && t->len[id] == 6 && p[0] == '<' && p[1] == '0' && p[2] == 'x' && p[5] == '>' &&
            (t->attr[id] == TOKA_BYTE || t->attr[id] == TOKA_NORMAL)) {
            char hx[3] = {p[3], p[4], 0};
            char *end;
            long v = strtol(hx, &end, 16);
            if (*end == 0 && isxdigit((unsigned char)p[3]) && isxdigit((unsigned char)p[4])) {
                t->byte_id[v] = id;
                t->attr[id] = TOKA_BYTE;
            }
        } else if (t->type == DQ_TOK_BPE && t->len[id] == 1 && t->attr[id] == TOKA_NORMAL) {
            t->byte_id[(unsigned char)p[0]] = id;
        }
    }
    // merges: resolve results, build the pair hash
    if (t->n_merges > 0) {
        free(t->m_result);
        t->m_result = malloc((size_t)t->n_merges * sizeof *t->m_result);
        uint32_t mc = 16;
        while (mc < (uint32_t)t->n_merges * 2u) mc <<= 1;
        free(t->mhash_key);
        free(t->mhash_rank);
        t->mhash_key = calloc(mc, sizeof *t->mhash_key);
        t->mhash_rank = malloc(mc * sizeof *t->mhash_rank);
        if (!t->m_result || !t->mhash_key || !t->mhash_rank) return DQ_ERR(e, DQ_ENOMEM, "%s: out of memory", path);
        t->mmask = mc - 1;
        char buf[2 * TOK_MAX_PIECE];
        for (int r = 0; r < t->n_merges; r++) {
            int a = t->m_left[r], b = t->m_right[r];
            if (a < 0 || a >= n || b < 0 || b >= n)
                return DQ_ERR(e, DQ_EFILE, "%s: merge %d names a token outside the vocabulary", path, r);
            memcpy(buf, t->blob + t->off[a], t->len[a]);
            memcpy(buf + t->len[a], t->blob + t->off[b], t->len[b]);
            int c = tok_lookup(t, buf, t->len[a] + t->len[b]);
            if (c < 0)
                return DQ_ERR(e, DQ_EFILE, "%s: merge %d (tokens %d + %d) makes a piece not in the vocabulary", path,
                              r, a, b);
            t->m_result[r] = c;
            uint64_t key = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
            uint32_t i = hash_pair(key) & t->mmask;
            while (t->mhash_key[i] && t->mhash_key[i] != key) i = (i + 1) & t->mmask;
            if (!t->mhash_key[i]) {  // a repeated merge keeps its first (best) rank
                t->mhash_key[i] = key;
                t->mhash_rank[i] = r;
            }
        }
    }
    if ((rc_pairs = build_spm_pairs(t, path, e))) return rc_pairs;
    // end-of-generation tokens
    if (t->n_eog == 0) {
        if (t->eos >= 0) t->eog[t->n_eog++] = t->eos;
        for (int k = 0; eog_names[k] && t->n_eog < TOK_MAX_EOG; k++) {
            int id = tok_lookup(t, eog_names[k], strlen(eog_names[k]));
            if (id < 0 || id == t->eos || t->attr[id] != TOKA_CONTROL) continue;
            t->eog[t->n_eog++] = id;
        }
    }
    for (int k = 0; k < t->n_eog; k++)
        if (t->eog[k] < 0 || t->eog[k] >= n) return DQ_ERR(e, DQ_EFILE, "%s: end-of-generation id out of range", path);
    // special tokens, longest first
    free(t->special);
    t->special = NULL;
    t->n_special = 0;
    for (int id = 0; id < n; id++)
        if ((t->attr[id] == TOKA_CONTROL || t->attr[id] == TOKA_USER) && t->len[id] > 0) t->n_special++;
    if (t->n_special) {
        t->special = malloc((size_t)t->n_special * sizeof *t->special);
        if (!t->special) return DQ_ERR(e, DQ_ENOMEM, "%s: out of memory", path);
        int k = 0;
        for (int id = 0; id < n; id++)
            if ((t->attr[id] == TOKA_CONTROL || t->attr[id] == TOKA_USER) && t->len[id] > 0) t->special[k++] = id;
        qsort_r(t->special, (size_t)t->n_special, sizeof *t->special, cmp_special, t);
    }
    memset(t->special_first, 0, sizeof t->special_first);
    for (int k = 0; k < t->n_special; k++) {
        int id = t->special[k];
        t->special_first[(unsigned char)t->blob[t->off[id]]] |= t->attr[id] == TOKA_USER ? 1 : 2;
    }
    return DQ_OK;
}

void dq_tok_free(dq_tokenizer *t) {
    if (!t) return;
    free(t->blob);
    free(t->off);
    free(t->len);
    free(t->scores);
    free(t->attr);
    free(t->hash);
    free(t->m_left);
    free(t->m_right);
    free(t->m_result);
    free(t->mhash_key);
    free(t->mhash_rank);
    free(t->special);
    free(t->phash_key);
    free(t->phash_val);
    free(t);
}

// ---------------------------------------------------------------------------
// llama2.c tokenizer.bin: int32 max_token_length, then per token float32 score,
// int32 length, bytes. Spaces are written as ' ' (SentencePiece's U+2581 replaced) and
// BOS/EOS as "\n<s>\n" / "\n</s>\n"; we store the SentencePiece forms.

static int32_t rd_i32(const uint8_t *p) {
    uint32_t v = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    int32_t r;
    memcpy(&r, &v, 4);
    return r;
}

static float rd_f32(const uint8_t *p) {
    uint32_t v = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    float f;
    memcpy(&f, &v, 4);
    return f;
}

static int load_llama2c(dq_tokenizer **tok, const uint8_t *d, size_t size, int hint, const char *path, dq_err *e) {
    *tok = NULL;
    if (size < 4) return DQ_ERR(e, DQ_EFILE, "%s: truncated llama2.c tokenizer (no header)", path);
    int32_t maxlen = rd_i32(d);
    if (maxlen <= 0 || maxlen > 4096)
        return DQ_ERR(e, DQ_EFILE, "%s: max_token_length %d out of range: not a llama2.c tokenizer.bin?", path,
                      maxlen);
    // pass 1: count and check records
    size_t pos = 4, text = 0;
    int n = 0;
    while (pos < size && (hint <= 0 || n < hint)) {
        if (size - pos < 8)
            return DQ_ERR(e, DQ_EFILE, "%s: truncated at byte %zu: token %d record header", path, pos, n);
        int32_t l = rd_i32(d + pos + 4);
        if (l < 0 || l > maxlen)
            return DQ_ERR(e, DQ_EFILE, "%s: byte %zu: token %d has length %d (max_token_length %d)", path, pos + 4,
                          n, l, maxlen);
        if (size - pos - 8 < (size_t)l)
            return DQ_ERR(e, DQ_EFILE, "%s: truncated at byte %zu: token %d needs %d bytes", path, pos + 8, n, l);
        pos += 8 + (size_t)l;
        text += (size_t)l * 3 + 1;
        if (++n > (1 << 24)) return DQ_ERR(e, DQ_EFILE, "%s: too many tokens", path);
    }
    if (hint > 0 && n < hint)
        return DQ_ERR(e, DQ_EFILE, "%s: truncated: %d tokens, the model's vocabulary has %d", path, n, hint);
    if (pos != size)
        return DQ_ERR(e, DQ_EFILE, "%s: %zu bytes left after %d tokens: vocabulary size mismatch?", path, size - pos,
                      n);
    if (n == 0) return DQ_ERR(e, DQ_EFILE, "%s: no tokens", path);
    dq_tokenizer *t;
    int rc = tok_alloc(&t, n, text, path, e);
    if (rc) return rc;
    t->type = DQ_TOK_SPM;
    t->flags = TOKF_ADD_BOS | TOKF_SPACE_PREFIX;
    pos = 4;
    size_t used = 0;
    char buf[4096 * 3];
    for (int i = 0; i < n; i++) {
        float sc = rd_f32(d + pos);
        int32_t l = rd_i32(d + pos + 4);
        const char *s = (const char *)d + pos + 8;
        pos += 8 + (size_t)l;
        size_t bl = 0;
        if (l == 5 && memcmp(s, "\n<s>\n", 5) == 0) {
            memcpy(buf, "<s>", 3);
            bl = 3;
        } else if (l == 6 && memcmp(s, "\n</s>\n", 6) == 0) {
            memcpy(buf, "</s>", 4);
            bl = 4;
        } else {
            for (int32_t k = 0; k < l; k++) {
                if (s[k] == ' ') {
                    memcpy(buf + bl, "\xE2\x96\x81", 3);
                    bl += 3;
                } else buf[bl++] = s[k];
            }
        }
        tok_set_piece(t, i, buf, bl, &used);
        t->scores[i] = sc;
    }
    if (n > 0 && t->len[0] == 5 && memcmp(t->blob, "<unk>", 5) == 0) {
        t->unk = 0;
        t->attr[0] = TOKA_UNKNOWN;
    }
    if (n > 2) {  // llama2.c: BOS 1, EOS 2 whatever their text
        t->bos = 1;
        t->eos = 2;
        t->attr[1] = t->attr[2] = TOKA_CONTROL;
    }
    rc = tok_finalize(t, path, e);
    if (!rc) {
        for (int b = 0; b < 256; b++)
            if (t->byte_id[b] >= 0) t->flags |= TOKF_BYTE_FALLBACK;
        // normalizer settings from a SentencePiece model next to it (tok512.bin -> tok512.model)
        size_t pl = strlen(path);
        const char *dot = strrchr(path, '.'), *slash = strrchr(path, '/');
        size_t stem = (dot && (!slash || dot > slash)) ? (size_t)(dot - path) : pl;
        char *mp = malloc(stem + 7);
        if (mp) {
            memcpy(mp, path, stem);
            memcpy(mp + stem, ".model", 7);
            uint8_t *md;
            size_t ms;
            if (strcmp(mp, path) != 0 && dq_read_file(mp, &md, &ms, NULL) == DQ_OK) {
                if (tok_is_spmodel(md, ms)) tok_spmodel_flags(md, ms, n, &t->flags);
                free(md);
            }
            free(mp);
        }
    }
    if (rc) {
        dq_tok_free(t);
        return rc;
    }
    *tok = t;
    return DQ_OK;
}

// ---------------------------------------------------------------------------
// serialized blob (docs/TOKENIZER_FORMAT.md): little-endian, versioned, bounds-checked

#define TOKBLOB_MAGIC "DQTK"
#define TOKBLOB_VERSION 1
#define TOKBLOB_HEADER 64

static void wr_u32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static void wr_f32(uint8_t *p, float f) {
    uint32_t v;
    memcpy(&v, &f, 4);
    wr_u32(p, v);
}

int dq_tok_serialize(const dq_tokenizer *t, uint8_t **buf, size_t *len, dq_err *e) {
    *buf = NULL;
    *len = 0;
    size_t n = TOKBLOB_HEADER;
    for (int i = 0; i < t->n_vocab; i++) n += 9 + t->len[i];
    n += (size_t)t->n_merges * 8 + (size_t)t->n_eog * 4;
    uint8_t *b = calloc(1, n);
    if (!b) return DQ_ERR(e, DQ_ENOMEM, "tokenizer: out of memory serializing");
    memcpy(b, TOKBLOB_MAGIC, 4);
    wr_u32(b + 4, TOKBLOB_VERSION);
    wr_u32(b + 8, TOKBLOB_HEADER);
    wr_u32(b + 12, (uint32_t)t->type);
    wr_u32(b + 16, (uint32_t)t->pre);
    wr_u32(b + 20, (uint32_t)t->flags);
    wr_u32(b + 24, (uint32_t)t->n_vocab);
    wr_u32(b + 28, (uint32_t)t->n_merges);
    wr_u32(b + 32, (uint32_t)t->bos);
    wr_u32(b + 36, (uint32_t)t->eos);
    wr_u32(b + 40, (uint32_t)t->unk);
    wr_u32(b + 44, (uint32_t)t->pad);
    wr_u32(b + 48, (uint32_t)t->sep);
    wr_u32(b + 52, (uint32_t)t->cls);
    wr_u32(b + 56, (uint32_t)t->n_eog);
    wr_u32(b + 60, (uint32_t)t->wpm_max_chars);
    size_t p = TOKBLOB_HEADER;
    for (int i = 0; i < t->n_vocab; i++) {
        wr_u32(b + p, t->len[i]);
        wr_f32(b + p + 4, t->scores[i]);
        b[p + 8] = t->attr[i];
        memcpy(b + p + 9, t->blob + t->off[i], t->len[i]);
        p += 9 + t->len[i];
    }
    for (int r = 0; r < t->n_merges; r++) {
        wr_u32(b + p, (uint32_t)t->m_left[r]);
        wr_u32(b + p + 4, (uint32_t)t->m_right[r]);
        p += 8;
    }
    for (int k = 0; k < t->n_eog; k++, p += 4) wr_u32(b + p, (uint32_t)t->eog[k]);
    DQ_ASSERT(p == n);
    *buf = b;
    *len = n;
    return DQ_OK;
}

int dq_tok_deserialize(dq_tokenizer **tok, const uint8_t *d, size_t size, const char *path, dq_err *e) {
    *tok = NULL;
    if (!path) path = "tokenizer";
    if (size < TOKBLOB_HEADER || memcmp(d, TOKBLOB_MAGIC, 4) != 0)
        return DQ_ERR(e, DQ_EFILE, "%s: tokenizer blob: bad magic or truncated header", path);
    uint32_t ver = (uint32_t)rd_i32(d + 4), hsz = (uint32_t)rd_i32(d + 8);
    if (ver != TOKBLOB_VERSION)
        return DQ_ERR(e, DQ_EFILE, "%s: tokenizer blob: version %u, this build reads version %d", path, ver,
                      TOKBLOB_VERSION);
    if (hsz < TOKBLOB_HEADER || hsz > size)
        return DQ_ERR(e, DQ_EFILE, "%s: tokenizer blob: header size %u out of range", path, hsz);
    int type = rd_i32(d + 12), pre = rd_i32(d + 16), flags = rd_i32(d + 20);
    int32_t nv = rd_i32(d + 24), nm = rd_i32(d + 28), ne = rd_i32(d + 56);
    if (type < DQ_TOK_SPM || type > DQ_TOK_WPM || pre < 0 || pre >= PRE_COUNT)
        return DQ_ERR(e, DQ_EFILE, "%s: tokenizer blob: unknown tokenizer type %d / pre-tokenizer %d", path, type,
                      pre);
    if (nv <= 0 || nm < 0 || ne < 0 || ne > TOK_MAX_EOG)
        return DQ_ERR(e, DQ_EFILE, "%s: tokenizer blob: bad counts (vocab %d, merges %d, eog %d)", path, nv, nm, ne);
    // pass 1: bounds
    size_t p = hsz, text = 0;
    for (int32_t i = 0; i < nv; i++) {
        if (!dq_range_ok(p, 9, size))
            return DQ_ERR(e, DQ_EFILE, "%s: tokenizer blob: truncated at token %d of %d", path, i, nv);
        uint32_t l = (uint32_t)rd_i32(d + p);
        if (l > TOK_MAX_PIECE || !dq_range_ok(p + 9, l, size))
            return DQ_ERR(e, DQ_EFILE, "%s: tokenizer blob: token %d: length %u out of range", path, i, l);
        p += 9 + l;
        text += l + 1;
    }
    if (!dq_range_ok(p, (uint64_t)nm * 8 + (uint64_t)ne * 4, size) || p + (size_t)nm * 8 + (size_t)ne * 4 != size)
        return DQ_ERR(e, DQ_EFILE, "%s: tokenizer blob: size %zu does not match its counts", path, size);
    dq_tokenizer *t;
    int rc = tok_alloc(&t, nv, text, path, e);
    if (rc) return rc;
    t->type = type;
    t->pre = pre;
    t->flags = flags;
    t->bos = rd_i32(d + 32);
    t->eos = rd_i32(d + 36);
    t->unk = rd_i32(d + 40);
    t->pad = rd_i32(d + 44);
    t->sep = rd_i32(d + 48);
    t->cls = rd_i32(d + 52);
    t->wpm_max_chars = rd_i32(d + 60);
    p = hsz;
    size_t used = 0;
    for (int32_t i = 0; i < nv; i++) {
        uint32_t l = (uint32_t)rd_i32(d + p);
        t->scores[i] = rd_f32(d + p + 4);
        t->attr[i] = d[p + 8];
        tok_set_piece(t, i, (const char *)d + p + 9, l, &used);
        p += 9 + l;
    }
    if (nm > 0) {
        t->n_merges = nm;
        t->m_left = malloc((size_t)nm * sizeof *t->m_left);
        t->m_right = malloc((size_t)nm * sizeof *t->m_right);
        if (!t->m_left || !t->m_right) {
            dq_tok_free(t);
            return DQ_ERR(e, DQ_ENOMEM, "%s: out of memory", path);
        }
        for (int32_t r = 0; r < nm; r++, p += 8) {
            t->m_left[r] = rd_i32(d + p);
            t->m_right[r] = rd_i32(d + p + 4);
        }
    }
    t->n_eog = ne;
    for (int32_t k = 0; k < ne; k++, p += 4) t->eog[k] = rd_i32(d + p);
    if (t->wpm_max_chars <= 0) t->wpm_max_chars = 100;
    rc = tok_finalize(t, path, e);
    if (rc) {
        dq_tok_free(t);
        return rc;
    }
    *tok = t;
    return DQ_OK;
}

// ---------------------------------------------------------------------------
// loading by content

// A .dynq model (docs/FORMAT.md): header u64 tok_offset at 80, tok_size at 88, file size at 120.
// Only the header and the blob are read, not the weights.
static int load_dynq(dq_tokenizer **tok, FILE *f, const char *path, dq_err *e) {
    uint8_t h[256];
    if (fseek(f, 0, SEEK_END) != 0) return DQ_ERR(e, DQ_EFILE, "%s: cannot seek", path);
    long fsz = ftell(f);
    if (fsz < 256 || fseek(f, 0, SEEK_SET) != 0 || fread(h, 1, 256, f) != 256)
        return DQ_ERR(e, DQ_EFILE, "%s: truncated .dynq header", path);
    uint64_t off = 0, sz = 0;
    for (int i = 7; i >= 0; i--) {
        off = off << 8 | h[80 + i];
        sz = sz << 8 | h[88 + i];
    }
    if (!dq_range_ok(off, sz, (uint64_t)fsz) || sz > (1u << 30))
        return DQ_ERR(e, DQ_EFILE, "%s: tokenizer blob [%llu, +%llu) outside the file", path, (unsigned long long)off,
                      (unsigned long long)sz);
    uint8_t *b = malloc(sz ? sz : 1);
    if (!b) return DQ_ERR(e, DQ_ENOMEM, "%s: out of memory", path);
    int rc = DQ_OK;
    if (fseek(f, (long)off, SEEK_SET) != 0 || fread(b, 1, sz, f) != sz)
        rc = DQ_ERR(e, DQ_EFILE, "%s: cannot read the tokenizer blob", path);
    if (!rc) rc = dq_tok_deserialize(tok, b, sz, path, e);
    free(b);
    return rc;
}

int dq_tok_load(dq_tokenizer **tok, const char *path, int n_vocab_hint, dq_err *e) {
    *tok = NULL;
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {  // a Hugging Face model directory
        static const char *const names[] = {"tokenizer.json", "tokenizer.model"};
        for (int k = 0; k < 2; k++) {
            size_t pl = strlen(path);
            char *p = malloc(pl + 20);
            if (!p) return DQ_ERR(e, DQ_ENOMEM, "%s: out of memory", path);
            snprintf(p, pl + 20, "%s/%s", path, names[k]);
            int rc = stat(p, &st) == 0 ? dq_tok_load(tok, p, n_vocab_hint, e) : -1;
            free(p);
            if (rc >= 0) return rc;
        }
        return DQ_ERR(e, DQ_EFILE, "%s: directory without tokenizer.json or tokenizer.model", path);
    }
    FILE *f = fopen(path, "rb");
    if (!f) return DQ_ERR(e, DQ_EFILE, "%s: cannot open: %s", path, strerror(errno));
    char magic[4] = {0};
    size_t got = fread(magic, 1, 4, f);
    if (got == 4 && memcmp(magic, "DYNQ", 4) == 0) {
        int rc = load_dynq(tok, f, path, e);
        fclose(f);
        return rc;
    }
    fclose(f);
    uint8_t *d;
    size_t size;
    int rc = dq_read_file(path, &d, &size, e);
    if (rc) return rc;
    size_t ws = 0;
    while (ws < size && (d[ws] == ' ' || d[ws] == '\t' || d[ws] == '\n' || d[ws] == '\r')) ws++;
    if (size >= 4 && memcmp(d, "GGUF", 4) == 0) rc = tok_load_gguf(tok, d, size, path, e);
    else if (size >= 4 && memcmp(d, TOKBLOB_MAGIC, 4) == 0) rc = dq_tok_deserialize(tok, d, size, path, e);
    else if (tok_is_spmodel(d, size)) rc = tok_load_spmodel(tok, d, size, path, e);
    else if (ws < size && d[ws] == '{') rc = tok_load_hf_json(tok, d, size, path, e);
    else rc = load_llama2c(tok, d, size, n_vocab_hint, path, e);
    free(d);
    if (!rc && n_vocab_hint > 0 && (*tok)->n_vocab > n_vocab_hint) {
        int nv = (*tok)->n_vocab;
        dq_tok_free(*tok);
        *tok = NULL;
        return DQ_ERR(e, DQ_EFILE, "%s: tokenizer has %d tokens, more than the model's vocabulary of %d", path, nv,
                      n_vocab_hint);
    }
    return rc;
}

// ---------------------------------------------------------------------------
// accessors

int dq_tok_type(const dq_tokenizer *t) { return t->type; }
int dq_tok_n_vocab(const dq_tokenizer *t) { return t->n_vocab; }
int dq_tok_bos(const dq_tokenizer *t) { return t->type == DQ_TOK_WPM && t->bos < 0 ? t->cls : t->bos; }
int dq_tok_eos(const dq_tokenizer *t) { return t->type == DQ_TOK_WPM && t->eos < 0 ? t->sep : t->eos; }
int dq_tok_add_bos(const dq_tokenizer *t) { return (t->flags & TOKF_ADD_BOS) != 0 && dq_tok_bos(t) >= 0; }
int dq_tok_add_eos(const dq_tokenizer *t) {
    return (t->flags & TOKF_ADD_EOS) != 0 && t->type != DQ_TOK_WPM && t->eos >= 0;
}
int dq_tok_find(const dq_tokenizer *t, const char *piece) { return tok_lookup(t, piece, strlen(piece)); }

int dq_tok_is_eog(const dq_tokenizer *t, int id) {
    for (int k = 0; k < t->n_eog; k++)
        if (t->eog[k] == id) return 1;
    return 0;
}

const char *dq_tok_piece(const dq_tokenizer *t, int id) {
    if (id < 0 || id >= t->n_vocab) return "";
    return t->blob + t->off[id];
}

// ---------------------------------------------------------------------------
// merge engine: a doubly linked list of symbols plus a binary heap of candidate pairs.
// Each merge pops the best pair, checks it is still current (both symbols unchanged and
// adjacent), fuses the right symbol into the left and pushes the two new neighbour pairs.
// O(n log n) for n initial symbols; stale heap entries are skipped lazily.

typedef struct {
    float score;      // higher first (rank mode stores -rank)
    int32_t left, right;
    uint32_t a, b;    // what the two symbols were (length or id) when the pair was pushed
    int32_t res;      // the merged piece's id
} mpair;

typedef struct {
    int32_t prev, next;
    uint32_t start, len;  // byte span (score mode)
    int32_t id;           // token id (rank mode)
} msym;

typedef struct {
    mpair *h;
    size_t n, cap;
} mheap;

static int better(const mpair *x, const mpair *y) {
    return x->score > y->score || (x->score == y->score && x->left < y->left);
}

static int heap_push(mheap *q, mpair v) {
    if (q->n == q->cap) {
        size_t nc = q->cap ? q->cap * 2 : 64;
        mpair *nh = realloc(q->h, nc * sizeof *nh);
        if (!nh) return DQ_ENOMEM;
        q->h = nh;
        q->cap = nc;
    }
    size_t i = q->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!better(&v, &q->h[p])) break;
        q->h[i] = q->h[p];
        i = p;
    }
    q->h[i] = v;
    return DQ_OK;
}

static mpair heap_pop(mheap *q) {
    mpair top = q->h[0], last = q->h[--q->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= q->n) break;
        if (c + 1 < q->n && better(&q->h[c + 1], &q->h[c])) c++;
        if (!better(&q->h[c], &last)) break;
        q->h[i] = q->h[c];
        i = c;
    }
    if (q->n) q->h[i] = last;
    return top;
}

// Score mode (SentencePiece BPE): any adjacent pair whose concatenation is a piece may
// merge; the highest-scoring merged piece goes first, leftmost on ties. Symbols carry the
// id of their text (-1 for a character outside the vocabulary, looked up by string).
static int spm_try_pair(const dq_tokenizer *t, const char *s, const msym *sy, int l, int r, mheap *q) {
    if (l < 0 || r < 0) return DQ_OK;
    int id = (sy[l].id >= 0 && sy[r].id >= 0) ? spm_pair(t, sy[l].id, sy[r].id)
                                              : tok_lookup(t, s + sy[l].start, sy[l].len + sy[r].len);
    if (!spm_mergeable(t, id)) return DQ_OK;
    mpair p = {t->scores[id], l, r, sy[l].len, sy[r].len, id};
    return heap_push(q, p);
}

// Workspace views: the heap and symbol arrays live in tok_ws between calls.
static int ws_syms(tok_ws *w, size_t n, msym **sy) {
    if (n > w->sy_cap) {
        msym *ns = realloc(w->sy, n * sizeof *ns);
        if (!ns) return DQ_ENOMEM;
        w->sy = ns;
        w->sy_cap = n;
    }
    *sy = w->sy;
    return DQ_OK;
}

static void ws_heap_get(tok_ws *w, mheap *q) { *q = (mheap){w->heap, 0, w->heap_cap}; }
static void ws_heap_put(tok_ws *w, const mheap *q) {
    w->heap = q->h;
    w->heap_cap = q->cap;
}

void tok_ws_free(tok_ws *w) {
    free(w->sy);
    free(w->heap);
    free(w->ids);
    memset(w, 0, sizeof *w);
}

static int spm_segment(const dq_tokenizer *t, tok_ws *w, const char *s, size_t n, tok_ids *out) {
    if (n == 0) return DQ_OK;
    msym *sy;
    if (ws_syms(w, n, &sy)) return DQ_ENOMEM;
    mheap qq, *q = &qq;
    ws_heap_get(w, q);
    int ns = 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        size_t l = c < 0x80 ? 1 : dq_utf8_len((const unsigned char *)s + i, n - i);
        if (!l) l = 1;  // an invalid byte stands alone and goes to byte fallback
        int id = c < 0x80 ? t->ascii_id[c] : tok_lookup(t, s + i, l);
        sy[ns] = (msym){ns - 1, ns + 1, (uint32_t)i, (uint32_t)l, id};
        ns++;
        i += l;
    }
    sy[ns - 1].next = -1;
    int rc = DQ_OK;
    for (int i = 0; i + 1 < ns && !rc; i++) rc = spm_try_pair(t, s, sy, i, i + 1, q);
    while (!rc && q->n) {
        mpair p = heap_pop(q);
        msym *L = &sy[p.left], *R = &sy[p.right];
        if (L->len == 0 || R->len == 0 || L->next != p.right || L->len != p.a || R->len != p.b) continue;
        L->len += R->len;
        L->id = p.res;
        R->len = 0;
        L->next = R->next;
        if (R->next >= 0) sy[R->next].prev = p.left;
        rc = spm_try_pair(t, s, sy, L->prev, p.left, q);
        if (!rc) rc = spm_try_pair(t, s, sy, p.left, L->next, q);
    }
    for (int i = 0; i >= 0 && !rc; i = sy[i].next) {
        if (sy[i].id >= 0) {
            rc = tok_ids_push(out, sy[i].id);
            continue;
        }
        for (uint32_t k = 0; k < sy[i].len && !rc; k++) {
            int b = t->byte_id[(unsigned char)s[sy[i].start + k]];
            rc = tok_ids_push(out, b >= 0 ? b : (t->unk >= 0 ? t->unk : 0));
        }
    }
    ws_heap_put(w, q);
    return rc;
}

// Rank mode (Hugging Face BPE, byte-level BPE): symbols are ids, pairs come from the
// merges list, lowest rank first, leftmost on ties.
static int rank_try_pair(const dq_tokenizer *t, const msym *sy, int l, int r, mheap *q) {
    if (l < 0 || r < 0) return DQ_OK;
    int rank = merge_rank(t, sy[l].id, sy[r].id);
    if (rank < 0) return DQ_OK;
    mpair p = {-(float)rank, l, r, (uint32_t)sy[l].id, (uint32_t)sy[r].id, t->m_result[rank]};
    return heap_push(q, p);
}

int tok_bpe_ranks(const dq_tokenizer *t, tok_ws *w, const int32_t *ids, size_t n, tok_ids *out) {
    if (n == 0) return DQ_OK;
    if (n == 1) return tok_ids_push(out, ids[0]);
    msym *sy;
    if (ws_syms(w, n, &sy)) return DQ_ENOMEM;
    for (size_t i = 0; i < n; i++) sy[i] = (msym){(int32_t)i - 1, (int32_t)i + 1, 0, 1, ids[i]};
    sy[n - 1].next = -1;
    mheap q;
    ws_heap_get(w, &q);
    int rc = DQ_OK;
    for (size_t i = 0; i + 1 < n && !rc; i++) rc = rank_try_pair(t, sy, (int)i, (int)i + 1, &q);
    while (!rc && q.n) {
        mpair p = heap_pop(&q);
        msym *L = &sy[p.left], *R = &sy[p.right];
        if (L->len == 0 || R->len == 0 || L->next != p.right || (uint32_t)L->id != p.a || (uint32_t)R->id != p.b)
            continue;
        L->id = p.res;
        L->len += R->len;
        R->len = 0;
        L->next = R->next;
        if (R->next >= 0) sy[R->next].prev = p.left;
        rc = rank_try_pair(t, sy, L->prev, p.left, &q);
        if (!rc) rc = rank_try_pair(t, sy, p.left, L->next, &q);
    }
    for (int i = 0; i >= 0 && !rc; i = sy[i].next) rc = tok_ids_push(out, sy[i].id);
    ws_heap_put(w, &q);
    return rc;
}

// ---------------------------------------------------------------------------
// encoding

// One segment of normalized SPM text: score merges, or rank merges over the characters'
// ids (bytes for characters outside the vocabulary: byte fallback).
static int spm_piece_run(const dq_tokenizer *t, tok_ws *w, const char *s, size_t n, tok_ids *out) {
    if (t->n_merges == 0) return spm_segment(t, w, s, n, out);
    if (n > w->ids_cap) {
        int32_t *ni = realloc(w->ids, n * sizeof *ni);
        if (!ni) return DQ_ENOMEM;
        w->ids = ni;
        w->ids_cap = n;
    }
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        size_t l = dq_utf8_len((const unsigned char *)s + i, n - i);
        if (!l) l = 1;
        int id = tok_lookup(t, s + i, l);
        if (id >= 0 && t->attr[id] != TOKA_BYTE) w->ids[k++] = id;
        else
            for (size_t j = 0; j < l; j++) {
                int b = t->byte_id[(unsigned char)s[i + j]];
                w->ids[k++] = b >= 0 ? b : (t->unk >= 0 ? t->unk : 0);
            }
        i += l;
    }
    return tok_bpe_ranks(t, w, w->ids, k, out);
}

// SentencePiece-style: spaces become U+2581, a leading one is added (dummy prefix) at the
// start of the text, then score merges (llama2.c/GGUF/.model) or rank merges (tokenizer.json).
// A tokenizer.json Metaspace pre-tokenizer adds no prefix to text that already starts with a
// space (Hugging Face: " Hi" is "▁Hi", where SentencePiece gives "▁▁Hi").
// The text is cut where merging provably cannot cross (barrier characters, word starts when
// no piece has U+2581 inside), which keeps the heap small; the result is the same.
static int encode_spm(const dq_tokenizer *t, const char *s, size_t n, int at_start, tok_ids *out) {
    if (n == 0) return DQ_OK;
    if (t->flags & TOKF_REMOVE_WS) {  // SentencePiece remove_extra_whitespaces (only U+0020 counts)
        while (n > 0 && s[0] == ' ') s++, n--;
        while (n > 0 && s[n - 1] == ' ') n--;
        if (n == 0) return DQ_OK;
    }
    int prefix = at_start && (t->flags & TOKF_SPACE_PREFIX);
    if ((t->flags & TOKF_PREFIX_UNLESS_SPACE) && s[0] == ' ') prefix = 0;
    size_t cap = n * 3 + 3;
    char *buf = malloc(cap);
    if (!buf) return DQ_ENOMEM;
    size_t m = 0;
    if (prefix) {
        memcpy(buf, "\xE2\x96\x81", 3);
        m = 3;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] == ' ') {
            if ((t->flags & TOKF_REMOVE_WS) && i > 0 && s[i - 1] == ' ') continue;
            memcpy(buf + m, "\xE2\x96\x81", 3);
            m += 3;
        } else buf[m++] = s[i];
    }
    tok_ws w = {0};
    int rc = DQ_OK;
    size_t a = 0;
    const unsigned char *u = (const unsigned char *)buf;
    for (size_t i = 0; i < m && !rc; i++) {
        if (u[i] < 0x80 && t->barrier[u[i]]) {
            rc = spm_piece_run(t, &w, buf + a, i - a, out);
            if (!rc) rc = spm_piece_run(t, &w, buf + i, 1, out);
            a = i + 1;
        } else if (t->split_ws && u[i] == 0xE2 && i > a && i + 2 < m && u[i + 1] == 0x96 && u[i + 2] == 0x81 &&
                   !(i >= 3 && u[i - 3] == 0xE2 && u[i - 2] == 0x96 && u[i - 1] == 0x81)) {
            rc = spm_piece_run(t, &w, buf + a, i - a, out);
            a = i;
        }
    }
    if (!rc) rc = spm_piece_run(t, &w, buf + a, m - a, out);
    tok_ws_free(&w);
    free(buf);
    return rc;
}

static int encode_text(const dq_tokenizer *t, const char *s, size_t n, int at_start, tok_ids *out) {
    if ((t->flags & TOKF_NFC) && n > 0) {
        char *norm;
        size_t nl;
        if (uc_nfc(s, n, &norm, &nl)) return DQ_ENOMEM;
        dq_tokenizer tmp = *t;  // same tables, without the flag: encode the normalized text
        tmp.flags &= ~TOKF_NFC;
        int rc = encode_text(&tmp, norm, nl, at_start, out);
        free(norm);
        return rc;
    }
    switch (t->type) {
    case DQ_TOK_SPM: return encode_spm(t, s, n, at_start, out);
    case DQ_TOK_BPE:
        if (at_start && n > 0 && s[0] != ' ' && (t->flags & TOKF_SPACE_PREFIX)) {  // ByteLevel add_prefix_space
            char *b = malloc(n + 1);
            if (!b) return DQ_ENOMEM;
            b[0] = ' ';
            memcpy(b + 1, s, n);
            int rc = tok_encode_bytelevel(t, b, n + 1, out);
            free(b);
            return rc;
        }
        return tok_encode_bytelevel(t, s, n, out);
    case DQ_TOK_WPM: return tok_encode_wordpiece(t, s, n, out);
    }
    return DQ_EFILE;
}

// Longest special/added token matching at s (USER tokens always, CONTROL only when allowed).
static int match_special(const dq_tokenizer *t, const char *s, size_t n, int allow_control) {
    if (!(t->special_first[(unsigned char)s[0]] & (allow_control ? 3 : 1))) return -1;
    for (int k = 0; k < t->n_special; k++) {
        int id = t->special[k];
        if (t->attr[id] == TOKA_CONTROL && !allow_control) continue;
        if (t->len[id] <= n && memcmp(s, t->blob + t->off[id], t->len[id]) == 0) return id;
    }
    return -1;
}

int dq_tok_encode(const dq_tokenizer *t, const char *text, size_t len, int flags, int32_t **ids, size_t *n_ids,
                  dq_err *e) {
    *ids = NULL;
    *n_ids = 0;
    if (len == 0) text = "";  // callers may pass (NULL, 0); pointer arithmetic on NULL is undefined
    tok_ids out = {0};
    int rc = DQ_OK;
    int bos = dq_tok_bos(t);
    if ((flags & DQ_TOK_ADD_BOS) && bos >= 0) rc = tok_ids_push(&out, bos);
    int allow_control = (flags & DQ_TOK_PARSE_SPECIAL) != 0;
    int any_special = 0;
    for (int k = 0; k < t->n_special && !any_special; k++)
        any_special = allow_control || t->attr[t->special[k]] == TOKA_USER;
    // A text segment "starts" (gets SentencePiece's leading space) at the start of the text
    // unless the caller continues earlier text (DQ_TOK_CONTINUE), and, for SentencePiece-style
    // vocabularies, after every special token, as llama.cpp and Hugging Face's Prepend
    // normalizer do (tokenizer.json Metaspace "first": at the start only).
    int start = !(flags & DQ_TOK_CONTINUE);
    int after_special = t->type == DQ_TOK_SPM && !(t->flags & TOKF_PREFIX_FIRST_ONLY);
    size_t seg = 0, i = 0;
    while (!rc && any_special && i < len) {
        int id = match_special(t, text + i, len - i, allow_control);
        if (id < 0) {
            i++;
            continue;
        }
        rc = encode_text(t, text + seg, i - seg, start, &out);
        if (!rc) rc = tok_ids_push(&out, id);
        i += t->len[id];
        seg = i;
        start = after_special;
    }
    if (!rc && (seg < len || len == 0)) rc = encode_text(t, text + seg, len - seg, start, &out);
    if (!rc && t->type == DQ_TOK_WPM && (flags & DQ_TOK_ADD_BOS) && t->sep >= 0) rc = tok_ids_push(&out, t->sep);
    if (!rc && t->type != DQ_TOK_WPM && (flags & DQ_TOK_ADD_EOS) && t->eos >= 0) rc = tok_ids_push(&out, t->eos);
    if (rc) {
        free(out.v);
        return DQ_ERR(e, rc == DQ_ENOMEM ? DQ_ENOMEM : rc, "tokenizer: %s while encoding",
                      rc == DQ_ENOMEM ? "out of memory" : "internal error");
    }
    *ids = out.v;
    *n_ids = out.n;
    return DQ_OK;
}

// ---------------------------------------------------------------------------
// streaming decoder

void dq_detok_init(dq_detok *d, const dq_tokenizer *tok) {
    memset(d, 0, sizeof *d);
    d->tok = tok;
    d->prev = -1;
}

// Feeds bytes through the UTF-8 assembler: complete characters (and bytes that can never
// start or continue a character) go out; an incomplete character waits in d->pend.
static size_t emit_bytes(dq_detok *d, const unsigned char *b, size_t n, char *out, size_t cap) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = b[i];
        if (d->npend > 0) {
            if ((c & 0xC0) == 0x80) {
                d->pend[d->npend++] = c;
                size_t need = dq_utf8_len(d->pend, (size_t)d->npend);
                unsigned lead = d->pend[0];
                size_t want = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
                if (need || (size_t)d->npend >= want) {  // complete (or complete but invalid): out it goes
                    for (int k = 0; k < d->npend && o < cap; k++) out[o++] = (char)d->pend[k];
                    d->npend = 0;
                }
                continue;
            }
            for (int k = 0; k < d->npend && o < cap; k++) out[o++] = (char)d->pend[k];  // broken sequence
            d->npend = 0;
        }
        if (c >= 0xC2 && c <= 0xF4) {
            d->pend[d->npend++] = c;
        } else if (o < cap) {
            out[o++] = (char)c;
        }
    }
    return o;
}

size_t dq_detok_push(dq_detok *d, int id, char *out, size_t cap) {
    const dq_tokenizer *t = d->tok;
    int prev = d->prev;
    d->prev = id;
    if (id < 0 || id >= t->n_vocab) return 0;
    const unsigned char *p = (const unsigned char *)t->blob + t->off[id];
    size_t n = t->len[id];
    unsigned char buf[TOK_MAX_PIECE + 8];
    size_t m = 0;
    switch (t->attr[id]) {
    case TOKA_CONTROL: return 0;
    case TOKA_BYTE:
        if (t->type == DQ_TOK_SPM) {
            char hx[3] = {(char)p[3], (char)p[4], 0};
            buf[0] = (unsigned char)strtol(hx, NULL, 16);
            return emit_bytes(d, buf, 1, out, cap);
        }
        break;
    default: break;
    }
    if (t->type == DQ_TOK_SPM) {
        int strip = (prev < 0 || prev == t->bos) && (t->flags & TOKF_SPACE_PREFIX);
        for (size_t i = 0; i < n; i++) {
            if (i + 2 < n && p[i] == 0xE2 && p[i + 1] == 0x96 && p[i + 2] == 0x81) {
                i += 2;
                if (strip && m == 0) {
                    strip = 0;
                    continue;
                }
                buf[m++] = ' ';
            } else buf[m++] = p[i];
            strip = 0;
        }
    } else if (t->type == DQ_TOK_WPM) {
        if (n >= 2 && p[0] == '#' && p[1] == '#' && t->attr[id] == TOKA_NORMAL) {
            p += 2;
            n -= 2;
        } else if (prev >= 0 && prev < t->n_vocab && t->attr[prev] != TOKA_CONTROL) {
            buf[m++] = ' ';
        }
        memcpy(buf + m, p, n);
        m += n;
    } else {
        memcpy(buf, p, n);
        m = n;
    }
    return emit_bytes(d, buf, m, out, cap);
}

size_t dq_detok_flush(dq_detok *d, char *out, size_t cap) {
    size_t o = 0;
    for (int k = 0; k < d->npend && o < cap; k++) out[o++] = (char)d->pend[k];
    d->npend = 0;
    return o;
}
