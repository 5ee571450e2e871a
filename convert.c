// convert.c: reads a source checkpoint into FP32 tensors (llama2.c version-0 .bin, or a
// Hugging Face Llama-family directory with safetensors in F32/F16/BF16, single or sharded)
// and hands it to dq_model_write, which quantizes and writes the .dynq file.
// The input kind is detected by content: a directory holding config.json is Hugging Face;
// a file whose 28-byte header predicts its exact size is llama2.c.
#include "convert.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model.h"
#include "tokenizer/json.h"

// ---------------------------------------------------------------- mapped files

typedef struct mapped {
    const uint8_t *p;
    size_t size;
} mapped;

static int map_file(mapped *mf, const char *path, dq_err *e) { return dq_map_file(path, 1, &mf->p, &mf->size, NULL, e); }

static void unmap_file(mapped *mf) {
    dq_unmap_file(mf->p, mf->size);
    mf->p = NULL;
}

// Appends "key=value\n" to a growing provenance text.
typedef struct textbuf {
    char *s;
    size_t n, cap;
} textbuf;

static int tb_add(textbuf *t, const char *key, const char *val) {
    size_t need = strlen(key) + strlen(val) + 3;
    if (t->n + need + 1 > t->cap) {
        size_t nc = (t->cap + need) * 2 + 256;
        char *ns = realloc(t->s, nc);
        if (!ns) return -1;
        t->s = ns;
        t->cap = nc;
    }
    t->n += (size_t)sprintf(t->s + t->n, "%s=%s\n", key, val);
    return 0;
}

static int tb_add_file_hash(textbuf *t, const char *key, const mapped *mf, const char *path) {
    char hex[65], line[4200];
    dq_sha256_hex(mf->p, mf->size, hex);
    snprintf(line, sizeof line, "%s sha256:%s", path, hex);
    return tb_add(t, key, line);
}

// ---------------------------------------------------------------- llama2.c checkpoints

// Sizes (in floats) of a llama2.c version-0 checkpoint's tensors, in file order.
static int llama2c_layout(const int32_t hdr[7], uint64_t *n_floats_shared, dq_config *c) {
    int32_t dim = hdr[0], hidden = hdr[1], nl = hdr[2], nh = hdr[3], nkv = hdr[4], vocab = hdr[5], seq = hdr[6];
    if (vocab == INT32_MIN) return -1;  // its negation overflows
    if (vocab < 0) vocab = -vocab;  // llama2.c's in-band flag: negative = separate classifier
    if (dim <= 0 || hidden <= 0 || nl <= 0 || nh <= 0 || nkv <= 0 || vocab <= 0 || seq <= 0) return -1;
    if (dim > 65536 || hidden > (1 << 20) || nl > 1024 || nh > 4096 || vocab > (1 << 24) || seq > (1 << 22)) return -1;
    if (dim % nh != 0 || nh % nkv != 0) return -1;
    uint64_t C = (uint64_t)dim, F = (uint64_t)hidden, L = (uint64_t)nl, V = (uint64_t)vocab, hd = C / (uint64_t)nh;
    uint64_t KD = hd * (uint64_t)nkv;
    *n_floats_shared = V * C + L * C + L * C * C + 2 * L * C * KD + L * C * C + L * C + 3 * L * C * F + C +
                       (uint64_t)seq * hd;  // freq_cis_real + freq_cis_imag: seq * hd/2 each
    memset(c, 0, sizeof *c);
    c->arch = DQ_ARCH_LLAMA;
    c->dim = (uint32_t)dim;
    c->n_layers = (uint32_t)nl;
    c->n_heads = (uint32_t)nh;
    c->n_kv_heads = (uint32_t)nkv;
    c->head_dim = (uint32_t)hd;
    c->ffn_dim = (uint32_t)hidden;
    c->vocab = (uint32_t)vocab;
    c->ctx_len = (uint32_t)seq;
    c->rope_style = DQ_ROPE_INTERLEAVED;
    c->rope_theta = 10000.0f;
    c->norm_eps = 1e-5f;
    c->tied = hdr[5] > 0;
    return 0;
}

