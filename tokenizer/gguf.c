// tokenizer/gguf.c: GGUF v2/v3 reader (see gguf.h). Every read goes through a cursor that
// checks the remaining length first; counts are checked against what the bytes left could
// possibly hold before anything is allocated for them.
#include "gguf.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    const uint8_t *d;
    size_t n, pos;
    const char *path;
    dq_err *e;
} cur;

static int cerr(cur *c, const char *what) {
    return DQ_ERR(c->e, DQ_EFILE, "%s: GGUF: byte %zu: %s", c->path, c->pos, what);
}

static uint64_t le(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static int rd(cur *c, int n, uint64_t *v, const char *what) {
    *v = 0;
    if (c->n - c->pos < (size_t)n) return cerr(c, what);
    *v = le(c->d + c->pos, n);
    c->pos += (size_t)n;
    return DQ_OK;
}

static const int scalar_size[DQ_GGUF_NTYPES] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

// Skips one value of type t (arrays recurse up to depth 4); records string offsets if asked.
static int skip_value(cur *c, uint32_t t, int depth) {
    uint64_t v;
    if (t >= DQ_GGUF_NTYPES) return cerr(c, "unknown metadata value type");
    if (t == DQ_GGUF_STRING) {
        int rc = rd(c, 8, &v, "truncated string length");
        if (rc) return rc;
        if (v > c->n - c->pos) return cerr(c, "string length past end of file");
        c->pos += (size_t)v;
        return DQ_OK;
    }
    if (t == DQ_GGUF_ARRAY) {
        if (depth >= 4) return cerr(c, "arrays nested too deeply");
        uint64_t at, an;
        int rc = rd(c, 4, &at, "truncated array type");
        if (!rc) rc = rd(c, 8, &an, "truncated array count");
        if (rc) return rc;
        if (at >= DQ_GGUF_NTYPES) return cerr(c, "unknown array element type");
        if (at != DQ_GGUF_STRING && at != DQ_GGUF_ARRAY) {
            uint64_t bytes;
            if (__builtin_mul_overflow(an, (uint64_t)scalar_size[at], &bytes) || bytes > c->n - c->pos)
                return cerr(c, "array past end of file");
            c->pos += (size_t)bytes;
            return DQ_OK;
        }
        if (an > (c->n - c->pos) / 8) return cerr(c, "array count larger than the file");
        for (uint64_t i = 0; i < an; i++)
            if ((rc = skip_value(c, (uint32_t)at, depth + 1))) return rc;
        return DQ_OK;
    }
    if (c->n - c->pos < (size_t)scalar_size[t]) return cerr(c, "truncated value");
    c->pos += (size_t)scalar_size[t];
    return DQ_OK;
}

static int read_name(cur *c, const char **out, const char *what) {
    uint64_t l;
    int rc = rd(c, 8, &l, what);
    if (rc) return rc;
    if (l > c->n - c->pos) return cerr(c, "name length past end of file");
    if (l > 65535) return cerr(c, "name longer than 65535 bytes");
    char *s = malloc(l + 1);  // names are few; one allocation each keeps this simple
    if (!s) return DQ_ERR(c->e, DQ_ENOMEM, "%s: out of memory", c->path);
    memcpy(s, c->d + c->pos, l);
    s[l] = 0;
    c->pos += (size_t)l;
    *out = s;
    return DQ_OK;
}

void dq_gguf_free(dq_gguf *g) {
    if (!g) return;
    for (uint64_t i = 0; g->kv && i < g->n_kv; i++) {
        free((char *)g->kv[i].key);
        free(g->kv[i].str_off);
    }
    for (uint64_t i = 0; g->tensors && i < g->n_tensors; i++) free((char *)g->tensors[i].name);
    free(g->kv);
    free(g->tensors);
    memset(g, 0, sizeof *g);
}

int dq_gguf_parse(dq_gguf *g, const uint8_t *data, size_t size, const char *path, dq_err *e) {
    memset(g, 0, sizeof *g);
    g->base = data;
    g->size = size;
    g->alignment = 32;
    cur c = {data, size, 0, path, e};
    if (size < 4 || memcmp(data, "GGUF", 4) != 0) return DQ_ERR(e, DQ_EFILE, "%s: not a GGUF file (magic)", path);
    c.pos = 4;
    uint64_t v, nt, nkv;
    int rc = rd(&c, 4, &v, "truncated header");
    if (rc) return rc;
    if (v != 2 && v != 3)
        return DQ_ERR(e, DQ_EFILE, "%s: GGUF version %llu is not supported (2 and 3 are)", path, (unsigned long long)v);
    g->version = (uint32_t)v;
    if ((rc = rd(&c, 8, &nt, "truncated header")) || (rc = rd(&c, 8, &nkv, "truncated header"))) return rc;
    // each kv needs >= 12 bytes, each tensor info >= 24: reject counts the file cannot hold
    if (nkv > (size - c.pos) / 12 || nt > (size - c.pos) / 24)
        return DQ_ERR(e, DQ_EFILE, "%s: GGUF: %llu tensors / %llu metadata keys cannot fit in %zu bytes", path,
                      (unsigned long long)nt, (unsigned long long)nkv, size);
    g->kv = calloc(nkv ? nkv : 1, sizeof *g->kv);
    g->tensors = calloc(nt ? nt : 1, sizeof *g->tensors);
    if (!g->kv || !g->tensors) {
        dq_gguf_free(g);
        return DQ_ERR(e, DQ_ENOMEM, "%s: out of memory", path);
    }
    for (uint64_t i = 0; i < nkv; i++) {
        dq_gguf_kv *kv = &g->kv[i];
        rc = read_name(&c, &kv->key, "truncated metadata key");
        if (rc) goto fail;
        g->n_kv = i + 1;
        uint64_t t;
        if ((rc = rd(&c, 4, &t, "truncated value type"))) goto fail;
        if (t >= DQ_GGUF_NTYPES) {
            rc = cerr(&c, "unknown metadata value type");
            goto fail;
        }
        kv->type = (uint32_t)t;
        if (t == DQ_GGUF_STRING) {
            if ((rc = rd(&c, 8, &kv->str_len, "truncated string length"))) goto fail;
            if (kv->str_len > size - c.pos) {
                rc = cerr(&c, "string length past end of file");
                goto fail;
            }
            kv->data = data + c.pos;
            c.pos += (size_t)kv->str_len;
        } else if (t == DQ_GGUF_ARRAY) {
            uint64_t at, an;
            if ((rc = rd(&c, 4, &at, "truncated array type")) || (rc = rd(&c, 8, &an, "truncated array count")))
                goto fail;
            if (at >= DQ_GGUF_NTYPES) {
                rc = cerr(&c, "unknown array element type");
                goto fail;
            }
            kv->arr_type = (uint32_t)at;
            kv->arr_n = an;
            kv->data = data + c.pos;
            if (at == DQ_GGUF_STRING) {
                if (an > (size - c.pos) / 8) {
                    rc = cerr(&c, "string array count larger than the file");
                    goto fail;
                }
                kv->str_off = malloc((an ? an : 1) * sizeof *kv->str_off);
                if (!kv->str_off) {
                    rc = DQ_ERR(e, DQ_ENOMEM, "%s: out of memory", path);
                    goto fail;
                }
                size_t start = c.pos;
                for (uint64_t k = 0; k < an; k++) {
                    kv->str_off[k] = c.pos - start;
                    if ((rc = skip_value(&c, DQ_GGUF_STRING, 1))) goto fail;
                }
            } else {
                c.pos -= 12;  // let skip_value re-read type and count
                if ((rc = skip_value(&c, DQ_GGUF_ARRAY, 0))) goto fail;
            }
        } else {
            kv->data = data + c.pos;
            if ((rc = skip_value(&c, (uint32_t)t, 0))) goto fail;
        }
    }
    int64_t al;
    if (dq_gguf_find(g, "general.alignment")) {
        if (!dq_gguf_get_int(g, "general.alignment", &al) || al <= 0 || al > (1 << 20) || (al & (al - 1))) {
            rc = DQ_ERR(e, DQ_EFILE, "%s: GGUF: general.alignment must be a power of two up to 1 MiB", path);
            goto fail;
        }
        g->alignment = (uint64_t)al;
    }
    for (uint64_t i = 0; i < nt; i++) {
        dq_gguf_tensor *ti = &g->tensors[i];
        if ((rc = read_name(&c, &ti->name, "truncated tensor name"))) goto fail;
        g->n_tensors = i + 1;
        uint64_t nd, t;
        if ((rc = rd(&c, 4, &nd, "truncated tensor info"))) goto fail;
        if (nd == 0 || nd > 4) {
            rc = cerr(&c, "tensor with 0 or more than 4 dimensions");
            goto fail;
        }
        ti->n_dims = (uint32_t)nd;
        uint64_t ne = 1;
        for (uint64_t k = 0; k < nd; k++) {
            if ((rc = rd(&c, 8, &ti->dims[k], "truncated tensor dims"))) goto fail;
            if (__builtin_mul_overflow(ne, ti->dims[k], &ne)) {
                rc = cerr(&c, "tensor element count overflows");
                goto fail;
            }
        }
        if ((rc = rd(&c, 4, &t, "truncated tensor type")) || (rc = rd(&c, 8, &ti->offset, "truncated tensor offset")))
            goto fail;
        ti->type = (uint32_t)t;
        ti->nbytes = dq_gguf_type_size(ti->type, ne);
        if (ti->offset % g->alignment) {
            rc = DQ_ERR(e, DQ_EFILE, "%s: GGUF: tensor %s: offset not aligned to %llu", path, ti->name,
                        (unsigned long long)g->alignment);
            goto fail;
        }
    }
    uint64_t doff = ((uint64_t)c.pos + g->alignment - 1) / g->alignment * g->alignment;
    g->data_offset = doff;
    for (uint64_t i = 0; i < nt; i++) {
        dq_gguf_tensor *ti = &g->tensors[i];
        if (doff > size || !dq_range_ok(ti->offset, ti->nbytes, size - doff)) {
            rc = DQ_ERR(e, DQ_EFILE, "%s: GGUF: tensor %s: data past end of file", path, ti->name);
            goto fail;
        }
    }
    return DQ_OK;
fail:
    dq_gguf_free(g);
    return rc;
}

const dq_gguf_kv *dq_gguf_find(const dq_gguf *g, const char *key) {
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (strcmp(g->kv[i].key, key) == 0) return &g->kv[i];
    return NULL;
}

static int scalar_int(uint32_t t, const uint8_t *p, int64_t *out) {
    switch (t) {
    case DQ_GGUF_U8: *out = p[0]; return 1;
    case DQ_GGUF_I8: *out = (int8_t)p[0]; return 1;
    case DQ_GGUF_U16: *out = (uint16_t)le(p, 2); return 1;
    case DQ_GGUF_I16: *out = (int16_t)(uint16_t)le(p, 2); return 1;
    case DQ_GGUF_U32: *out = (uint32_t)le(p, 4); return 1;
    case DQ_GGUF_I32: *out = (int32_t)(uint32_t)le(p, 4); return 1;
    case DQ_GGUF_I64: *out = (int64_t)le(p, 8); return 1;
    case DQ_GGUF_U64: {
        uint64_t v = le(p, 8);
        if (v > INT64_MAX) return 0;
        *out = (int64_t)v;
        return 1;
    }
    default: return 0;
    }
}

static int scalar_float(uint32_t t, const uint8_t *p, double *out) {
    if (t == DQ_GGUF_F32) {
        uint32_t u = (uint32_t)le(p, 4);
        float f;
        memcpy(&f, &u, 4);
        *out = f;
        return 1;
    }
    if (t == DQ_GGUF_F64) {
        uint64_t u = le(p, 8);
        memcpy(out, &u, 8);
        return 1;
    }
    return 0;
}

int dq_gguf_get_int(const dq_gguf *g, const char *key, int64_t *out) {
    const dq_gguf_kv *kv = dq_gguf_find(g, key);
    return kv && scalar_int(kv->type, kv->data, out);
}

int dq_gguf_get_float(const dq_gguf *g, const char *key, double *out) {
    const dq_gguf_kv *kv = dq_gguf_find(g, key);
    return kv && scalar_float(kv->type, kv->data, out);
}

int dq_gguf_get_bool(const dq_gguf *g, const char *key, int *out) {
    const dq_gguf_kv *kv = dq_gguf_find(g, key);
    if (!kv || kv->type != DQ_GGUF_BOOL) return 0;
    *out = kv->data[0] != 0;
    return 1;
}

int dq_gguf_get_str(const dq_gguf *g, const char *key, const char **s, uint64_t *len) {
    const dq_gguf_kv *kv = dq_gguf_find(g, key);
    if (!kv || kv->type != DQ_GGUF_STRING) return 0;
    *s = (const char *)kv->data;
    *len = kv->str_len;
    return 1;
}

int dq_gguf_arr_str(const dq_gguf_kv *kv, uint64_t i, const char **s, uint64_t *len) {
    if (kv->type != DQ_GGUF_ARRAY || kv->arr_type != DQ_GGUF_STRING || i >= kv->arr_n) return 0;
    const uint8_t *p = kv->data + kv->str_off[i];
    *len = le(p, 8);
    *s = (const char *)p + 8;
    return 1;
}

int dq_gguf_arr_int(const dq_gguf_kv *kv, uint64_t i, int64_t *out) {
    if (kv->type != DQ_GGUF_ARRAY || i >= kv->arr_n || kv->arr_type >= DQ_GGUF_NTYPES) return 0;
    int sz = scalar_size[kv->arr_type];
    return sz && scalar_int(kv->arr_type, kv->data + i * (uint64_t)sz, out);
}

int dq_gguf_arr_float(const dq_gguf_kv *kv, uint64_t i, double *out) {
    if (kv->type != DQ_GGUF_ARRAY || i >= kv->arr_n || kv->arr_type >= DQ_GGUF_NTYPES) return 0;
    int sz = scalar_size[kv->arr_type];
    return sz && scalar_float(kv->arr_type, kv->data + i * (uint64_t)sz, out);
}

uint64_t dq_gguf_type_size(uint32_t t, uint64_t n) {
    // ggml types: {block elements, block bytes}
    static const struct {
        uint32_t type, blk, bytes;
    } tab[] = {
        {0, 1, 4},      {1, 1, 2},      {2, 32, 18},    {3, 32, 20},    {6, 32, 22},  {7, 32, 24},
        {8, 32, 34},    {9, 32, 36},    {10, 256, 84},  {11, 256, 110}, {12, 256, 144}, {13, 256, 176},
        {14, 256, 210}, {15, 256, 292}, {24, 1, 1},     {25, 1, 2},     {26, 1, 4},   {27, 1, 8},
        {28, 1, 8},     {30, 1, 2},
    };
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++) {
        if (tab[i].type != t) continue;
        if (n % tab[i].blk) return 0;
        uint64_t r;
        if (__builtin_mul_overflow(n / tab[i].blk, (uint64_t)tab[i].bytes, &r)) return 0;
        return r;
    }
    return 0;
}
