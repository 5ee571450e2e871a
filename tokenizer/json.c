// tokenizer/json.c: a strict RFC 8259 JSON parser for tokenizer.json, config.json and
// safetensors headers. Recursive descent with a nesting limit; every node, key and string
// lives in one arena owned by the root, so dq_json_free is a walk over a block list.
// Strict means: no comments, no trailing commas, no leading zeros, no control characters
// or invalid UTF-8 inside strings, no lone surrogates, nothing after the top-level value.
#include "json.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define JSON_MAX_DEPTH 512

// ---------------------------------------------------------------------------
// arena: bump allocation from a linked list of blocks

typedef struct arena_block {
    struct arena_block *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
} arena_block;

typedef struct {
    dq_json root;        // first member: dq_json_free casts the root back to this
    arena_block *blocks;
} json_doc;

static void *arena_get(json_doc *d, size_t n) {
    n = (n + 15) & ~(size_t)15;
    arena_block *b = d->blocks;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > (1u << 20) ? n : (1u << 20);
        b = malloc(sizeof *b + cap);
        if (!b) return NULL;
        b->cap = cap;
        b->used = 0;
        b->next = d->blocks;
        d->blocks = b;
    }
    void *p = b->data + b->used;
    b->used += n;
    return p;
}

// ---------------------------------------------------------------------------
// parser state; values under construction wait on a growable stack until their
// container closes, then move into the arena in one piece

typedef struct {
    const unsigned char *s;
    size_t n, pos;
    const char *what;
    dq_err *e;
    json_doc *doc;
    dq_json *vals;          // pending values (stack)
    size_t nvals, capvals;
    const char **keys;      // pending object keys (stack)
    size_t *klens;
    size_t nkeys, capkeys;
    char *sbuf;             // scratch for string decoding
    size_t sbuf_cap;
} parser;

static int perr(parser *p, const char *msg) {
    return DQ_ERR(p->e, DQ_EFILE, "%s: byte %zu: %s", p->what, p->pos, msg);
}

static int oom(parser *p) { return DQ_ERR(p->e, DQ_ENOMEM, "%s: out of memory parsing JSON", p->what); }

static void skip_ws(parser *p) {
    while (p->pos < p->n) {
        unsigned char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->pos++;
    }
}

static int push_val(parser *p, const dq_json *v) {
    if (p->nvals == p->capvals) {
        size_t nc = p->capvals ? p->capvals * 2 : 64;
        dq_json *nv = realloc(p->vals, nc * sizeof *nv);
        if (!nv) return oom(p);
        p->vals = nv;
        p->capvals = nc;
    }
    p->vals[p->nvals++] = *v;
    return DQ_OK;
}

static int push_key(parser *p, const char *k, size_t len) {
    if (p->nkeys == p->capkeys) {
        size_t nc = p->capkeys ? p->capkeys * 2 : 64;
        const char **nk = realloc(p->keys, nc * sizeof *nk);
        if (!nk) return oom(p);
        p->keys = nk;
        size_t *nl = realloc(p->klens, nc * sizeof *nl);
        if (!nl) return oom(p);
        p->klens = nl;
        p->capkeys = nc;
    }
    p->keys[p->nkeys] = k;
    p->klens[p->nkeys++] = len;
    return DQ_OK;
}

static int sbuf_put(parser *p, size_t *len, const void *src, size_t n) {
    if (p->sbuf_cap - *len < n + 1) {
        size_t nc = p->sbuf_cap ? p->sbuf_cap : 256;
        while (nc - *len < n + 1) {
            if (nc > SIZE_MAX / 2) return oom(p);
            nc *= 2;
        }
        char *nb = realloc(p->sbuf, nc);
        if (!nb) return oom(p);
        p->sbuf = nb;
        p->sbuf_cap = nc;
    }
    memcpy(p->sbuf + *len, src, n);
    *len += n;
    return DQ_OK;
}

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int read_u4(parser *p, unsigned *out) {
    if (p->n - p->pos < 4) return perr(p, "truncated \\u escape");
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(p->s[p->pos + i]);
        if (h < 0) return perr(p, "bad hex digit in \\u escape");
        v = v * 16 + (unsigned)h;
    }
    p->pos += 4;
    *out = v;
    return DQ_OK;
}