typedef struct source_buf {
    dq_source src;
    float **owned;  // FP32 copies made from F16/BF16 (freed at the end)
    int n_owned, cap_owned;
    mapped maps[64];
    int n_maps;
    textbuf meta;
    dq_tokenizer *tok;
} source_buf;

static int load_llama2c(source_buf *sb, const char *path, dq_err *e) {
    mapped *mf = &sb->maps[sb->n_maps];
    int rc = map_file(mf, path, e);
    if (rc) return rc;
    sb->n_maps++;
    if (mf->size < 28) return DQ_ERR(e, DQ_EFILE, "%s: too short for a llama2.c checkpoint", path);
    int32_t hdr[7];
    memcpy(hdr, mf->p, sizeof hdr);
    uint64_t nf;
    dq_config *c = &sb->src.c;
    if (llama2c_layout(hdr, &nf, c) != 0)
        return DQ_ERR(e, DQ_EFILE, "%s: not a llama2.c checkpoint or Hugging Face directory (implausible header)", path);
    uint64_t extra = c->tied ? 0 : (uint64_t)c->vocab * c->dim;
    uint64_t want = 28 + 4 * (nf + extra);
    if (mf->size != want)
        return DQ_ERR(e, DQ_EFILE, "%s: llama2.c checkpoint should be %llu bytes for its header but is %zu (truncated?)",
                      path, (unsigned long long)want, mf->size);
    if ((uintptr_t)(mf->p + 28) % 4 != 0) return DQ_ERR(e, DQ_EFILE, "%s: misaligned mapping", path);
    const float *p = (const float *)(mf->p + 28);
    uint64_t C = c->dim, F = c->ffn_dim, L = c->n_layers, V = c->vocab, KD = (uint64_t)c->n_kv_heads * c->head_dim;
    sb->src.layers = calloc(L, sizeof *sb->src.layers);
    if (!sb->src.layers) return DQ_ERR(e, DQ_ENOMEM, "out of memory");
    sb->src.tok_emb = p, p += V * C;
    const float *rms_att = p; p += L * C;
    const float *wq = p; p += L * C * C;
    const float *wk = p; p += L * C * KD;
    const float *wv = p; p += L * C * KD;
    const float *wo = p; p += L * C * C;
    const float *rms_ffn = p; p += L * C;
    const float *w1 = p; p += L * C * F;
    const float *w2 = p; p += L * F * C;
    const float *w3 = p; p += L * C * F;
    sb->src.rms_final = p, p += C;
    p += (uint64_t)c->ctx_len * c->head_dim;  // the two unused RoPE tables
    sb->src.wcls = c->tied ? NULL : p;
    for (uint64_t l = 0; l < L; l++) {
        dq_src_layer *S = &sb->src.layers[l];
        S->rms_att = rms_att + l * C;
        S->rms_ffn = rms_ffn + l * C;
        S->wq = wq + l * C * C;
        S->wk = wk + l * C * KD;
        S->wv = wv + l * C * KD;
        S->wo = wo + l * C * C;
        S->w1 = w1 + l * C * F;
        S->w2 = w2 + l * F * C;
        S->w3 = w3 + l * C * F;
    }
    if (tb_add(&sb->meta, "source_kind", "llama2.c version 0 checkpoint") || tb_add_file_hash(&sb->meta, "source", mf, path))
        return DQ_ERR(e, DQ_ENOMEM, "out of memory");
    return DQ_OK;
}

// ---------------------------------------------------------------- Hugging Face directories

