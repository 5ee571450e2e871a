// model.h: the .dynq model file (docs/FORMAT.md), the loaded model, the run state
// (activations + KV cache) and the forward pass.
#ifndef DYNQ_MODEL_H
#define DYNQ_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "ggml_like/ops.h"
#include "tokenizer/tokenizer.h"

#define DQ_MAGIC "DYNQ"
#define DQ_FORMAT_VERSION 2
#define DQ_HEADER_SIZE 256
#define DQ_DIRENT_SIZE 96
#define DQ_ALIGN 64

enum { DQ_ARCH_LLAMA = 1 };
enum { DQ_ROPE_INTERLEAVED = 0, DQ_ROPE_HALF = 1 };  // llama2.c pairs (2i,2i+1) / HF (i, i+hd/2)
enum { DQ_WTYPE_F32 = 0, DQ_WTYPE_INT8 = 1 };
// I8P: an int8 matrix [n, k] in the kernels' panel layout (docs/FORMAT.md), n rounded up to 16
// and k to 64, zero padded: the kernels read it in place from the mapped file.
enum { DQ_DT_F32 = 0, DQ_DT_I8 = 1, DQ_DT_I32 = 2, DQ_DT_I8P = 3 };

// Hyperparameters, as stored in the header.
typedef struct dq_config {
    uint32_t arch;
    uint32_t dim;         // C: model width
    uint32_t n_layers;
    uint32_t n_heads;
    uint32_t n_kv_heads;
    uint32_t head_dim;    // hd
    uint32_t ffn_dim;     // F: SwiGLU hidden width
    uint32_t vocab;       // V
    uint32_t ctx_len;     // trained context length
    uint32_t rope_style;
    float rope_theta;
    float norm_eps;
    uint32_t tied;        // classifier shares the token embedding
    uint32_t wtype;       // DQ_WTYPE_*
} dq_config;

// A weight matrix (n, k): FP32 or INT8 per-row (q.w != NULL).
typedef struct dq_mat {
    const float *f;  // (n, k) when FP32
    dq_qweight q;    // when INT8
    int n, k;
} dq_mat;

typedef struct dq_layer {
    const float *rms_att;  // (C)
    const float *rms_ffn;  // (C)
    dq_mat wq;             // (n_heads*hd, C)
    dq_mat wk, wv;         // (n_kv_heads*hd, C)
    dq_mat wo;             // (C, n_heads*hd)
    dq_mat w1, w3;         // gate, up: (F, C)
    dq_mat w2;             // down: (C, F)
} dq_layer;

typedef struct dq_tensor_info {
    char name[48];
    uint32_t dtype;
    uint32_t ndim;
    uint64_t dims[3];
    uint64_t offset, nbytes;
} dq_tensor_info;

typedef struct dq_model {
    dq_config c;
    const char *path;
    const uint8_t *map;   // the mmap-ed file (read-only)
    size_t size;
    int fd;               // the file, open while mapped (dq_model_refresh_pages)
    int rehuge;           // 0 with DYNQ_FILE_HUGE=off, or once dq_map_rehuge found it of no use
    size_t file_reread;   // bytes of it read again into 2 MiB pages at load (dq_model_refresh_pages)
    dq_tensor_info *tensors;
    uint32_t n_tensors;
    dq_mat tok_emb;       // (V, C)
    dq_mat cls;           // (V, C), == tok_emb when tied
    const float *rms_final;
    dq_layer *layers;
    dq_tokenizer *tok;
    char *meta;           // provenance text, "key=value\n" lines
    double load_seconds;  // mmap + checks + the kernels' preparation (no weights are copied)
    double repack_seconds;
} dq_model;

// Sanity limits on hyperparameters (shared by loader and converter).
int dq_config_check(const dq_config *c, const char *path, dq_err *e);
int dq_model_load(dq_model *m, const char *path, dq_err *e);
void dq_model_free(dq_model *m);
// Reads again, into 2 MiB pages, the blocks of the model file that the page cache holds in
// smaller ones, and from disk what it no longer holds (dq_map_rehuge); the load does this, and a
// long-lived process may repeat it after idle time, in which the kernel may have reclaimed part of
// an unused model piecemeal (docs/PERFORMANCE.md, "The model file read again into 2 MiB pages").
// Returns the bytes read again; spends at most about a second doing so (a slow disk spreads the
// work over several calls). Not while a dq_forward runs on the model.
size_t dq_model_refresh_pages(dq_model *m);
size_t dq_model_weight_bytes(const dq_model *m);
// Value of a provenance key ("chat_template", "source", ...) copied into buf, or NULL if absent.
const char *dq_model_meta(const dq_model *m, const char *key, char *buf, size_t cap);  // bytes streamed per token (all matrices)

