// model.c: the .dynq model file (load and write; layout in docs/FORMAT.md), the run
// state (activations + KV cache) and the forward pass of a Llama-family transformer.
//
// Letter code used in shapes: B = tokens in a batch, C = model width (dim),
// hd = head dim, H = query heads, KV = key/value heads, F = FFN width, V = vocab,
// L = layers, T = cache length (ctx).
#include "model.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "dynq files are little-endian; so is every host we build for");

// ---------------------------------------------------------------- little helpers

static uint32_t rd32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t rd64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static float rdf(const uint8_t *p) { float v; memcpy(&v, p, 4); return v; }
static void wr32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void wr64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static void wrf(uint8_t *p, float v) { memcpy(p, &v, 4); }
static uint64_t align_up(uint64_t x) { return (x + DQ_ALIGN - 1) & ~(uint64_t)(DQ_ALIGN - 1); }

// FNV-1a 64 over several byte ranges: the header/directory/tokenizer/metadata checksum.
static uint64_t fnv1a(uint64_t h, const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}
#define FNV_INIT 0xcbf29ce484222325ULL

static size_t dtype_size(uint32_t dt) { return dt == DQ_DT_I8 ? 1 : 4; }

// ---------------------------------------------------------------- header layout
// Byte offsets inside the fixed 256-byte header (docs/FORMAT.md).
enum {
    H_MAGIC = 0, H_VERSION = 4, H_HSIZE = 8, H_NTENS = 12,
    H_ARCH = 16, H_DIM = 20, H_NLAYERS = 24, H_NHEADS = 28, H_NKV = 32, H_HEADDIM = 36, H_FFN = 40,
    H_VOCAB = 44, H_CTX = 48, H_ROPESTYLE = 52, H_THETA = 56, H_EPS = 60, H_TIED = 64, H_WTYPE = 68,
    H_DIROFF = 72, H_TOKOFF = 80, H_TOKSIZE = 88, H_METAOFF = 96, H_METASIZE = 104,
    H_DATAOFF = 112, H_FILESIZE = 120, H_CHECKSUM = 128,
};
// Directory entry: name[48], dtype u32, ndim u32, dims u64[3], offset u64, nbytes u64.
enum { D_NAME = 0, D_DTYPE = 48, D_NDIM = 52, D_DIMS = 56, D_OFFSET = 80, D_NBYTES = 88 };

static void header_put_config(uint8_t *h, const dq_config *c) {
    wr32(h + H_ARCH, c->arch);
    wr32(h + H_DIM, c->dim);
    wr32(h + H_NLAYERS, c->n_layers);
    wr32(h + H_NHEADS, c->n_heads);
    wr32(h + H_NKV, c->n_kv_heads);
    wr32(h + H_HEADDIM, c->head_dim);
    wr32(h + H_FFN, c->ffn_dim);
    wr32(h + H_VOCAB, c->vocab);
    wr32(h + H_CTX, c->ctx_len);
    wr32(h + H_ROPESTYLE, c->rope_style);
    wrf(h + H_THETA, c->rope_theta);
    wrf(h + H_EPS, c->norm_eps);
    wr32(h + H_TIED, c->tied);
    wr32(h + H_WTYPE, c->wtype);
}

static void header_get_config(const uint8_t *h, dq_config *c) {
    c->arch = rd32(h + H_ARCH);
    c->dim = rd32(h + H_DIM);
    c->n_layers = rd32(h + H_NLAYERS);
    c->n_heads = rd32(h + H_NHEADS);
    c->n_kv_heads = rd32(h + H_NKV);
    c->head_dim = rd32(h + H_HEADDIM);
    c->ffn_dim = rd32(h + H_FFN);
    c->vocab = rd32(h + H_VOCAB);
    c->ctx_len = rd32(h + H_CTX);
    c->rope_style = rd32(h + H_ROPESTYLE);
    c->rope_theta = rdf(h + H_THETA);
    c->norm_eps = rdf(h + H_EPS);
    c->tied = rd32(h + H_TIED);
    c->wtype = rd32(h + H_WTYPE);
}

// Checks hyperparameters for sanity; shared by the loader and the converter.
int dq_config_check(const dq_config *c, const char *path, dq_err *e) {
    if (c->arch != DQ_ARCH_LLAMA) return DQ_ERR(e, DQ_EFILE, "%s: unknown architecture %u", path, c->arch);
    if (c->dim == 0 || c->dim > 65536) return DQ_ERR(e, DQ_EFILE, "%s: invalid model width %u", path, c->dim);
    if (c->n_layers == 0 || c->n_layers > 1024) return DQ_ERR(e, DQ_EFILE, "%s: invalid layer count %u", path, c->n_layers);
    if (c->n_heads == 0 || c->n_heads > 4096) return DQ_ERR(e, DQ_EFILE, "%s: invalid head count %u", path, c->n_heads);
    if (c->n_kv_heads == 0 || c->n_heads % c->n_kv_heads != 0)
        return DQ_ERR(e, DQ_EFILE, "%s: %u KV heads do not divide %u query heads", path, c->n_kv_heads, c->n_heads);
    if (c->head_dim == 0 || c->head_dim % 2 != 0 || c->head_dim > 4096)
        return DQ_ERR(e, DQ_EFILE, "%s: invalid head dimension %u", path, c->head_dim);
    if ((uint64_t)c->head_dim * c->n_heads > 1u << 20) return DQ_ERR(e, DQ_EFILE, "%s: attention width too large", path);
    if (c->ffn_dim == 0 || c->ffn_dim > (1u << 20)) return DQ_ERR(e, DQ_EFILE, "%s: invalid FFN width %u", path, c->ffn_dim);
    if (c->vocab == 0 || c->vocab > (1u << 24)) return DQ_ERR(e, DQ_EFILE, "%s: invalid vocabulary size %u", path, c->vocab);
    if (c->ctx_len == 0 || c->ctx_len > (1u << 22)) return DQ_ERR(e, DQ_EFILE, "%s: invalid context length %u", path, c->ctx_len);
    if (c->rope_style > DQ_ROPE_HALF) return DQ_ERR(e, DQ_EFILE, "%s: unknown RoPE style %u", path, c->rope_style);
    if (!(c->rope_theta > 0.0f) || !isfinite(c->rope_theta)) return DQ_ERR(e, DQ_EFILE, "%s: invalid RoPE theta", path);
    if (!(c->norm_eps > 0.0f) || !isfinite(c->norm_eps) || c->norm_eps > 1.0f)
        return DQ_ERR(e, DQ_EFILE, "%s: invalid norm epsilon", path);
    if (c->tied > 1 || c->wtype > DQ_WTYPE_INT8) return DQ_ERR(e, DQ_EFILE, "%s: invalid flags", path);
    return DQ_OK;
}

// ---------------------------------------------------------------- the tensor list
// The one place that names every tensor of a model; loader and writer both walk it.
typedef struct tensor_spec {
    char name[40];  // room for ".rowsum" in a 48-byte directory name
    int matrix;        // 1: a weight matrix (FP32, or INT8 + .scale + .rowsum)
    uint64_t n, k;     // matrix (n, k), or vector of n when !matrix
    const float **dst_vec;  // where the loader puts a vector
    dq_mat *dst_mat;        // where the loader puts a matrix
    const float *src;       // writer: source FP32 data
} tensor_spec;