static float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, ex = (h >> 10) & 31, man = h & 1023, bits;
    if (ex == 0) {
        if (man == 0) {
            bits = sign;
        } else {  // subnormal: normalise
            int sh = 0;
            while (!(man & 1024)) man <<= 1, sh++;
            man &= 1023;
            bits = sign | ((uint32_t)(113 - sh) << 23) | (man << 13);
        }
    } else if (ex == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((ex + 112) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

// One tensor found in a safetensors header.
typedef struct st_tensor {
    char name[160];
    int dtype;  // 0 f32, 1 f16, 2 bf16, -1 another dtype (kept so the index can name it; never a weight)
    uint64_t shape[2];
    int ndim;
    const uint8_t *data;
    uint64_t nbytes;
    int shard;
} st_tensor;

typedef struct hf_model {
    st_tensor *t;
    int n, cap;
} hf_model;

static int parse_shard(hf_model *hm, const mapped *mf, const char *path, int shard, dq_err *e) {
    if (mf->size < 8) return DQ_ERR(e, DQ_EFILE, "%s: too short for safetensors", path);
    uint64_t hlen;
    memcpy(&hlen, mf->p, 8);
    if (hlen > mf->size - 8 || hlen > (100u << 20))
        return DQ_ERR(e, DQ_EFILE, "%s: safetensors header length %llu exceeds the file", path, (unsigned long long)hlen);
    dq_json *root;
    int rc = dq_json_parse(&root, (const char *)mf->p + 8, (size_t)hlen, path, e);
    if (rc) return rc;
    if (root->type != DQ_JSON_OBJECT) {
        dq_json_free(root);
        return DQ_ERR(e, DQ_EFILE, "%s: safetensors header is not a JSON object", path);
    }
    const uint8_t *base = mf->p + 8 + hlen;
    const int first = hm->n;
    uint64_t avail = mf->size - 8 - hlen;
    for (size_t i = 0; i < root->n; i++) {
        const char *key = root->keys[i];
        const dq_json *v = &root->items[i];
        if (strcmp(key, "__metadata__") == 0) continue;
        const dq_json *dt = dq_json_get(v, "dtype"), *sh = dq_json_get(v, "shape"), *off = dq_json_get(v, "data_offsets");
        if (!dt || dt->type != DQ_JSON_STRING || !sh || sh->type != DQ_JSON_ARRAY || !off || off->type != DQ_JSON_ARRAY ||
            off->n != 2 || sh->n < 1 || sh->n > 2 || strlen(key) >= sizeof hm->t[0].name) {
            rc = DQ_ERR(e, DQ_EFILE, "%s: malformed safetensors entry '%s'", path, key);
            break;
        }
        if (hm->n == hm->cap) {
            int nc = hm->cap * 2 + 64;
            st_tensor *nt = realloc(hm->t, sizeof *nt * (size_t)nc);
            if (!nt) {
                rc = DQ_ERR(e, DQ_ENOMEM, "out of memory");
                break;
            }
            hm->t = nt;
            hm->cap = nc;
        }
        st_tensor *t = &hm->t[hm->n];
        memset(t, 0, sizeof *t);
        snprintf(t->name, sizeof t->name, "%s", key);
        t->shard = shard;
        size_t esz;
        if (strcmp(dt->str, "F32") == 0) t->dtype = 0, esz = 4;
        else if (strcmp(dt->str, "F16") == 0) t->dtype = 1, esz = 2;
        else if (strcmp(dt->str, "BF16") == 0) t->dtype = 2, esz = 2;
        else {
            // Other dtypes (e.g. I64 buffers) are allowed in the file but not as Llama weights.
            t->dtype = -1;
            hm->n++;
            continue;
        }
        uint64_t count = 1;
        int bad = 0;
        t->ndim = (int)sh->n;
        for (size_t j = 0; j < sh->n; j++) {
            const dq_json *d = &sh->items[j];
            if (d->type != DQ_JSON_NUMBER || !d->is_int || d->inum <= 0) bad = 1;
            else {
                t->shape[j] = (uint64_t)d->inum;
                if (__builtin_mul_overflow(count, t->shape[j], &count)) bad = 1;
            }
        }
        const dq_json *o0 = &off->items[0], *o1 = &off->items[1];
        if (bad || o0->type != DQ_JSON_NUMBER || !o0->is_int || o1->type != DQ_JSON_NUMBER || !o1->is_int ||
            o0->inum < 0 || o1->inum < o0->inum || (uint64_t)o1->inum > avail ||
            __builtin_mul_overflow(count, (uint64_t)esz, &t->nbytes) || t->nbytes != (uint64_t)(o1->inum - o0->inum)) {
            rc = DQ_ERR(e, DQ_EFILE, "%s: tensor '%s' has an invalid shape or data offsets", path, key);
            break;
        }
        t->data = base + o0->inum;
        hm->n++;
    }
    // Tensors of one shard must not share bytes (a crafted header could alias weights).
    for (int i = first; i < hm->n && !rc; i++)
        for (int j = i + 1; j < hm->n && !rc; j++) {
            const st_tensor *a = &hm->t[i], *b = &hm->t[j];
            if (a->dtype >= 0 && b->dtype >= 0 && a->data < b->data + b->nbytes && b->data < a->data + a->nbytes)
                rc = DQ_ERR(e, DQ_EFILE, "%s: tensors '%s' and '%s' overlap", path, a->name, b->name);
        }
    dq_json_free(root);
    return rc;
}

static int st_name_cmp(const void *a, const void *b) {
    return strcmp((*(const st_tensor *const *)a)->name, (*(const st_tensor *const *)b)->name);
}

// Refuses a tensor name stored twice (in one shard's header or across shards) and, given the
// index's weight_map (wm, else NULL), a listed tensor that is not in the shard the index names.
static int hf_check_names(const hf_model *hm, const char *dir, char shards[][512], const dq_json *wm, const char *ipath,
                          dq_err *e) {
    const st_tensor **by = malloc(sizeof *by * (size_t)(hm->n ? hm->n : 1));
    if (!by) return DQ_ERR(e, DQ_ENOMEM, "out of memory");
    for (int i = 0; i < hm->n; i++) by[i] = &hm->t[i];
    if (hm->n) qsort(by, (size_t)hm->n, sizeof *by, st_name_cmp);
    int rc = DQ_OK;
    for (int i = 1; i < hm->n && !rc; i++)
        if (strcmp(by[i - 1]->name, by[i]->name) == 0) {
            const st_tensor *a = by[i - 1], *b = by[i];
            if (a->shard > b->shard) a = by[i], b = by[i - 1];
            if (a->shard == b->shard)
                rc = DQ_ERR(e, DQ_EFILE, "%s/%s: tensor '%s' appears twice in the header", dir, shards[b->shard], b->name);
            else
                rc = DQ_ERR(e, DQ_EFILE, "%s/%s: tensor '%s' is stored twice (also in %s)", dir, shards[b->shard],
                            b->name, shards[a->shard]);
        }
    for (size_t i = 0; !rc && wm && i < wm->n; i++) {
        st_tensor key;
        const st_tensor *kp = &key, *const *hit = NULL;
        size_t kl = strlen(wm->keys[i]);
        if (kl < sizeof key.name && hm->n) {
            memcpy(key.name, wm->keys[i], kl + 1);
            hit = bsearch(&kp, by, (size_t)hm->n, sizeof *by, st_name_cmp);
        }
        if (!hit || strcmp(shards[(*hit)->shard], wm->items[i].str) != 0)
            rc = DQ_ERR(e, DQ_EFILE, "%s: tensor '%s' is listed in %s but not stored there", ipath, wm->keys[i],
                        wm->items[i].str);
    }
    free(by);
    return rc;
}

static const st_tensor *hf_find(const hf_model *hm, const char *name) {
    for (int i = 0; i < hm->n; i++)
        if (strcmp(hm->t[i].name, name) == 0) return &hm->t[i];
    return NULL;
}

// Fetches a tensor as FP32 (n, k) (k = 1 for vectors); converts F16/BF16 into an owned copy.
static int hf_get(source_buf *sb, const hf_model *hm, const char *dir, const char *name, uint64_t n, uint64_t k,
                  const float **out, dq_err *e) {
    const st_tensor *t = hf_find(hm, name);
    if (!t) return DQ_ERR(e, DQ_EFILE, "%s: tensor '%s' is missing", dir, name);
    if (t->dtype < 0) return DQ_ERR(e, DQ_EFILE, "%s: tensor '%s' is not F32, F16 or BF16", dir, name);
    int want_nd = k > 1 ? 2 : 1;
    if (t->ndim != want_nd || t->shape[0] != n || (want_nd == 2 && t->shape[1] != k))
        return DQ_ERR(e, DQ_EFILE, "%s: tensor '%s' has shape [%llu%s%llu], expected [%llu, %llu]", dir, name,
                      (unsigned long long)t->shape[0], t->ndim == 2 ? ", " : "",
                      (unsigned long long)(t->ndim == 2 ? t->shape[1] : 0), (unsigned long long)n, (unsigned long long)k);
    size_t cnt = (size_t)(n * k);
    if (t->dtype == 0 && (uintptr_t)t->data % 4 == 0) {
        *out = (const float *)t->data;
        return DQ_OK;
    }
    float *f = malloc(cnt * sizeof(float));
    if (!f) return DQ_ERR(e, DQ_ENOMEM, "out of memory converting '%s'", name);
    if (sb->n_owned == sb->cap_owned) {
        int nc = sb->cap_owned * 2 + 64;
        float **no = realloc(sb->owned, sizeof *no * (size_t)nc);
        if (!no) {
            free(f);
            return DQ_ERR(e, DQ_ENOMEM, "out of memory");
        }
        sb->owned = no;
        sb->cap_owned = nc;
    }
    sb->owned[sb->n_owned++] = f;
    for (size_t i = 0; i < cnt; i++) {
        if (t->dtype == 0) {
            memcpy(&f[i], t->data + 4 * i, 4);
        } else {
            uint16_t h;
            memcpy(&h, t->data + 2 * i, 2);
            if (t->dtype == 1) {
                f[i] = half_to_float(h);
            } else {
                uint32_t b = (uint32_t)h << 16;
                memcpy(&f[i], &b, 4);
            }
        }
    }
    *out = f;
    return DQ_OK;
}

static int json_uint(const dq_json *cfg, const char *key, int required, uint32_t dflt, uint32_t *out, const char *path,
                     dq_err *e) {
    const dq_json *v = dq_json_get(cfg, key);
    if (!v || v->type == DQ_JSON_NULL) {
        if (required) return DQ_ERR(e, DQ_EFILE, "%s: config.json lacks \"%s\"", path, key);
        *out = dflt;
        return DQ_OK;
    }
    if (v->type != DQ_JSON_NUMBER || !v->is_int || v->inum <= 0 || v->inum > (1LL << 30))
        return DQ_ERR(e, DQ_EFILE, "%s: config.json \"%s\" is not a positive integer", path, key);
    *out = (uint32_t)v->inum;
    return DQ_OK;
}

static int json_float(const dq_json *cfg, const char *key, float dflt, float *out, const char *path, dq_err *e) {
    const dq_json *v = dq_json_get(cfg, key);
    if (!v || v->type == DQ_JSON_NULL) {
        *out = dflt;
        return DQ_OK;
    }
    if (v->type != DQ_JSON_NUMBER) return DQ_ERR(e, DQ_EFILE, "%s: config.json \"%s\" is not a number", path, key);
    *out = (float)v->num;
    return DQ_OK;
}

static int load_hf(source_buf *sb, const char *dir, dq_err *e) {
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    uint8_t *txt;
    size_t len;
    int rc = dq_read_file(path, &txt, &len, e);
    if (rc) return rc;
    dq_json *cfg = NULL;
    rc = dq_json_parse(&cfg, (const char *)txt, len, path, e);
    if (!rc) {
        char hex[65];
        dq_sha256_hex(txt, len, hex);
        char line[4200];
        snprintf(line, sizeof line, "%s sha256:%s", path, hex);
        if (tb_add(&sb->meta, "source_kind", "Hugging Face directory") || tb_add(&sb->meta, "source_config", line))
            rc = DQ_ERR(e, DQ_ENOMEM, "out of memory");
    }
    free(txt);
    if (rc) return rc;
    dq_config *c = &sb->src.c;
    memset(c, 0, sizeof *c);
    c->arch = DQ_ARCH_LLAMA;
    const dq_json *mt = dq_json_get(cfg, "model_type");
    if (cfg->type != DQ_JSON_OBJECT || !mt || mt->type != DQ_JSON_STRING ||
        (strcmp(mt->str, "llama") != 0 && strcmp(mt->str, "mistral") != 0)) {
        dq_json_free(cfg);
        return DQ_ERR(e, DQ_EFILE, "%s: model_type is not a Llama-family model (llama, mistral)", path);
    }
    const dq_json *rs = dq_json_get(cfg, "rope_scaling");
    const dq_json *tie = dq_json_get(cfg, "tie_word_embeddings");
    if ((rc = json_uint(cfg, "hidden_size", 1, 0, &c->dim, path, e)) ||
        (rc = json_uint(cfg, "intermediate_size", 1, 0, &c->ffn_dim, path, e)) ||
        (rc = json_uint(cfg, "num_hidden_layers", 1, 0, &c->n_layers, path, e)) ||
        (rc = json_uint(cfg, "num_attention_heads", 1, 0, &c->n_heads, path, e)) ||
        (rc = json_uint(cfg, "num_key_value_heads", 0, c->n_heads, &c->n_kv_heads, path, e)) ||
        (rc = json_uint(cfg, "head_dim", 0, c->n_heads ? c->dim / c->n_heads : 0, &c->head_dim, path, e)) ||
        (rc = json_uint(cfg, "vocab_size", 1, 0, &c->vocab, path, e)) ||
        (rc = json_uint(cfg, "max_position_embeddings", 0, 2048, &c->ctx_len, path, e)) ||
        (rc = json_float(cfg, "rms_norm_eps", 1e-6f, &c->norm_eps, path, e)) ||
        (rc = json_float(cfg, "rope_theta", 10000.0f, &c->rope_theta, path, e))) {
        dq_json_free(cfg);
        return rc;
    }
    c->rope_style = DQ_ROPE_HALF;
    c->tied = tie && tie->type == DQ_JSON_TRUE;
    int scaled = rs && rs->type != DQ_JSON_NULL;
    dq_json_free(cfg);
    if (scaled) return DQ_ERR(e, DQ_EFILE, "%s: rope_scaling is not supported yet", path);
    if ((rc = dq_config_check(c, path, e))) return rc;

    // Shards: model.safetensors, or the files named by model.safetensors.index.json. Shard names are
    // plain file names inside dir (no '/', no leading '.'): an index cannot reach outside the model.
    hf_model hm = {0};
    char shards[64][512];
    int n_shards = 0;
    char ipath[4096];
    dq_json *idx = NULL;
    const dq_json *wm = NULL;
    snprintf(ipath, sizeof ipath, "%s/model.safetensors.index.json", dir);
    if (access(ipath, R_OK) == 0) {
        if ((rc = dq_read_file(ipath, &txt, &len, e))) return rc;
        rc = dq_json_parse(&idx, (const char *)txt, len, ipath, e);
        free(txt);
        if (rc) return rc;
        wm = dq_json_get(idx, "weight_map");
        if (!wm || wm->type != DQ_JSON_OBJECT) {
            dq_json_free(idx);
            return DQ_ERR(e, DQ_EFILE, "%s: no weight_map object", ipath);
        }
        for (size_t i = 0; !rc && i < wm->n; i++) {
            const dq_json *fv = &wm->items[i];
            if (fv->type != DQ_JSON_STRING || !fv->str[0] || strchr(fv->str, '/') || strlen(fv->str) >= sizeof shards[0] ||
                fv->str[0] == '.') {
                rc = DQ_ERR(e, DQ_EFILE, "%s: invalid shard file name for '%s'", ipath, wm->keys[i]);
                break;
            }
            int seen = 0;
            for (int j = 0; j < n_shards; j++) seen |= strcmp(shards[j], fv->str) == 0;
            if (seen) continue;
            if (n_shards == 64) {
                rc = DQ_ERR(e, DQ_EFILE, "%s: more than 64 shards", ipath);
                break;
            }
            snprintf(shards[n_shards++], sizeof shards[0], "%s", fv->str);
        }
        if (!rc && n_shards == 0) rc = DQ_ERR(e, DQ_EFILE, "%s: weight_map names no shard", ipath);
    } else {
        snprintf(shards[n_shards++], sizeof shards[0], "model.safetensors");
    }
    for (int i = 0; i < n_shards && !rc; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, shards[i]);
        mapped *mf = &sb->maps[sb->n_maps];
        if ((rc = map_file(mf, path, e))) break;
        sb->n_maps++;
        if (tb_add_file_hash(&sb->meta, "source_weights", mf, path)) rc = DQ_ERR(e, DQ_ENOMEM, "out of memory");
        if (!rc) rc = parse_shard(&hm, mf, path, i, e);
    }
    // Every tensor name once across all shards (else the first copy would silently win), and the
    // index must describe the shards: each tensor it lists is stored in the shard it names.
    if (!rc) rc = hf_check_names(&hm, dir, shards, wm, ipath, e);
    dq_json_free(idx);
    uint64_t C = c->dim, F = c->ffn_dim, V = c->vocab, QD = (uint64_t)c->n_heads * c->head_dim,
             KD = (uint64_t)c->n_kv_heads * c->head_dim;
    if (!rc) {
        sb->src.layers = calloc(c->n_layers, sizeof *sb->src.layers);
        if (!sb->src.layers) rc = DQ_ERR(e, DQ_ENOMEM, "out of memory");
    }
    if (!rc) rc = hf_get(sb, &hm, dir, "model.embed_tokens.weight", V, C, &sb->src.tok_emb, e);
    if (!rc) rc = hf_get(sb, &hm, dir, "model.norm.weight", C, 1, &sb->src.rms_final, e);
    if (!rc && !c->tied) {
        if (hf_find(&hm, "lm_head.weight"))
            rc = hf_get(sb, &hm, dir, "lm_head.weight", V, C, &sb->src.wcls, e);
        else
            c->tied = 1;  // no separate head stored: the embedding serves as classifier
    }
    for (uint32_t l = 0; l < c->n_layers && !rc; l++) {
        dq_src_layer *S = &sb->src.layers[l];
        char nm[160];
#define GET(suffix, n, k, dst) \
    (snprintf(nm, sizeof nm, "model.layers.%u.%s", l, suffix), hf_get(sb, &hm, dir, nm, n, k, dst, e))
        if ((rc = GET("input_layernorm.weight", C, 1, &S->rms_att)) ||
            (rc = GET("post_attention_layernorm.weight", C, 1, &S->rms_ffn)) ||
            (rc = GET("self_attn.q_proj.weight", QD, C, &S->wq)) || (rc = GET("self_attn.k_proj.weight", KD, C, &S->wk)) ||
            (rc = GET("self_attn.v_proj.weight", KD, C, &S->wv)) || (rc = GET("self_attn.o_proj.weight", C, QD, &S->wo)) ||
            (rc = GET("mlp.gate_proj.weight", F, C, &S->w1)) || (rc = GET("mlp.up_proj.weight", F, C, &S->w3)) ||
            (rc = GET("mlp.down_proj.weight", C, F, &S->w2)))
            break;
#undef GET
    }
    free(hm.t);
    return rc;
}

// The chat template family named by tokenizer_config.json's "chat_template" (a Jinja
// text we do not run): recognised by its markers, stored as chat_template=NAME in the
// provenance so `dynq chat --template auto` can pick it. Absent file or template: nothing.
static int hf_chat_template(source_buf *sb, const char *dir, dq_err *e) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    if (access(path, R_OK) != 0) return DQ_OK;
    uint8_t *txt;
    size_t len;
    int rc = dq_read_file(path, &txt, &len, e);
    if (rc) return rc;
    dq_json *root = NULL;
    rc = dq_json_parse(&root, (const char *)txt, len, path, e);
    free(txt);
    if (rc) return rc;
    const dq_json *ct = dq_json_get(root, "chat_template");
    const char *name = NULL;
    if (ct && ct->type == DQ_JSON_STRING) {
        if (strstr(ct->str, "<|start_header_id|>")) name = "llama3";
        else if (strstr(ct->str, "<|im_start|>")) name = "chatml";
        else if (strstr(ct->str, "<|user|>")) name = "zephyr";
        else if (strstr(ct->str, "[INST]")) name = "llama2";
        else name = "unknown";
    }
    if (name && tb_add(&sb->meta, "chat_template", name)) rc = DQ_ERR(e, DQ_ENOMEM, "out of memory");
    dq_json_free(root);
    return rc;
}