// Per-session activations and KV cache. Batched prefill handles up to max_batch tokens per call.
typedef struct dq_state {
    int ctx;           // KV cache length
    int max_batch;
    int n_threads;
    dq_act_scheme act;
    dq_pool *pool;
    float *x, *xb, *xb2;   // (B, C)
    float *q;              // (B, n_heads*hd)
    float *k, *v;          // (B, kv_dim) the k and v projections (into the caches by the rope/cache step)
    float *hb, *hb2;       // (B, F)
    float *amax;           // (B) max |.| of each token's row in xb or hb (rmsnorm, swiglu), for the quantizer
    dq_qact qa;            // xb or hb quantized token by token as the per-token step writes it
    int kv_len;        // ctx rounded up to 16: positions per head in the caches
    float *att;            // (n_threads, dq_attn_scratch(ctx)) scores scratch
    float *logits;         // (B, V)
    void *key_cache;       // (L, KV, kv_len / 16, 16 rows): blocks of 16 positions, dq_kt_index
    void *value_cache;     // (L, KV, kv_len rows): each head's value rows in position order
    size_t key_bytes, value_bytes;  // their sizes and whether each is a mapping of its own
    int key_mapped, value_mapped;   // (dq_alloc_big, dq_free_big)
    dq_kv_type kty, vty;   // type of each cache: FP32, FP16 (half the memory traffic) or q8_0
                           // (rows of dq_kv_row_bytes: ops.h has the layouts)
    // Prefill over an FP16 or q8_0 cache: each pool slot widens the head it works on into FP32
    // once per batch and layer (widen: (n_threads, 2, kv_len * hd)), so the head's items of 8
    // queries read FP32 like an FP32 cache instead of converting every key and value again;
    // wtag says what a slot's buffer holds. NULL with FP32 caches or with max_batch 1.
    float *widen;
    struct dq_widen_tag {
        long serial;
        int layer, g;
        int nk, nv;  // positions widened from the head's start (keys: whole blocks of 16)
    } *wtag;
    long serial;  // batches run (forward_batch), so a tag from an earlier batch is stale
    float *rope_cos, *rope_sin;  // (ctx, hd): dq_rope_tables of each position
    float *capture;        // optional: (L, B, C) residual stream after each block, or NULL
} dq_state;

// kty, vty: the key and value caches' element types (llama.cpp's -ctk / -ctv).
int dq_state_alloc(dq_state *s, const dq_model *m, int ctx, int max_batch, int n_threads,
                   dq_act_scheme act, dq_kv_type kty, dq_kv_type vty, dq_err *e);
// Fraction of the KV cache the kernel maps in 2 MiB pages (dq_map_huge_fraction), -1 where it
// cannot tell or the cache is not in mappings of its own (dq_alloc_big: too small, or kept on
// the heap).
double dq_state_kv_huge_fraction(const dq_state *s);
void dq_state_free(dq_state *s);

enum { DQ_LOGITS_NONE = 0, DQ_LOGITS_LAST = 1, DQ_LOGITS_ALL = 2 };
// Runs n tokens starting at cache position pos (0 <= pos, pos + n <= ctx), in batches of
// max_batch. Logits land in s->logits: for DQ_LOGITS_LAST one row (the last token),
// for DQ_LOGITS_ALL n <= max_batch rows.
int dq_forward(const dq_model *m, dq_state *s, const int32_t *tokens, int n, int pos, int logits_mode,
               dq_err *e);

// ---------------------------------------------------------------- writing (convert.c)
// Source weights in memory, FP32, llama2.c order, plus a tokenizer.
typedef struct dq_src_layer {
    const float *rms_att, *rms_ffn, *wq, *wk, *wv, *wo, *w1, *w2, *w3;
} dq_src_layer;
typedef struct dq_source {
    dq_config c;
    const float *tok_emb, *rms_final, *wcls;  // wcls NULL when tied
    dq_src_layer *layers;
    const dq_tokenizer *tok;
    const char *meta;  // provenance text
} dq_source;
// Writes src to tmp_path (wtype from src->c.wtype), fsyncs, renames to out_path.
// On failure removes tmp_path. progress (may be NULL) is called after each tensor written.
int dq_model_write(const dq_source *src, const char *tmp_path, const char *out_path, dq_progress_fn progress,
                   void *progress_ud, dq_err *e);

#endif