static size_t put_utf8(unsigned cp, unsigned char *o) {
    if (cp < 0x80) { o[0] = (unsigned char)cp; return 1; }
    if (cp < 0x800) { o[0] = (unsigned char)(0xC0 | (cp >> 6)); o[1] = (unsigned char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

// Parses a string starting at the opening quote; result copied into the arena.
static int parse_string(parser *p, const char **out, size_t *out_len) {
    p->pos++;  // opening quote
    size_t len = 0;
    for (;;) {
        size_t start = p->pos;
        // fast run of plain bytes
        while (p->pos < p->n) {
            unsigned char c = p->s[p->pos];
            if (c == '"' || c == '\\' || c < 0x20 || c >= 0x80) break;
            p->pos++;
        }
        if (p->pos > start) {
            int rc = sbuf_put(p, &len, p->s + start, p->pos - start);
            if (rc) return rc;
        }
        if (p->pos >= p->n) return perr(p, "unterminated string");
        unsigned char c = p->s[p->pos];
        if (c == '"') {
            p->pos++;
            break;
        }
        if (c < 0x20) return perr(p, "control character in string");
        if (c >= 0x80) {
            size_t l = dq_utf8_len(p->s + p->pos, p->n - p->pos);
            if (!l) return perr(p, "invalid UTF-8 in string");
            int rc = sbuf_put(p, &len, p->s + p->pos, l);
            if (rc) return rc;
            p->pos += l;
            continue;
        }
        // escape
        p->pos++;
        if (p->pos >= p->n) return perr(p, "unterminated escape");
        char esc = (char)p->s[p->pos++];
        unsigned char ob[4];
        size_t ol = 1;
        switch (esc) {
        case '"': ob[0] = '"'; break;
        case '\\': ob[0] = '\\'; break;
        case '/': ob[0] = '/'; break;
        case 'b': ob[0] = '\b'; break;
        case 'f': ob[0] = '\f'; break;
        case 'n': ob[0] = '\n'; break;
        case 'r': ob[0] = '\r'; break;
        case 't': ob[0] = '\t'; break;
        case 'u': {
            unsigned cp;
            int rc = read_u4(p, &cp);
            if (rc) return rc;
            if (cp >= 0xDC00 && cp <= 0xDFFF) {
                p->pos -= 6;
                return perr(p, "lone low surrogate in \\u escape");
            }
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (p->n - p->pos < 6 || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u') {
                    return perr(p, "high surrogate not followed by a \\u low surrogate");
                }
                p->pos += 2;
                unsigned lo;
                rc = read_u4(p, &lo);
                if (rc) return rc;
                if (lo < 0xDC00 || lo > 0xDFFF) {
                    p->pos -= 6;
                    return perr(p, "high surrogate followed by a non-low-surrogate \\u escape");
                }
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            ol = put_utf8(cp, ob);
            break;
        }
        default:
            p->pos -= 2;
            return perr(p, "invalid escape in string");
        }
        int rc = sbuf_put(p, &len, ob, ol);
        if (rc) return rc;
    }
    char *dst = arena_get(p->doc, len + 1);
    if (!dst) return oom(p);
    if (len) memcpy(dst, p->sbuf, len);
    dst[len] = 0;
    *out = dst;
    *out_len = len;
    return DQ_OK;
}

static int parse_number(parser *p, dq_json *v) {
    size_t start = p->pos;
    const unsigned char *s = p->s;
    int is_int = 1;
    if (p->pos < p->n && s[p->pos] == '-') p->pos++;
    if (p->pos >= p->n || s[p->pos] < '0' || s[p->pos] > '9') return perr(p, "expected digit in number");
    if (s[p->pos] == '0') {
        p->pos++;
        if (p->pos < p->n && s[p->pos] >= '0' && s[p->pos] <= '9') return perr(p, "leading zero in number");
    } else {
        while (p->pos < p->n && s[p->pos] >= '0' && s[p->pos] <= '9') p->pos++;
    }
    if (p->pos < p->n && s[p->pos] == '.') {
        is_int = 0;
        p->pos++;
        if (p->pos >= p->n || s[p->pos] < '0' || s[p->pos] > '9') return perr(p, "expected digit after decimal point");
        while (p->pos < p->n && s[p->pos] >= '0' && s[p->pos] <= '9') p->pos++;
    }
    if (p->pos < p->n && (s[p->pos] == 'e' || s[p->pos] == 'E')) {
        is_int = 0;
        p->pos++;
        if (p->pos < p->n && (s[p->pos] == '+' || s[p->pos] == '-')) p->pos++;
        if (p->pos >= p->n || s[p->pos] < '0' || s[p->pos] > '9') return perr(p, "expected digit in exponent");
        while (p->pos < p->n && s[p->pos] >= '0' && s[p->pos] <= '9') p->pos++;
    }
    size_t len = p->pos - start;
    char tmp[64];
    char *buf = tmp;
    if (len >= sizeof tmp) {
        buf = malloc(len + 1);
        if (!buf) return oom(p);
    }
    memcpy(buf, s + start, len);
    buf[len] = 0;
    memset(v, 0, sizeof *v);
    v->type = DQ_JSON_NUMBER;
    v->num = strtod(buf, NULL);  // grammar already checked; overflow gives +-HUGE_VAL
    if (is_int) {
        errno = 0;
        long long ll = strtoll(buf, NULL, 10);
        if (errno == 0) {
            v->is_int = 1;
            v->inum = ll;
        }
    }
    if (buf != tmp) free(buf);
    return DQ_OK;
}

static int match_lit(parser *p, const char *lit) {
    size_t l = strlen(lit);
    if (p->n - p->pos < l || memcmp(p->s + p->pos, lit, l) != 0) return perr(p, "invalid literal");
    p->pos += l;
    return DQ_OK;
}

static int parse_value(parser *p, dq_json *v, int depth);

static int parse_container(parser *p, dq_json *v, int depth, int is_obj) {
    if (depth >= JSON_MAX_DEPTH) return perr(p, "nesting deeper than 512 levels");
    char close = is_obj ? '}' : ']';
    size_t base = p->nvals, kbase = p->nkeys;
    p->pos++;  // [ or {
    skip_ws(p);
    if (p->pos < p->n && p->s[p->pos] == close) {
        p->pos++;
    } else {
        for (;;) {
            skip_ws(p);
            if (is_obj) {
                if (p->pos >= p->n || p->s[p->pos] != '"') return perr(p, "expected string key in object");
                const char *k;
                size_t kl;
                int rc = parse_string(p, &k, &kl);
                if (rc) return rc;
                if ((rc = push_key(p, k, kl))) return rc;
                skip_ws(p);
                if (p->pos >= p->n || p->s[p->pos] != ':') return perr(p, "expected ':' after object key");
                p->pos++;
                skip_ws(p);
            }
            dq_json item;
            int rc = parse_value(p, &item, depth + 1);
            if (rc) return rc;
            if ((rc = push_val(p, &item))) return rc;
            skip_ws(p);
            if (p->pos >= p->n) return perr(p, is_obj ? "unterminated object" : "unterminated array");
            if (p->s[p->pos] == ',') {
                p->pos++;
                continue;
            }
            if (p->s[p->pos] == close) {
                p->pos++;
                break;
            }
            return perr(p, is_obj ? "expected ',' or '}' in object" : "expected ',' or ']' in array");
        }
    }
    memset(v, 0, sizeof *v);
    v->type = is_obj ? DQ_JSON_OBJECT : DQ_JSON_ARRAY;
    v->n = p->nvals - base;
    if (v->n) {
        v->items = arena_get(p->doc, v->n * sizeof *v->items);
        if (!v->items) return oom(p);
        memcpy(v->items, p->vals + base, v->n * sizeof *v->items);
        if (is_obj) {
            v->keys = arena_get(p->doc, v->n * sizeof *v->keys);
            v->key_lens = arena_get(p->doc, v->n * sizeof *v->key_lens);
            if (!v->keys || !v->key_lens) return oom(p);
            memcpy(v->keys, p->keys + kbase, v->n * sizeof *v->keys);
            memcpy(v->key_lens, p->klens + kbase, v->n * sizeof *v->key_lens);
        }
    }
    p->nvals = base;
    p->nkeys = kbase;
    return DQ_OK;
}

static int parse_value(parser *p, dq_json *v, int depth) {
    skip_ws(p);
    if (p->pos >= p->n) return perr(p, "unexpected end of input, expected a value");
    unsigned char c = p->s[p->pos];
    memset(v, 0, sizeof *v);
    switch (c) {
    case '{': return parse_container(p, v, depth, 1);
    case '[': return parse_container(p, v, depth, 0);
    case '"':
        v->type = DQ_JSON_STRING;
        return parse_string(p, &v->str, &v->str_len);
    case 't': v->type = DQ_JSON_TRUE; return match_lit(p, "true");
    case 'f': v->type = DQ_JSON_FALSE; return match_lit(p, "false");
    case 'n': v->type = DQ_JSON_NULL; return match_lit(p, "null");
    default:
        if (c == '-' || (c >= '0' && c <= '9')) return parse_number(p, v);
        return perr(p, "unexpected character, expected a value");
    }
}

static void doc_free(json_doc *d) {
    arena_block *b = d->blocks;
    while (b) {
        arena_block *nx = b->next;
        free(b);
        b = nx;
    }
    free(d);
}

int dq_json_parse(dq_json **root, const char *text, size_t len, const char *what, dq_err *e) {
    *root = NULL;
    json_doc *d = calloc(1, sizeof *d);
    if (!d) return DQ_ERR(e, DQ_ENOMEM, "%s: out of memory parsing JSON", what);
    parser p = {.s = (const unsigned char *)text, .n = len, .what = what ? what : "JSON", .e = e, .doc = d};
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) p.pos = 3;  // tolerate a UTF-8 BOM
    int rc = parse_value(&p, &d->root, 0);
    if (!rc) {
        skip_ws(&p);
        if (p.pos != p.n) rc = perr(&p, "trailing data after the JSON value");
    }
    free(p.vals);
    free(p.keys);
    free(p.klens);
    free(p.sbuf);
    if (rc) {
        doc_free(d);
        return rc;
    }
    *root = &d->root;
    return DQ_OK;
}

void dq_json_free(dq_json *root) {
    if (root) doc_free((json_doc *)root);
}

const dq_json *dq_json_get(const dq_json *obj, const char *key) {
    if (!obj || obj->type != DQ_JSON_OBJECT) return NULL;
    size_t kl = strlen(key);
    for (size_t i = 0; i < obj->n; i++)
        if (obj->key_lens[i] == kl && memcmp(obj->keys[i], key, kl) == 0) return &obj->items[i];
    return NULL;
}