// ---------------------------------------------------------------- driver

static void source_free(source_buf *sb) {
    for (int i = 0; i < sb->n_owned; i++) free(sb->owned[i]);
    free(sb->owned);
    for (int i = 0; i < sb->n_maps; i++) unmap_file(&sb->maps[i]);
    free(sb->src.layers);
    free(sb->meta.s);
    if (sb->tok) dq_tok_free(sb->tok);
}

int dq_convert(const dq_convert_opts *o, dq_err *e) {
    source_buf sb;
    memset(&sb, 0, sizeof sb);
    struct stat st;
    if (stat(o->input, &st) != 0) return DQ_ERR(e, DQ_EFILE, "%s: cannot open: %s", o->input, strerror(errno));
    int rc, is_dir = S_ISDIR(st.st_mode);
    char tokpath[4096];
    if (is_dir) {
        snprintf(tokpath, sizeof tokpath, "%s/config.json", o->input);
        if (access(tokpath, R_OK) != 0) return DQ_ERR(e, DQ_EFILE, "%s: directory has no config.json (not a Hugging Face model)", o->input);
        rc = load_hf(&sb, o->input, e);
        if (!rc) rc = hf_chat_template(&sb, o->input, e);
        snprintf(tokpath, sizeof tokpath, "%s/tokenizer.json", o->input);
    } else {
        rc = load_llama2c(&sb, o->input, e);
        if (!rc && !o->tokenizer)
            rc = DQ_ERR(e, DQ_EUSAGE, "%s: a llama2.c checkpoint needs --tokenizer FILE (its tokenizer.bin)", o->input);
        tokpath[0] = 0;
    }
    const char *tp = o->tokenizer ? o->tokenizer : tokpath;
    if (!rc) rc = dq_tok_load(&sb.tok, tp, (int)sb.src.c.vocab, e);
    if (!rc && (uint32_t)dq_tok_n_vocab(sb.tok) != sb.src.c.vocab)
        rc = DQ_ERR(e, DQ_EFILE, "%s: tokenizer has %d tokens but the model's vocabulary is %u", tp, dq_tok_n_vocab(sb.tok),
                    sb.src.c.vocab);
    if (!rc) {
        mapped tf;
        if ((rc = map_file(&tf, tp, e)) == DQ_OK) {
            if (tb_add_file_hash(&sb.meta, "tokenizer", &tf, tp)) rc = DQ_ERR(e, DQ_ENOMEM, "out of memory");
            unmap_file(&tf);
        }
    }
    if (!rc) {
        sb.src.c.wtype = (uint32_t)o->wtype;
        if (tb_add(&sb.meta, "dynq_version", DYNQ_VERSION) ||
            tb_add(&sb.meta, "weight_type", o->wtype == DQ_WTYPE_INT8 ? "int8 per output row, symmetric, scale = max|w|/127" : "f32") ||
            tb_add(&sb.meta, "activations", o->wtype == DQ_WTYPE_INT8 ? "quantized per token at run time (default sym; --act)" : "f32"))
            rc = DQ_ERR(e, DQ_ENOMEM, "out of memory");
    }
    if (!rc) {
        sb.src.tok = sb.tok;
        sb.src.meta = sb.meta.s;
        rc = dq_model_write(&sb.src, o->tmp, o->out, o->progress, o->progress_ud, e);
    }
    source_free(&sb);
    return rc;
}