// Fills specs (capacity: 2 + 1 + 9 L); returns the count. m may be NULL (writer), src may be NULL (loader).
static int tensor_specs(tensor_spec *sp, const dq_config *c, dq_model *m, const dq_source *src) {
    int n = 0;
    uint64_t C = c->dim, F = c->ffn_dim, V = c->vocab, QD = (uint64_t)c->n_heads * c->head_dim,
             KD = (uint64_t)c->n_kv_heads * c->head_dim;
#define MAT(nm, nn, kk, dstm, s)                                                   \
    do {                                                                           \
        tensor_spec *t = &sp[n++];                                                 \
        memset(t, 0, sizeof *t);                                                   \
        snprintf(t->name, sizeof t->name, "%s", nm);                               \
        t->matrix = 1; t->n = nn; t->k = kk; t->dst_mat = dstm; t->src = s;        \
    } while (0)
#define VEC(nm, nn, dstv, s)                                                       \
    do {                                                                           \
        tensor_spec *t = &sp[n++];                                                 \
        memset(t, 0, sizeof *t);                                                   \
        snprintf(t->name, sizeof t->name, "%s", nm);                               \
        t->n = nn; t->k = 1; t->dst_vec = dstv; t->src = s;                        \
    } while (0)
    MAT("tok_embeddings", V, C, m ? &m->tok_emb : NULL, src ? src->tok_emb : NULL);
    VEC("norm", C, m ? &m->rms_final : NULL, src ? src->rms_final : NULL);
    if (!c->tied) MAT("output", V, C, m ? &m->cls : NULL, src ? src->wcls : NULL);
    for (uint32_t l = 0; l < c->n_layers; l++) {
        dq_layer *L = m ? &m->layers[l] : NULL;
        const dq_src_layer *S = src ? &src->layers[l] : NULL;
        char nm[40];
#define LNAME(s) (snprintf(nm, sizeof nm, "blk.%u.%s", l, s), nm)
        VEC(LNAME("attn_norm"), C, L ? &L->rms_att : NULL, S ? S->rms_att : NULL);
        MAT(LNAME("wq"), QD, C, L ? &L->wq : NULL, S ? S->wq : NULL);
        MAT(LNAME("wk"), KD, C, L ? &L->wk : NULL, S ? S->wk : NULL);
        MAT(LNAME("wv"), KD, C, L ? &L->wv : NULL, S ? S->wv : NULL);
        MAT(LNAME("wo"), C, QD, L ? &L->wo : NULL, S ? S->wo : NULL);
        VEC(LNAME("ffn_norm"), C, L ? &L->rms_ffn : NULL, S ? S->rms_ffn : NULL);
        MAT(LNAME("w1"), F, C, L ? &L->w1 : NULL, S ? S->w1 : NULL);
        MAT(LNAME("w3"), F, C, L ? &L->w3 : NULL, S ? S->w3 : NULL);
        MAT(LNAME("w2"), C, F, L ? &L->w2 : NULL, S ? S->w2 : NULL);
#undef LNAME
    }
#undef MAT
#undef VEC
    return n;
}

// ---------------------------------------------------------------- loading

static const dq_tensor_info *find_tensor(const dq_model *m, const char *name) {
    for (uint32_t i = 0; i < m->n_tensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0) return &m->tensors[i];
    return NULL;
}

static int get_tensor(const dq_model *m, const char *name, uint32_t dtype, uint64_t d0, uint64_t d1,
                      const void **out, dq_err *e) {
    const dq_tensor_info *t = find_tensor(m, name);
    if (!t) return DQ_ERR(e, DQ_EFILE, "%s: tensor '%s' is missing", m->path, name);
    uint64_t want_nd = d1 > 1 ? 2 : 1;
    if (t->dtype != dtype || t->ndim != want_nd || t->dims[0] != d0 || (want_nd == 2 && t->dims[1] != d1))
        return DQ_ERR(e, DQ_EFILE, "%s: tensor '%s' has the wrong type or shape", m->path, name);
    *out = m->map + t->offset;
    return DQ_OK;
}

static int load_directory(dq_model *m, uint64_t dir_off, uint64_t data_off, dq_err *e) {
    const char *path = m->path;
    uint64_t dir_bytes = (uint64_t)m->n_tensors * DQ_DIRENT_SIZE;
    if (!dq_range_ok(dir_off, dir_bytes, m->size))
        return DQ_ERR(e, DQ_EFILE, "%s: tensor directory extends past the end of the file", path);
    m->tensors = calloc(m->n_tensors ? m->n_tensors : 1, sizeof *m->tensors);
    if (!m->tensors) return DQ_ERR(e, DQ_ENOMEM, "%s: out of memory", path);
    for (uint32_t i = 0; i < m->n_tensors; i++) {
        const uint8_t *d = m->map + dir_off + (uint64_t)i * DQ_DIRENT_SIZE;
        dq_tensor_info *t = &m->tensors[i];
        memcpy(t->name, d + D_NAME, sizeof t->name);
        if (memchr(t->name, 0, sizeof t->name) == NULL)
            return DQ_ERR(e, DQ_EFILE, "%s: tensor %u has an unterminated name", path, i);
        t->dtype = rd32(d + D_DTYPE);
        t->ndim = rd32(d + D_NDIM);
        for (int j = 0; j < 3; j++) t->dims[j] = rd64(d + D_DIMS + 8 * j);
        t->offset = rd64(d + D_OFFSET);
        t->nbytes = rd64(d + D_NBYTES);
        if (t->dtype > DQ_DT_I8P) return DQ_ERR(e, DQ_EFILE, "%s: tensor '%s' has unknown dtype %u", path, t->name, t->dtype);
        if (t->ndim < 1 || t->ndim > 3) return DQ_ERR(e, DQ_EFILE, "%s: tensor '%s' has %u dimensions", path, t->name, t->ndim);
        uint64_t count = 1;
        for (uint32_t j = 0; j < t->ndim; j++) {
            if (t->dims[j] == 0) return DQ_ERR(e, DQ_EFILE, "%s: tensor '%s' has a zero dimension", path, t->name);
            if (__builtin_mul_overflow(count, t->dims[j], &count))
                return DQ_ERR(e, DQ_EFILE, "%s: tensor '%s' shape overflows", path, t->name);
        }
        uint64_t bytes;
        if (t->dtype == DQ_DT_I8P) {  // [n, k] in panels: n rounded up to 16, k to 64
            if (t->ndim != 2) return DQ_ERR(e, DQ_EFILE, "%s: tensor '%s' in panels must be a matrix", path, t->name);
            if (t->dims[0] > UINT64_MAX - 15 || t->dims[1] > UINT64_MAX - 63 ||
                __builtin_mul_overflow((t->dims[0] + 15) / 16 * 16, (t->dims[1] + 63) / 64 * 64, &bytes))
                return DQ_ERR(e, DQ_EFILE, "%s: tensor '%s' shape overflows", path, t->name);
        } else if (__builtin_mul_overflow(count, (uint64_t)dtype_size(t->dtype), &bytes)) {
            return DQ_ERR(e, DQ_EFILE, "%s: tensor '%s' shape overflows", path, t->name);
        }
        if (bytes != t->nbytes)
            return DQ_ERR(e, DQ_EFILE, "%s: tensor '%s' byte size does not match its shape", path, t->name);
        if (t->offset % DQ_ALIGN != 0) return DQ_ERR(e, DQ_EFILE, "%s: tensor '%s' is not 64-byte aligned", path, t->name);
        if (!dq_range_ok(t->offset, t->nbytes, m->size))
            return DQ_ERR(e, DQ_EFILE, "%s: tensor '%s' extends past the end of the file", path, t->name);
        if (t->offset < data_off)
            return DQ_ERR(e, DQ_EFILE, "%s: tensor '%s' lies before the data section (offset %llu < %llu)", path, t->name,
                          (unsigned long long)t->offset, (unsigned long long)data_off);
    }
    // No two tensors may overlap (the directory is written in offset order).
    for (uint32_t i = 1; i < m->n_tensors; i++) {
        const dq_tensor_info *a = &m->tensors[i - 1], *b = &m->tensors[i];
        if (b->offset < a->offset + a->nbytes)
            return DQ_ERR(e, DQ_EFILE, "%s: tensors '%s' and '%s' overlap or are out of order", path, a->name, b->name);
    }
    return DQ_OK;
}

static int bind_matrix(dq_model *m, const tensor_spec *t, dq_err *e) {
    dq_mat *M = t->dst_mat;
    M->n = (int)t->n;
    M->k = (int)t->k;
    int rc;
    if (m->c.wtype == DQ_WTYPE_F32)
        return get_tensor(m, t->name, DQ_DT_F32, t->n, t->k, (const void **)&M->f, e);
    char nm[64];
    if ((rc = get_tensor(m, t->name, DQ_DT_I8P, t->n, t->k, (const void **)&M->q.panels, e))) return rc;
    snprintf(nm, sizeof nm, "%s.scale", t->name);
    if ((rc = get_tensor(m, nm, DQ_DT_F32, t->n, 1, (const void **)&M->q.scale, e))) return rc;
    snprintf(nm, sizeof nm, "%s.rowsum", t->name);
    if ((rc = get_tensor(m, nm, DQ_DT_I32, t->n, 1, (const void **)&M->q.rowsum, e))) return rc;
    for (uint64_t i = 0; i < t->n; i++) {
        float s = M->q.scale[i];
        if (!isfinite(s) || s < 0.0f)
            return DQ_ERR(e, DQ_EFILE, "%s: tensor '%s' has an invalid scale at row %llu", m->path, t->name,
                          (unsigned long long)i);
    }
    M->q.n = (int)t->n;
    M->q.k = (int)t->k;
    return DQ_OK;
}

// Lets the kernels prepare every INT8 matrix for the chosen ISA, all cores in parallel: the
// padded row sums and scales (the panels stay in the mapped file, read in place); the time is
// reported as repack_seconds.
static int prepare_matrices(dq_model *m, const tensor_spec *specs, int ns, dq_err *e) {
    int count = 0;
    for (int i = 0; i < ns; i++) count += specs[i].matrix;
    dq_qweight *ws = malloc(sizeof *ws * (size_t)count);
    if (!ws) return DQ_ERR(e, DQ_ENOMEM, "%s: out of memory", m->path);
    for (int i = 0, j = 0; i < ns; i++)
        if (specs[i].matrix) ws[j++] = specs[i].dst_mat->q;
    double t0 = dq_now();
    dq_pool *pool;
    int rc = dq_pool_create(&pool, dq_physical_cores(), e);
    if (!rc) {
        rc = dq_qweight_prepare_many(pool, ws, count, e);
        dq_pool_free(pool);
    }
    // Copy back even on failure, so dq_model_free releases what was packed.
    for (int i = 0, j = 0; i < ns; i++)
        if (specs[i].matrix) specs[i].dst_mat->q = ws[j++];
    m->repack_seconds = dq_now() - t0;
    free(ws);
    return rc;
}

// 1 if the environment variable `name` is "off" (the page-size switches below).
static int env_off(const char *name) {
    const char *v = getenv(name);
    return v && strcmp(v, "off") == 0;
}

int dq_model_load(dq_model *m, const char *path, dq_err *e) {
    memset(m, 0, sizeof *m);
    double t0 = dq_now();
    m->path = path;
    int rc = dq_map_file(path, DQ_HEADER_SIZE, &m->map, &m->size, &m->fd, e);
    if (rc) return rc;
    const uint8_t *h = m->map;
    if (memcmp(h + H_MAGIC, DQ_MAGIC, 4) != 0) {
        rc = DQ_ERR(e, DQ_EFILE, "%s: not a .dynq model (bad magic)", path);
        goto fail;
    }
    if (rd32(h + H_VERSION) != DQ_FORMAT_VERSION) {
        uint32_t v = rd32(h + H_VERSION);
        rc = DQ_ERR(e, DQ_EFILE, "%s: unsupported .dynq version %u (this dynq reads %d)%s", path, v, DQ_FORMAT_VERSION,
                    v < DQ_FORMAT_VERSION ? ": convert the source again" : "");
        goto fail;
    }
    if (rd32(h + H_HSIZE) != DQ_HEADER_SIZE || rd64(h + H_FILESIZE) != m->size) {
        rc = DQ_ERR(e, DQ_EFILE, "%s: header size or file size mismatch (truncated file?)", path);
        goto fail;
    }
    header_get_config(h, &m->c);
    if ((rc = dq_config_check(&m->c, path, e))) goto fail;
    m->n_tensors = rd32(h + H_NTENS);
    if (m->n_tensors > 100000) {
        rc = DQ_ERR(e, DQ_EFILE, "%s: implausible tensor count %u", path, m->n_tensors);
        goto fail;
    }
    uint64_t dir_off = rd64(h + H_DIROFF), tok_off = rd64(h + H_TOKOFF), tok_size = rd64(h + H_TOKSIZE),
             meta_off = rd64(h + H_METAOFF), meta_size = rd64(h + H_METASIZE);
    if (!dq_range_ok(tok_off, tok_size, m->size) || !dq_range_ok(meta_off, meta_size, m->size)) {
        rc = DQ_ERR(e, DQ_EFILE, "%s: tokenizer or metadata section extends past the end of the file", path);
        goto fail;
    }
    // Sections in file order, none overlapping: header, directory, tokenizer, metadata, tensor data.
    uint64_t data_off = rd64(h + H_DATAOFF);
    if (!dq_range_ok(dir_off, (uint64_t)m->n_tensors * DQ_DIRENT_SIZE, m->size) || dir_off < DQ_HEADER_SIZE || tok_off < dir_off + (uint64_t)m->n_tensors * DQ_DIRENT_SIZE ||
        meta_off < tok_off + tok_size || data_off < meta_off + meta_size || data_off > m->size ||
        data_off % DQ_ALIGN != 0) {
        rc = DQ_ERR(e, DQ_EFILE, "%s: sections overlap or are out of order", path);
        goto fail;
    }
    if ((rc = load_directory(m, dir_off, data_off, e))) goto fail;
    // Checksum: header with its checksum field zeroed, directory, tokenizer, metadata.
    uint8_t hcopy[DQ_HEADER_SIZE];
    memcpy(hcopy, h, DQ_HEADER_SIZE);
    wr64(hcopy + H_CHECKSUM, 0);
    uint64_t sum = fnv1a(FNV_INIT, hcopy, DQ_HEADER_SIZE);
    sum = fnv1a(sum, m->map + dir_off, (size_t)m->n_tensors * DQ_DIRENT_SIZE);
    sum = fnv1a(sum, m->map + tok_off, tok_size);
    sum = fnv1a(sum, m->map + meta_off, meta_size);
    if (sum != rd64(h + H_CHECKSUM)) {
        rc = DQ_ERR(e, DQ_EFILE, "%s: header checksum mismatch (file damaged)", path);
        goto fail;
    }
    m->meta = malloc(meta_size + 1);
    m->layers = calloc(m->c.n_layers, sizeof *m->layers);
    if (!m->meta || !m->layers) {
        rc = DQ_ERR(e, DQ_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    memcpy(m->meta, m->map + meta_off, meta_size);
    m->meta[meta_size] = 0;
    if ((rc = dq_tok_deserialize(&m->tok, m->map + tok_off, tok_size, path, e))) goto fail;
    if ((uint32_t)dq_tok_n_vocab(m->tok) != m->c.vocab) {
        rc = DQ_ERR(e, DQ_EFILE, "%s: tokenizer has %d tokens but the model's vocabulary is %u", path,
                    dq_tok_n_vocab(m->tok), m->c.vocab);
        goto fail;
    }
    tensor_spec *specs = malloc(sizeof *specs * (3 + 9 * (size_t)m->c.n_layers));
    if (!specs) {
        rc = DQ_ERR(e, DQ_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    int ns = tensor_specs(specs, &m->c, m, NULL);
    for (int i = 0; i < ns && rc == DQ_OK; i++) {
        const tensor_spec *t = &specs[i];
        if (t->matrix) {
            rc = bind_matrix(m, t, e);
        } else {
            rc = get_tensor(m, t->name, DQ_DT_F32, t->n, 1, (const void **)t->dst_vec, e);
        }
    }
    if (!rc && m->c.wtype == DQ_WTYPE_INT8) rc = prepare_matrices(m, specs, ns, e);
    free(specs);
    if (rc) goto fail;
    if (m->c.tied) m->cls = m->tok_emb;
    // Once the file has passed every check (a file that fails is not read through): blocks that
    // the page cache holds in 4 KiB pages (a file just copied or downloaded, parts the kernel
    // reclaimed) are read again into 2 MiB ones (dq_map_rehuge), now and when
    // dq_model_refresh_pages asks; DYNQ_FILE_HUGE=off leaves the cache as it is.
    m->rehuge = !env_off("DYNQ_FILE_HUGE");
    m->file_reread = dq_model_refresh_pages(m);
    m->load_seconds = dq_now() - t0;
    return DQ_OK;
fail:
    dq_model_free(m);
    return rc;
}

static void release_mat(dq_mat *M) {
    if (M->q.w || M->q.panels) dq_qweight_release(&M->q);
}

void dq_model_free(dq_model *m) {
    if (m->layers) {
        for (uint32_t l = 0; l < m->c.n_layers; l++) {
            dq_layer *L = &m->layers[l];
            release_mat(&L->wq), release_mat(&L->wk), release_mat(&L->wv), release_mat(&L->wo);
            release_mat(&L->w1), release_mat(&L->w2), release_mat(&L->w3);
        }
    }
    release_mat(&m->tok_emb);
    if (!m->c.tied) release_mat(&m->cls);
    free(m->layers);
    free(m->tensors);
    free(m->meta);
    if (m->tok) dq_tok_free(m->tok);
    dq_unmap_file(m->map, m->size);
    if (m->map) close(m->fd);
    memset(m, 0, sizeof *m);
}

// At most this long re-reading blocks in one call: on this VM's disk 1.1 GB took 0.65 s, but a
// slow disk must not make a short `dynq run` wait tens of seconds for a file just downloaded;
// the next load (or chat turn) goes on where this one stopped.
#define REHUGE_BUDGET_S 1.0
size_t dq_model_refresh_pages(dq_model *m) {
    if (!m->rehuge) return 0;
    int cannot = 0;
    const size_t r = dq_map_rehuge(m->fd, m->map, m->size, REHUGE_BUDGET_S, &cannot);
    if (cannot) m->rehuge = 0;  // no use trying again (each try may read a few blocks again for nothing)
    return r;
}

const char *dq_model_meta(const dq_model *m, const char *key, char *buf, size_t cap) {
    size_t kl = strlen(key);
    for (const char *p = m->meta; p && *p;) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        if (n > kl && strncmp(p, key, kl) == 0 && p[kl] == '=') {
            size_t vl = n - kl - 1 < cap - 1 ? n - kl - 1 : cap - 1;
            memcpy(buf, p + kl + 1, vl);
            buf[vl] = 0;
            return buf;
        }
        p += n + (nl != NULL);
    }
    return NULL;
}

size_t dq_model_weight_bytes(const dq_model *m) {
    // Everything a decode step streams: the matrices (and their scales), not the embedding row.
    size_t total = 0;
    for (uint32_t i = 0; i < m->n_tensors; i++) {
        const dq_tensor_info *t = &m->tensors[i];
        if (strncmp(t->name, "tok_embeddings", 14) == 0 && !m->c.tied) continue;
        total += t->nbytes;
    }
    return total;
}

// ---------------------------------------------------------------- run state

static size_t big_dim(size_t a, size_t b) { return a > b ? a : b; }

int dq_state_alloc(dq_state *s, const dq_model *m, int ctx, int max_batch, int n_threads, dq_act_scheme act,
                   dq_kv_type kty, dq_kv_type vty, dq_err *e) {
    memset(s, 0, sizeof *s);
    const dq_config *c = &m->c;
    if (ctx <= 0) ctx = (int)c->ctx_len;
    if (max_batch <= 0) max_batch = 1;
    if (max_batch > ctx) max_batch = ctx;
    s->ctx = ctx;
    s->max_batch = max_batch;
    s->act = act;
    s->kty = kty, s->vty = vty;
    size_t B = (size_t)max_batch, C = c->dim, QD = (size_t)c->n_heads * c->head_dim,
           KD = (size_t)c->n_kv_heads * c->head_dim, F = c->ffn_dim, V = c->vocab, L = c->n_layers, T = (size_t)ctx;
    size_t kv_elems, TP = (T + 15) & ~(size_t)15;
    s->kv_len = (int)TP;
    if (dq_mul_size(L * TP, KD, &kv_elems) || kv_elems > ((size_t)1 << 40))
        return DQ_ERR(e, DQ_ENOMEM, "a KV cache of %d positions is too large", ctx);
    // Refuse what cannot fit in physical memory: with overcommit, malloc would succeed and
    // the first touch of the cache would end in an OOM kill instead of an error.
    long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
    const size_t hd = c->head_dim, krow = dq_kv_row_bytes(kty, (int)hd), vrow = dq_kv_row_bytes(vty, (int)hd);
    const double kv_bytes = (double)kv_elems / (double)hd * (double)(krow + vrow);
    const int widen = (kty != DQ_KV_F32 || vty != DQ_KV_F32) && max_batch > 1;  // see dq_state.widen
    double need = kv_bytes + (widen ? 8.0 * n_threads * (double)TP * c->head_dim : 0) + (double)B * (double)(4 * C + 2 * big_dim(QD, C) + 2 * KD + 2 * F + V) * 4;
    if (pages > 0 && psz > 0 && need > 0.9 * (double)pages * (double)psz)
        return DQ_ERR(e, DQ_ENOMEM, "a context of %d tokens needs %.1f GiB for the KV cache and activations; this machine has %.1f GiB",
                      ctx, need / 1073741824.0, (double)pages * (double)psz / 1073741824.0);
    int rc = dq_pool_create(&s->pool, n_threads, e);
    if (rc) return rc;
    s->n_threads = dq_pool_nthreads(s->pool);
    size_t big = QD > C ? QD : C;
    s->x = dq_alloc(B * C * sizeof(float));
    s->xb = dq_alloc(B * big * sizeof(float));
    s->xb2 = dq_alloc(B * big * sizeof(float));
    s->q = dq_alloc(B * QD * sizeof(float));
    s->k = dq_alloc(B * KD * sizeof(float));
    s->v = dq_alloc(B * KD * sizeof(float));
    s->hb = dq_alloc(B * F * sizeof(float));
    s->hb2 = dq_alloc(B * F * sizeof(float));
    s->amax = dq_alloc(B * sizeof(float));
    s->att = dq_alloc((size_t)s->n_threads * dq_attn_scratch(T) * sizeof(float));
    s->logits = dq_alloc(B * V * sizeof(float));
    // In 2 MiB pages where the kernel allows (dq_alloc_big): decode sweeps every cached
    // position of every head once per token, from memory on long contexts, and in 4 KiB pages
    // each page costs a TLB miss (docs/PERFORMANCE.md, "KV cache in 2 MiB pages").
    // DYNQ_KV_HUGE=off keeps it on the heap in 4 KiB pages: a first touch of 2 MiB pages can cost
    // more at startup on these VMs (same section).
    const int kv_huge = !env_off("DYNQ_KV_HUGE");
    s->key_bytes = kv_elems / hd * krow, s->value_bytes = kv_elems / hd * vrow;
    s->key_cache = kv_huge ? dq_alloc_big(s->key_bytes, &s->key_mapped) : dq_alloc(s->key_bytes);
    s->value_cache = kv_huge ? dq_alloc_big(s->value_bytes, &s->value_mapped) : dq_alloc(s->value_bytes);
    if (widen) {
        s->widen = dq_alloc((size_t)s->n_threads * 2 * TP * c->head_dim * sizeof(float));
        s->wtag = dq_alloc((size_t)s->n_threads * sizeof *s->wtag);
        if (!s->widen || !s->wtag) {
            dq_state_free(s);
            return DQ_ERR(e, DQ_ENOMEM, "out of memory for a context of %d tokens", ctx);
        }
        for (int i = 0; i < s->n_threads; i++) s->wtag[i].serial = -1;
    }
    s->rope_cos = dq_alloc(T * c->head_dim * sizeof(float));
    s->rope_sin = dq_alloc(T * c->head_dim * sizeof(float));
    if (!s->x || !s->xb || !s->xb2 || !s->q || !s->k || !s->v || !s->hb || !s->hb2 || !s->amax || !s->att || !s->logits ||
        !s->key_cache || !s->value_cache || !s->rope_cos || !s->rope_sin) {
        dq_state_free(s);
        return DQ_ERR(e, DQ_ENOMEM, "out of memory for a context of %d tokens (KV cache %.1f MiB)", ctx,
                      kv_bytes / 1048576.0);
    }
    for (int p = 0; p < ctx; p++)  // RoPE tables, one row of hd per position
        dq_rope_tables(s->rope_cos + (size_t)p * c->head_dim, s->rope_sin + (size_t)p * c->head_dim, p, (int)c->head_dim,
                       c->rope_style == DQ_ROPE_HALF, c->rope_theta);
    return DQ_OK;
}

double dq_state_kv_huge_fraction(const dq_state *s) {
    if (!s->key_mapped || !s->value_mapped) return -1.0;
    const double k = dq_map_huge_fraction(s->key_cache, s->key_bytes), v = dq_map_huge_fraction(s->value_cache, s->value_bytes);
    if (k < 0 || v < 0) return -1.0;
    return (k * (double)s->key_bytes + v * (double)s->value_bytes) / (double)(s->key_bytes + s->value_bytes);
}

void dq_state_free(dq_state *s) {
    dq_free(s->x), dq_free(s->xb), dq_free(s->xb2), dq_free(s->q), dq_free(s->k), dq_free(s->v);
    dq_free(s->hb), dq_free(s->hb2), dq_free(s->amax), dq_free(s->att), dq_free(s->logits);
    dq_free_big(s->key_cache, s->key_bytes, s->key_mapped);
    dq_free_big(s->value_cache, s->value_bytes, s->value_mapped);
    dq_free(s->rope_cos), dq_free(s->rope_sin);
    dq_free(s->widen), dq_free(s->wtag);
    if (s->pool) dq_pool_free(s->pool);
    memset(s, 0, sizeof *s);
}

// ---------------------------------------------------------------- forward pass

// ys[i] = x @ ws[i]^T for `count` matrices that share the input (q/k/v; gate/up; or one):
// INT8 models quantize the input once and reuse the codes. pre: x already quantized (the
// per-token step did it), or NULL; amax: each token's max |x| as the kernel that wrote x
// returned it (the quantizer then skips that pass), or NULL.
static void matmul_shared(dq_state *s, const float *x, const dq_qact *pre, const float *amax, int B, int count,
                          float *const *ys, const dq_mat *const *ws) {
    if (ws[0]->f) {
        for (int i = 0; i < count; i++) dq_matmul_f32(s->pool, ys[i], x, B, ws[i]->f, ws[i]->n, ws[i]->k);
        return;
    }
    dq_qact qa;
    if (pre) qa = *pre;
    else dq_quantize_act(s->pool, &qa, x, B, ws[0]->k, s->act, amax);
    const dq_qweight *qw[3];
    for (int i = 0; i < count; i++) qw[i] = &ws[i]->q;
    dq_matmul_q8_multi(s->pool, count, ys, &qa, qw);
}

// The per-token steps between the matmuls, split over the pool by tokens (each token's values
// depend on that token alone, so the split cannot change a result), claimed in small units
// (dq_claim_next). Small batches (decode) run inline: a hand-off costs more than the work.
typedef struct tok_task {
    const dq_config *c;
    dq_state *s;
    int kind, B, pos, layer;
    const float *w;          // RMSNorm weight
    int quant;               // also quantize each token's output into s->qa (set up by per_token)
    const dq_mat *emb;       // TT_EMBED_NORM: the token embedding, and the batch's tokens
    const int32_t *tokens;
    dq_claim reg[DQ_CLAIM_REGIONS];
} tok_task;
// TT_EMBED_NORM: x = the tokens' embeddings, xb = rmsnorm(x) (the first layer). The lookup is a
// per-token step too: an INT8 embedding in the panel layout reads 16x its row's bytes (ops.h,
// dq_qweight_rows_f32), ~2 us a token on the AMX Xeon, which the caller did alone before the
// first parallel step (~1.9 % of a two-thread 128-token prefill of the stories110M shape). There,
// `scripts/ab_decode.c ... 2 128 31 prefill` against the caller's loop: 1.011x and 1.013x at two
// threads, 1.003x at one.
enum { TT_RESID_NORM, TT_EMBED_NORM, TT_ROPE_CACHE, TT_SWIGLU };

// Byte offset of one head in a cache of type t: kv_len rows of dq_kv_row_bytes (ops.h), its keys
// in blocks of 16 positions (dq_kt_index), its values one row per position.
static size_t kv_head(const dq_state *s, const dq_config *c, int layer, uint32_t g, dq_kv_type t) {
    return ((size_t)layer * c->n_kv_heads + g) * (size_t)s->kv_len * dq_kv_row_bytes(t, (int)c->head_dim);
}

// Work units of the per-token steps: 4 tokens; for the rope/cache step, the batch's pieces of
// 16-position cache blocks (no block's cache lines written by two threads). Unit u is tokens
// [unit_start(u), unit_start(u + 1)) of a batch of B at positions pos..
#define TOK_UNIT 4
static int tok_units(int kind, int B, int pos) {
    return kind == TT_ROPE_CACHE ? (pos % 16 + B + 15) / 16 : (B + TOK_UNIT - 1) / TOK_UNIT;
}
static int unit_start(int kind, int B, int pos, int u) {
    int t = kind == TT_ROPE_CACHE ? u * 16 - pos % 16 : u * TOK_UNIT;
    return t < 0 ? 0 : t < B ? t : B;
}

// Tokens [t0, t1) of a batch at positions pos..: RoPE on the query heads of KV heads [g0, g1) and
// on those KV heads' keys, then their keys and values into the caches. Each head's arithmetic is
// its own, so splitting the heads (the decode attention does, attn_item) changes no result.
static void rope_cache(const dq_config *c, dq_state *s, int layer, int pos, int t0, int t1, uint32_t g0, uint32_t g1) {
    int H = (int)c->n_heads, hd = (int)c->head_dim, grp = (int)(c->n_heads / c->n_kv_heads);
    int KD = (int)(c->n_kv_heads * c->head_dim), QD = H * hd;
    const int halves = c->rope_style == DQ_ROPE_HALF;
    for (int t = t0; t < t1; t++) {
        const float *cs = s->rope_cos + (size_t)(pos + t) * hd, *sn = s->rope_sin + (size_t)(pos + t) * hd;
        dq_rope_f32(s->q + (size_t)t * QD + (size_t)g0 * grp * hd, (int)(g1 - g0) * grp, hd, halves, cs, sn);
        dq_rope_f32(s->k + (size_t)t * KD + (size_t)g0 * hd, (int)(g1 - g0), hd, halves, cs, sn);
    }
    const size_t vrow = dq_kv_row_bytes(s->vty, hd);
    for (uint32_t g = g0; g < g1; g++) {
        // values: each head's rows in position order (the attention's value pass then reads
        // one contiguous stream; rows kv_dim apart fell into a quarter of the L1's sets and
        // defeated the hardware prefetchers)
        char *vh = (char *)s->value_cache + kv_head(s, c, layer, g, s->vty);
        for (int t = t0; t < t1; t++) {
            const float *src = s->v + (size_t)t * KD + (size_t)g * hd;
            char *row = vh + (size_t)(pos + t) * vrow;
            if (s->vty == DQ_KV_Q8)
                dq_q8_row((int8_t *)row, 1, (float *)(row + dq_q8_codes(hd)), 1, src, hd);
            else if (s->vty == DQ_KV_F16)
                dq_f32_to_f16_row((uint16_t *)row, src, (size_t)hd);
            else
                memcpy(row, src, (size_t)hd * sizeof(float));
        }
        const float *kt = s->k + (size_t)g * hd;
        char *kh = (char *)s->key_cache + kv_head(s, c, layer, g, s->kty);
        if (s->kty == DQ_KV_Q8) {  // q8_0 keys: each row quantized straight into its block's lane
            for (int t = t0; t < t1; t++) {
                int p = pos + t;
                dq_q8_row((int8_t *)kh + dq_q8_key_code(p, hd), 16, (float *)(kh + dq_q8_key_scale(p, hd)), 16,
                          kt + (size_t)t * KD, hd);
            }
            continue;
        }
        if (s->kty == DQ_KV_F16) {  // FP16 keys: each row converted, then spread over its block
            for (int t = t0; t < t1; t++) {
                uint16_t *kb = (uint16_t *)kh + dq_kt_index(pos + t, 0, hd);
                uint16_t h[256];
                for (int d0 = 0; d0 < hd; d0 += 256) {
                    int nd = hd - d0 < 256 ? hd - d0 : 256;
                    dq_f32_to_f16_row(h, kt + (size_t)t * KD + d0, (size_t)nd);
                    for (int d = 0; d < nd; d++) kb[(size_t)(d0 + d) * 16] = h[d];
                }
            }
            continue;
        }
        // block by block (dq_kt_index): a whole block by the kernel (dq_kblock_f32), a part of
        // one (a batch's first or last positions) value by value
        for (int t = t0; t < t1;) {
            int p = pos + t, lane = p % 16, n = 16 - lane < t1 - t ? 16 - lane : t1 - t;
            float *kb = (float *)kh + dq_kt_index(p, 0, hd);
            const float *src = kt + (size_t)t * KD;
            if (n == 16)
                dq_kblock_f32(kb, src, (size_t)KD, hd);
            else
                for (int j = 0; j < n; j++)
                    for (int d = 0; d < hd; d++) kb[d * 16 + j] = src[(size_t)j * KD + d];
            t += n;
        }
    }
}

// The embeddings of tokens tok[0..n) into x (rows of C): FP32 copied, INT8 as scale * code.
static void embed(float *x, int C, const dq_mat *E, const int32_t *tok, int n) {
    if (E->f)
        for (int t = 0; t < n; t++) memcpy(x + (size_t)t * C, E->f + (size_t)tok[t] * C, (size_t)C * sizeof(float));
    else
        dq_qweight_rows_f32(&E->q, tok, n, x, (size_t)C);
}

// Tokens [t0, t1) of a per-token step.
static void tok_range(const tok_task *a, int t0, int t1) {
    const dq_config *c = a->c;
    dq_state *s = a->s;
    int C = (int)c->dim, F = (int)c->ffn_dim;
    if (a->kind == TT_ROPE_CACHE) {
        rope_cache(c, s, a->layer, a->pos, t0, t1, 0, c->n_kv_heads);
        return;
    }
    if (a->kind == TT_EMBED_NORM) embed(s->x + (size_t)t0 * C, C, a->emb, a->tokens + t0, t1 - t0);
    for (int t = t0; t < t1; t++) {  // each also keeps its output's max |.| for the quantizer
        float *x = s->x + (size_t)t * C;
        switch (a->kind) {
        case TT_RESID_NORM:  // x += xb2; xb = rmsnorm(x)
            s->amax[t] = dq_rmsnorm_f32(s->xb + (size_t)t * C, x, s->xb2 + (size_t)t * C, a->w, C, c->norm_eps);
            break;
        case TT_EMBED_NORM: s->amax[t] = dq_rmsnorm_f32(s->xb + (size_t)t * C, x, NULL, a->w, C, c->norm_eps); break;
        case TT_SWIGLU:
            s->amax[t] = dq_swiglu_f32(s->hb + (size_t)t * F, s->hb + (size_t)t * F, s->hb2 + (size_t)t * F, (size_t)F);
            break;
        }
        // while the row is still in L1
        if (a->quant) dq_quantize_act_rows(&s->qa, a->kind == TT_SWIGLU ? s->hb : s->xb, t, t + 1, s->amax);
    }
}

static void tok_worker(void *ctx, int ith, int nth) {
    tok_task *a = ctx;
    int k = 0, u;
    while ((u = dq_claim_next(a->reg, tok_units(a->kind, a->B, a->pos), ith, nth, &k)) >= 0)
        tok_range(a, unit_start(a->kind, a->B, a->pos, u), unit_start(a->kind, a->B, a->pos, u + 1));
}

// One per-token step over the batch. next: the matrix that consumes its output (norms: q or
// gate; SwiGLU: down); if it is INT8, the step also quantizes each token's output, and returns
// s->qa ready for it (else NULL).
static const dq_qact *per_token(dq_state *s, const dq_model *m, int kind, int B, int pos, int layer, const float *w,
                                const dq_mat *next, const int32_t *tokens) {
    tok_task a = {&m->c, s, kind, B, pos, layer, w, next && !next->f && s->act != DQ_ACT_TENSOR, &m->tok_emb, tokens, {{0}}};
    if (a.quant) dq_quantize_act_begin(s->pool, &s->qa, B, next->k, s->act);
    if (B >= 4) dq_pool_run_adaptive(s->pool, tok_worker, &a);
    else tok_range(&a, 0, B);
    return a.quant ? &s->qa : NULL;
}

// Attention for a batch. Work items of up to DQ_ATTN_NQ (8) queries that share a head's cache:
// in prefill, eight consecutive tokens of one query head; in decode (one token), up to eight of
// the query heads that share a KV head (grouped-query attention). Items are independent, and an
// output's arithmetic does not depend on which item holds it, so neither the split across
// threads nor the batch size changes a result.
typedef struct attn_task {
    const dq_config *c;
    dq_state *s;
    int layer, B, pos;
    int rope;    // each item first does the RoPE and cache write of its KV head (rope_cache)
    float *out;  // (B, H*hd)
    dq_claim reg[DQ_CLAIM_REGIONS];
} attn_task;

// Positions [p0, p1) of one head's keys (keys = 1: whole blocks of 16) or values into FP32 at
// dst: FP16 exactly, q8_0 as code * scale, the product the attention kernel forms on load.
static void widen(float *dst, const char *src, dq_kv_type t, int p0, int p1, int hd, int keys) {
    const char *from = src + (size_t)p0 * dq_kv_row_bytes(t, hd);
    if (t == DQ_KV_F16)
        dq_f16_to_f32_row(dst + (size_t)p0 * hd, (const uint16_t *)from, (size_t)(p1 - p0) * hd);
    else
        dq_q8_to_f32(dst + (size_t)p0 * hd, (const int8_t *)from, keys ? (p1 - p0) / 16 : p1 - p0, hd, keys);
}
// The head's keys and values as FP32 for an item that needs positions < need, in pool slot ith's
// widening buffer: what the slot already widened for this batch, layer and KV head stays (the
// cache below pos + B does not change during a batch's attention), the rest is converted.
static void widen_head(dq_state *s, int ith, int layer, int g, int need, int hd, const void **kt, const void **v) {
    struct dq_widen_tag *w = &s->wtag[ith];
    float *wk = s->widen + (size_t)ith * 2 * s->kv_len * hd, *wv = wk + (size_t)s->kv_len * hd;
    if (w->serial != s->serial || w->layer != layer || w->g != g) *w = (struct dq_widen_tag){s->serial, layer, g, 0, 0};
    if (s->kty != DQ_KV_F32) {
        int want = (need + 15) / 16 * 16;  // whole key blocks
        if (want > w->nk) widen(wk, *kt, s->kty, w->nk, want, hd, 1), w->nk = want;
        *kt = wk;
    }
    if (s->vty != DQ_KV_F32) {
        if (need > w->nv) widen(wv, *v, s->vty, w->nv, need, hd, 0), w->nv = need;
        *v = wv;
    }
}

// Item it of an attention step (see attn_worker).
static void attn_item(const attn_task *a, int it, int per_head, float *att, int ith) {
    const dq_config *c = a->c;
    dq_state *s = a->s;
    int H = (int)c->n_heads, hd = (int)c->head_dim, QD = H * hd;
    int grp = (int)(c->n_heads / c->n_kv_heads);
    float scale = 1.0f / sqrtf((float)hd);
    int h, t, nq, dnp, ldq;
    if (a->B > 1) {
        h = it / per_head, t = it % per_head * DQ_ATTN_NQ, nq = a->B - t < DQ_ATTN_NQ ? a->B - t : DQ_ATTN_NQ;
        dnp = 1, ldq = QD;
    } else {
        int j = it % per_head * DQ_ATTN_NQ;
        h = it / per_head * grp + j, t = 0, nq = grp - j < DQ_ATTN_NQ ? grp - j : DQ_ATTN_NQ, dnp = 0, ldq = hd;
    }
    size_t at = (size_t)t * QD + (size_t)h * hd;
    const uint32_t g = (uint32_t)(h / grp);  // the KV head
    const void *kt = (const char *)s->key_cache + kv_head(s, c, a->layer, g, s->kty);
    const void *v = (const char *)s->value_cache + kv_head(s, c, a->layer, g, s->vty);
    dq_kv_type kty = s->kty, vty = s->vty;
    int ldv = vty == DQ_KV_Q8 ? (int)dq_kv_row_bytes(DQ_KV_Q8, hd) : hd;  // in elements: bytes for q8_0
    if (s->widen && a->B > 1) {  // prefill over an FP16 or q8_0 cache: the same results (its attention is FP32 over the widened values)
        widen_head(s, ith, a->layer, (int)g, a->pos + t + nq, hd, &kt, &v);
        kty = vty = DQ_KV_F32, ldv = hd;
    }
    if (a->rope) rope_cache(c, s, a->layer, a->pos, 0, 1, g, g + 1);
    dq_attn(a->out + at, ldq, s->q + at, ldq, nq, a->pos + t + 1, dnp, kt, kty, v, vty, ldv, hd, scale, att);
}

static void attn_worker(void *ctx, int ith, int nth) {
    attn_task *a = ctx;
    const dq_config *c = a->c;
    dq_state *s = a->s;
    int H = (int)c->n_heads;
    int grp = (int)(c->n_heads / c->n_kv_heads);
    float *att = s->att + (size_t)ith * dq_attn_scratch(s->ctx);
    // items: (head, block of 8 tokens), head-major, or in decode (KV head, block of 8 of its heads)
    int per_head = ((a->B > 1 ? a->B : grp) + DQ_ATTN_NQ - 1) / DQ_ATTN_NQ, outer = a->B > 1 ? H : (int)c->n_kv_heads;
    int items = outer * per_head;
    // rope: each KV head's RoPE and cache write done by its item, so there must be exactly one
    DQ_ASSERT(!a->rope || (a->B == 1 && per_head == 1));
    // claimed dynamically (dq_claim_next): a thread's own region is contiguous, and neighbouring
    // items share K/V rows in cache
    int k = 0, it;
    while ((it = dq_claim_next(a->reg, items, ith, nth, &k)) >= 0) attn_item(a, it, per_head, att, ith);
}


// Decode: the INT8 matmul of ws[0..count) follows the next pool job; the threads warm their shares
// of it while they wait (dq_matmul_q8_warm).
static void warm(dq_state *s, int B, int count, const dq_mat *const *ws) {
    if (B != 1 || ws[0]->f) return;
    const dq_qweight *q[3];
    for (int i = 0; i < count; i++) q[i] = &ws[i]->q;
    dq_matmul_q8_warm(s->pool, count, q);
}

// One batch of B <= max_batch tokens at positions pos..pos+B-1.
static void forward_batch(const dq_model *m, dq_state *s, const int32_t *tokens, int B, int pos, int logits_mode) {
    const dq_config *c = &m->c;
    int C = (int)c->dim;
    float eps = c->norm_eps;
    s->serial++;
    for (uint32_t l = 0; l < c->n_layers; l++) {
        const dq_layer *L = &m->layers[l];
        // x += the previous layer's FFN output (kept in xb2 until here), then the attention norm
        const dq_qact *qa = per_token(s, m, l ? TT_RESID_NORM : TT_EMBED_NORM, B, pos, (int)l, L->rms_att, &L->wq, tokens);
        if (l && s->capture) memcpy(s->capture + (size_t)(l - 1) * B * C, s->x, (size_t)B * C * sizeof(float));
        matmul_shared(s, s->xb, qa, s->amax, B, 3, (float *const[]){s->q, s->k, s->v},
                      (const dq_mat *const[]){&L->wq, &L->wk, &L->wv});
        // One token whose KV heads are one item each, on several threads: the items do the RoPE
        // and cache write themselves, in parallel, rather than the caller before them while the
        // workers wait. (One thread keeps the separate step: its cache writes, all heads' at once,
        // overlap one another's misses better; paired per-token A/B, docs/PERFORMANCE.md.)
        const int fused = B == 1 && c->n_heads / c->n_kv_heads <= DQ_ATTN_NQ && dq_pool_nthreads_now(s->pool) > 1;
        if (!fused) per_token(s, m, TT_ROPE_CACHE, B, pos, (int)l, NULL, NULL, NULL);
        attn_task at = {c, s, (int)l, B, pos, fused, s->xb, {{0}}};
        warm(s, B, 1, (const dq_mat *const[]){&L->wo});
        dq_pool_run_adaptive(s->pool, attn_worker, &at);
        warm(s, B, 2, (const dq_mat *const[]){&L->w1, &L->w3});
        matmul_shared(s, s->xb, NULL, NULL, B, 1, &s->xb2, (const dq_mat *const[]){&L->wo});
        qa = per_token(s, m, TT_RESID_NORM, B, pos, (int)l, L->rms_ffn, &L->w1, NULL);
        warm(s, B, 1, (const dq_mat *const[]){&L->w2});
        matmul_shared(s, s->xb, qa, s->amax, B, 2, (float *const[]){s->hb, s->hb2}, (const dq_mat *const[]){&L->w1, &L->w3});
        qa = per_token(s, m, TT_SWIGLU, B, pos, (int)l, NULL, &L->w2, NULL);
        if (l + 1 < c->n_layers) warm(s, B, 3, (const dq_mat *const[]){&L[1].wq, &L[1].wk, &L[1].wv});
        else if (logits_mode != DQ_LOGITS_NONE) warm(s, B, 1, (const dq_mat *const[]){&m->cls});
        matmul_shared(s, s->hb, qa, s->amax, B, 1, &s->xb2, (const dq_mat *const[]){&L->w2});
    }
    // the last layer's FFN output, and its capture
    for (size_t i = 0; i < (size_t)B * C; i++) s->x[i] += s->xb2[i];
    if (s->capture) memcpy(s->capture + (size_t)(c->n_layers - 1) * B * C, s->x, (size_t)B * C * sizeof(float));
    if (logits_mode == DQ_LOGITS_NONE) return;
    int first = logits_mode == DQ_LOGITS_LAST ? B - 1 : 0, nrow = B - first;
    for (int t = first; t < B; t++)
        s->amax[t - first] = dq_rmsnorm_f32(s->xb + (size_t)(t - first) * C, s->x + (size_t)t * C, NULL, m->rms_final, C, eps);
    matmul_shared(s, s->xb, NULL, s->amax, nrow, 1, &s->logits, (const dq_mat *const[]){&m->cls});
}

int dq_forward(const dq_model *m, dq_state *s, const int32_t *tokens, int n, int pos, int logits_mode, dq_err *e) {
    if (n <= 0) return DQ_OK;
    if (pos < 0 || n > s->ctx - pos)
        return DQ_ERR(e, DQ_ECTX, "context overflow: %d tokens at position %d exceed the context of %d", n, pos, s->ctx);
    if (logits_mode == DQ_LOGITS_ALL && n > s->max_batch)
        return DQ_ERR(e, DQ_EUSAGE, "internal: all-position logits for %d tokens exceed the batch of %d", n, s->max_batch);
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || (uint32_t)tokens[i] >= m->c.vocab)
            return DQ_ERR(e, DQ_EUSAGE, "token id %d is outside the vocabulary of %u", tokens[i], m->c.vocab);
    for (int done = 0; done < n;) {
        int b = n - done < s->max_batch ? n - done : s->max_batch;
        int last = done + b == n;
        forward_batch(m, s, tokens + done, b, pos + done, last ? logits_mode : DQ_LOGITS_NONE);
        done += b;
    }
    return DQ_OK;
}

// ---------------------------------------------------------------- writing

#include "quant.h"

typedef struct out_tensor {
    char name[48];
    uint32_t dtype, ndim;
    uint64_t dims[2], offset, nbytes;
    const tensor_spec *spec;
    int part;  // 0 = data (FP32 or int8), 1 = .scale, 2 = .rowsum, -1 = vector
} out_tensor;

static int write_all(FILE *f, const void *p, size_t n) { return fwrite(p, 1, n, f) == n ? 0 : -1; }

static int write_pad(FILE *f, uint64_t *pos, uint64_t to) {
    static const uint8_t zeros[DQ_ALIGN];
    while (*pos < to) {
        size_t n = to - *pos > DQ_ALIGN ? DQ_ALIGN : (size_t)(to - *pos);
        if (write_all(f, zeros, n)) return -1;
        *pos += n;
    }
    return 0;
}

int dq_model_write(const dq_source *src, const char *tmp_path, const char *out_path, dq_progress_fn progress,
                   void *progress_ud, dq_err *e) {
    const dq_config *c = &src->c;
    int rc = dq_config_check(c, out_path, e);
    if (rc) return rc;
    int q8 = c->wtype == DQ_WTYPE_INT8;
    tensor_spec *specs = malloc(sizeof *specs * (3 + 9 * (size_t)c->n_layers));
    out_tensor *outs = malloc(sizeof *outs * 3 * (3 + 9 * (size_t)c->n_layers));
    uint8_t *tok = NULL, *dirbuf = NULL;
    size_t tok_size = 0;
    int8_t *qbuf = NULL, *pbuf = NULL;
    float *sbuf = NULL;
    int32_t *rbuf = NULL;
    FILE *f = NULL;
    if (!specs || !outs) {
        rc = DQ_ERR(e, DQ_ENOMEM, "%s: out of memory", out_path);
        goto done;
    }
    if ((rc = dq_tok_serialize(src->tok, &tok, &tok_size, e))) goto done;
    int ns = tensor_specs(specs, c, NULL, src), no = 0;
    size_t max_mat = 0, max_rows = 0, max_pan = 0;
    for (int i = 0; i < ns; i++) {
        const tensor_spec *t = &specs[i];
        int parts = t->matrix ? (q8 ? 3 : 1) : 1;
        if (t->matrix && t->n * t->k > max_mat) max_mat = t->n * t->k;
        if (t->matrix && q8) {
            size_t pb = dq_panel_bytes((int)t->n, (int)t->k);
            if (!pb) {
                rc = DQ_ERR(e, DQ_EFILE, "%s: matrix '%s' (%llu x %llu) is too large for the int8 kernels", out_path,
                            t->name, (unsigned long long)t->n, (unsigned long long)t->k);
                goto done;
            }
            if (pb > max_pan) max_pan = pb;
        }
        if (t->matrix && t->n > max_rows) max_rows = t->n;
        for (int p = 0; p < parts; p++) {
            out_tensor *o = &outs[no++];
            memset(o, 0, sizeof *o);
            o->spec = t;
            o->part = t->matrix ? p : -1;
            snprintf(o->name, sizeof o->name, "%s%s", t->name, p == 1 ? ".scale" : p == 2 ? ".rowsum" : "");
            if (t->matrix && p == 0) {
                o->dtype = q8 ? DQ_DT_I8P : DQ_DT_F32;
                o->ndim = 2;
                o->dims[0] = t->n;
                o->dims[1] = t->k;
            } else {
                o->dtype = p == 2 ? DQ_DT_I32 : DQ_DT_F32;
                o->ndim = 1;
                o->dims[0] = t->n;
                o->dims[1] = 0;
            }
            o->nbytes = o->dtype == DQ_DT_I8P ? dq_panel_bytes((int)t->n, (int)t->k)
                                              : o->dims[0] * (o->ndim == 2 ? o->dims[1] : 1) * dtype_size(o->dtype);
        }
    }
    size_t meta_size = src->meta ? strlen(src->meta) : 0;
    uint64_t dir_off = DQ_HEADER_SIZE, tok_off = align_up(dir_off + (uint64_t)no * DQ_DIRENT_SIZE),
             meta_off = align_up(tok_off + tok_size), data_off = align_up(meta_off + meta_size), pos = data_off;
    for (int i = 0; i < no; i++) {
        outs[i].offset = pos;
        pos = align_up(pos + outs[i].nbytes);
    }
    uint64_t file_size = outs[no - 1].offset + outs[no - 1].nbytes;
    // Header and directory.
    uint8_t hdr[DQ_HEADER_SIZE] = {0};
    memcpy(hdr + H_MAGIC, DQ_MAGIC, 4);
    wr32(hdr + H_VERSION, DQ_FORMAT_VERSION);
    wr32(hdr + H_HSIZE, DQ_HEADER_SIZE);
    wr32(hdr + H_NTENS, (uint32_t)no);
    header_put_config(hdr, c);
    wr64(hdr + H_DIROFF, dir_off);
    wr64(hdr + H_TOKOFF, tok_off);
    wr64(hdr + H_TOKSIZE, tok_size);
    wr64(hdr + H_METAOFF, meta_off);
    wr64(hdr + H_METASIZE, meta_size);
    wr64(hdr + H_DATAOFF, data_off);
    wr64(hdr + H_FILESIZE, file_size);
    dirbuf = calloc((size_t)no, DQ_DIRENT_SIZE);
    if (!dirbuf) {
        rc = DQ_ERR(e, DQ_ENOMEM, "%s: out of memory", out_path);
        goto done;
    }
    for (int i = 0; i < no; i++) {
        uint8_t *d = dirbuf + (size_t)i * DQ_DIRENT_SIZE;
        memcpy(d + D_NAME, outs[i].name, sizeof outs[i].name);
        wr32(d + D_DTYPE, outs[i].dtype);
        wr32(d + D_NDIM, outs[i].ndim);
        wr64(d + D_DIMS, outs[i].dims[0]);
        wr64(d + D_DIMS + 8, outs[i].dims[1]);
        wr64(d + D_OFFSET, outs[i].offset);
        wr64(d + D_NBYTES, outs[i].nbytes);
    }
    uint64_t sum = fnv1a(FNV_INIT, hdr, DQ_HEADER_SIZE);
    sum = fnv1a(sum, dirbuf, (size_t)no * DQ_DIRENT_SIZE);
    sum = fnv1a(sum, tok, tok_size);
    sum = fnv1a(sum, (const uint8_t *)src->meta, meta_size);
    wr64(hdr + H_CHECKSUM, sum);

    f = fopen(tmp_path, "wb");
    if (!f) {
        rc = DQ_ERR(e, DQ_EFILE, "%s: cannot create: %s", tmp_path, strerror(errno));
        goto done;
    }
    if (q8) {
        qbuf = malloc(max_mat ? max_mat : 1);
        pbuf = malloc(max_pan ? max_pan : 1);
        sbuf = malloc(sizeof(float) * max_rows);
        rbuf = malloc(sizeof(int32_t) * max_rows);
        if (!qbuf || !pbuf || !sbuf || !rbuf) {
            rc = DQ_ERR(e, DQ_ENOMEM, "%s: out of memory", out_path);
            goto done;
        }
    }
    pos = 0;
    if (write_all(f, hdr, DQ_HEADER_SIZE) || write_all(f, dirbuf, (size_t)no * DQ_DIRENT_SIZE)) goto ioerr;
    pos = DQ_HEADER_SIZE + (uint64_t)no * DQ_DIRENT_SIZE;
    if (write_pad(f, &pos, tok_off) || write_all(f, tok, tok_size)) goto ioerr;
    pos += tok_size;
    if (write_pad(f, &pos, meta_off) || write_all(f, src->meta ? src->meta : "", meta_size)) goto ioerr;
    pos += meta_size;
    for (int i = 0; i < no; i++) {
        const out_tensor *o = &outs[i];
        const tensor_spec *t = o->spec;
        if (write_pad(f, &pos, o->offset)) goto ioerr;
        const void *data = t->src;
        if (q8 && o->part >= 0) {
            if (o->part == 0) {
                long bad = dq_quantize_rows(qbuf, sbuf, rbuf, t->src, (int)t->n, (int)t->k);
                if (bad) {
                    rc = DQ_ERR(e, DQ_EFILE, "%s: tensor '%s' holds %ld non-finite values", out_path, t->name, bad);
                    goto done;
                }
                memset(pbuf, 0, o->nbytes);  // pads are zero
                dq_panelize(pbuf, qbuf, (int)t->n, (int)t->k);
                data = pbuf;
            } else {
                data = o->part == 1 ? (const void *)sbuf : (const void *)rbuf;
            }
        } else {
            // FP32 tensors must be finite too: a NaN weight silently poisons every logit.
            const float *fp = t->src;
            for (uint64_t j = 0; j < o->nbytes / 4; j++)
                if (!isfinite(fp[j])) {
                    rc = DQ_ERR(e, DQ_EFILE, "%s: tensor '%s' holds non-finite values", out_path, t->name);
                    goto done;
                }
        }
        if (write_all(f, data, o->nbytes)) goto ioerr;
        pos += o->nbytes;
        if (progress) progress(progress_ud, i + 1, no);
    }
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) goto ioerr;
    // Drop the written pages from the page cache (they are clean after the fsync): the first load
    // then reads the file back through its 2 MiB-aligned MADV_HUGEPAGE mapping (dq_map_file), and
    // a kernel that caches files in large folios keeps it in 2 MiB pages; pages cached by writing
    // are 4 KiB ones, which cost decode several percent in TLB misses (docs/PERFORMANCE.md,
    // "Huge pages").
    (void)posix_fadvise(fileno(f), 0, 0, POSIX_FADV_DONTNEED);
    if (fclose(f) != 0) {
        f = NULL;
        goto ioerr;
    }
    f = NULL;
    if (rename(tmp_path, out_path) != 0) {
        rc = DQ_ERR(e, DQ_EFILE, "%s: cannot rename into place: %s", out_path, strerror(errno));
        goto done;
    }
    rc = DQ_OK;
    goto done;
ioerr:
    rc = DQ_ERR(e, DQ_EFILE, "%s: write failed: %s", tmp_path, strerror(errno));
done:
    if (f) fclose(f);
    if (rc) unlink(tmp_path);
    free(specs), free(outs), free(tok), free(dirbuf), free(qbuf), free(pbuf), free(sbuf), free(rbuf);
    return rc;
}
