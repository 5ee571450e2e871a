// ggml_like/ops.h: the one interface between the model and the compute kernels.
// Every weight matmul of the forward pass goes through dq_matmul_f32 or dq_matmul_q8;
// which ISA runs underneath is chosen once at start-up (CPUID / HWCAP, DYNQ_ISA).
// Letter code: m = tokens (rows of x), k = input features, n = output features.
#ifndef DYNQ_OPS_H
#define DYNQ_OPS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../common.h"

// ---------------------------------------------------------------- thread pool
// Persistent pthread workers; the calling thread is worker 0. Work is split by
// the task itself from (ith, nth); results must not depend on nth.
typedef struct dq_pool dq_pool;
typedef void (*dq_task_fn)(void *ctx, int ith, int nth);
int dq_pool_create(dq_pool **pool, int n_threads, dq_err *e);  // n_threads >= 1
void dq_pool_free(dq_pool *pool);
int dq_pool_nthreads(const dq_pool *pool);
// The threads the next adaptive job will run on: 1 while the pool has fallen back to running
// jobs in the caller alone (busy CPUs, see threadpool.c), else dq_pool_nthreads. The kernel
// drivers size their tiles with it. Like the job itself, it ends a back-off whose time is up (a
// /proc/loadavg probe at most), so the job that follows runs on the threads it was planned for.
int dq_pool_nthreads_now(dq_pool *pool);
// Tests: the next adaptive jobs for ns nanoseconds in the caller alone, as after recurring stalls.
void dq_pool_fall_back(dq_pool *pool, uint64_t ns);
// Idle-time warming, a hint only (nothing is read, no result can change): once the thread of
// slot `slot` (0 the caller, i >= 1 the pool's i-th worker) has no slot left to run in the next
// job this pool runs, it prefetches `streams` ranges of `bytes`, `stride` apart from base, into
// its L2, line by line side by side, until the job after that begins (the caller: until the
// job's last slot is done). A later call for the same slot replaces a hint not yet used.
void dq_pool_warm(dq_pool *pool, int slot, const void *base, size_t bytes, size_t stride, int streams);
void dq_pool_run(dq_pool *pool, dq_task_fn fn, void *ctx);  // returns when every worker is done
// dq_pool_run for tasks whose slots claim small pieces of work dynamically (any slot may do all
// of it): a long wait for a slot then means a worker descheduled by another process, and the pool
// runs the next such jobs on the caller alone for a while (see threadpool.c).
void dq_pool_run_adaptive(dq_pool *pool, dq_task_fn fn, void *ctx);
// CPUs this process may run on: its affinity mask (taskset, cpusets), at most its cgroup's CPU
// quota (cpu.max or v1's cfs quota, rounded up to whole CPUs); the online CPUs if neither is known.
int dq_cpus_available(void);
int dq_physical_cores(void);  // default for -t: physical cores among those CPUs
int dq_cgroup_cpu_limit(const char *cpu_max);  // whole CPUs a cpu.max text allows, 0 = no limit
// Dynamic split of one pool run's items 0..items-1: min(nth, DQ_CLAIM_REGIONS) contiguous
// regions, one per slot (a slot's items are neighbours in memory: one weight stream, one head's
// cache), claimed one item at a time; a slot done with its own region takes what is left of
// the others, so a slow or descheduled thread's work is taken over item by item and any slot
// may end up doing all of it (what dq_pool_run_adaptive needs). reg: zero-initialized for each
// run; *k starts at 0 in each slot. Returns the next item for slot ith, or -1.
#define DQ_CLAIM_REGIONS 16
typedef struct dq_claim {
    _Alignas(64) _Atomic int next;  // next unclaimed item of the region (relative)
} dq_claim;
int dq_claim_next(dq_claim *reg, int items, int ith, int nth, int *k);

// ---------------------------------------------------------------- CPU and dispatch
typedef enum { DQ_ISA_SCALAR = 0, DQ_ISA_AVX2, DQ_ISA_AVX512VNNI, DQ_ISA_AMX, DQ_ISA_NEON } dq_isa;
// Probes the CPU once (thread-safe) and honours DYNQ_ISA; error if a forced ISA is missing
// or unknown. Must be called before any kernel.
int dq_kernels_init(dq_err *e);
dq_isa dq_isa_chosen(void);
const char *dq_isa_name(dq_isa isa);
void dq_cpu_describe(char *buf, size_t cap);  // multi-line text for `dynq info --cpu`

// ---------------------------------------------------------------- activations
// How activations are quantized at run time (per call, from the values themselves).
typedef enum {
    DQ_ACT_SYM = 0,     // per token, symmetric int8: s = max|x|/127
    DQ_ACT_ASYM = 1,    // per token, asymmetric u8 with zero point: s = (max-min)/255
    DQ_ACT_GROUP = 2,   // per token and per group of 64 inputs, symmetric (quality study)
    DQ_ACT_TENSOR = 3,  // one symmetric scale for the whole m x k matrix (quality study)
} dq_act_scheme;

// ---------------------------------------------------------------- weights
// An INT8 weight matrix quantized per output row, symmetric: w_real[i][j] ~ scale[i] * w[i][j].
// The values come either row-major (w) or already in the kernels' panel layout (panels: rows
// 16p..16p+15 form panel p, np * kp bytes, see kernels.h and docs/FORMAT.md), as a .dynq file
// holds them; the other pointer is NULL. w or panels, scale, rowsum may point into the
// read-only mapped model file. packed is what dq_qweight_prepare makes at load (owned): the
// ISA's copy of a row-major matrix, or for panels only the padded row sums and scales, the
// kernels then reading the panels in place. With panels, rowsum is taken as given; with w it is
// recomputed.
typedef struct dq_qweight {
    int n, k;               // n rows (outputs), k columns (inputs)
    const int8_t *w;        // (n, k) row-major, or NULL
    const int8_t *panels;   // (n rounded up to 16, k rounded up to 64) in panels, or NULL
    const float *scale;     // (n)
    const int32_t *rowsum;  // (n) sum_j w[i][j], for u8 / offset activations
    void *packed;
    size_t packed_bytes;
} dq_qweight;
#define DQ_MAX_K 65536  // most inputs of an int8 matrix: keeps 255 * 128 * k inside int32 (u8-offset accumulators)
// Bytes of the panel layout of an n x k matrix (0 on overflow or a bad shape).
size_t dq_panel_bytes(int n, int k);
// dst (dq_panel_bytes(n, k), zero-filled by the caller) = the row-major (n, k) matrix q in panels.
void dq_panelize(int8_t *dst, const int8_t *q, int n, int k);
// Row i of w (k values) into out, from either layout.
void dq_qweight_row(const dq_qweight *w, int i, int8_t *out);
// Rows rows[0..n) of w dequantized (scale[row] * code, as FP32) into out, ldo floats apart. The
// rows are read side by side (4-byte group outer, row inner): in the panel layout one row's values
// lie 64 bytes apart, so a row is a 16x read over a short stream, and a prompt's rows one after
// another each paid the prefetchers' start (the embedding lookup of a prompt).
void dq_qweight_rows_f32(const dq_qweight *w, const int32_t *rows, int n, float *out, size_t ldo);
int dq_qweight_prepare(dq_qweight *w, dq_err *e);
void dq_qweight_release(dq_qweight *w);

// y (m, n) = x (m, k) @ w^T with w (n, k) FP32.
void dq_matmul_f32(dq_pool *pool, float *y, const float *x, int m, const float *w, int n, int k);
// y (m, n) = dequant( quant(x) (m, k) @ w^T ): activations quantized per `scheme`,
// int32 accumulation, y[t][i] = scale_w[i] * scale_x[t] * acc (minus zero-point term).
void dq_matmul_q8(dq_pool *pool, float *y, const float *x, int m, const dq_qweight *w, dq_act_scheme scheme);

// ---------------------------------------------------------------- additions (kernels owner)
// Scratch memory owned by the pool (64-byte aligned, grows on demand, never shrinks).
// Valid until the next dq_pool_scratch call on the same pool; call from the main thread only.
// Separate from the buffer that holds quantized activations (dq_qact below).
void *dq_pool_scratch(dq_pool *pool, size_t bytes);

// How many times the pool saw a worker stall (descheduled while holding work), and how many
// times stalls recurred and it fell back to running jobs on the calling thread for a while
// (diagnostics for `dynq bench`).
long dq_pool_stalls(const dq_pool *pool);
long dq_pool_backoffs(const dq_pool *pool);
long dq_pool_warms(const dq_pool *pool);  // warming hints taken and run so far (dq_pool_warm)

// Where a stretch of the caller's work spends its threads' time (`dynq bench`: the hand-offs
// between parallel jobs). Between dq_pool_times_begin and dq_pool_times_end, wall time of the
// caller, seconds, added to *acc: `outside` outside any parallel job and not backed off (the
// workers have nothing to run: per-token steps, work too small to split), `wait` waiting at a
// parallel job's end for the slots other threads took, `alone` backed off after stalls (every
// job in the caller, see threadpool.c), `off_cpu` the caller not running (descheduled, or asleep
// in a long wait); `worker_busy` the workers' time running slots, summed over the workers (at
// most wall x (threads - 1)). With one thread every job counts as outside. Calls from the pool's
// caller only, not nested.
typedef struct dq_pool_times {
    double wall, outside, wait, alone, off_cpu, worker_busy;
} dq_pool_times;
void dq_pool_times_begin(dq_pool *pool);
void dq_pool_times_end(dq_pool *pool, dq_pool_times *acc);

// dq_qweight_prepare for `count` matrices, spread over the pool's threads (model load), all
// packed into one mapping (freed when the last of them is released). On failure nothing is
// packed.
int dq_qweight_prepare_many(dq_pool *pool, dq_qweight *ws, int count, dq_err *e);

// Quantized activations, ready for dq_matmul_q8_pre. Quantize once, multiply by several
// matrices that share the input (q/k/v, gate/up). Codes live in the pool's scratch: valid
// until the next dq_quantize_act or dq_matmul_q8 on the same pool.
// Real value of code c in token t: x ~ scale[t(,g)] * (c - off[t]); codes are in [-127, 127]
// (stored +128 as u8 by the ISAs whose dot instruction wants unsigned activations).
typedef struct dq_qact {
    int m, k, kp;          // tokens, inputs, row stride of q (k rounded up to 64)
    dq_act_scheme scheme;
    int ngroup;            // scales per token: k/64 rounded up for DQ_ACT_GROUP, else 1
    int8_t *q;             // (m rounded up to 16, kp) codes, zero padded when m >= 16 (AMX tiles)
    float *scale;          // (m, ngroup)
    int32_t *off;          // (m) zero offset (DQ_ACT_ASYM), else 0
    uint8_t bias;          // 0, or 128 if codes are stored as c + 128 (u8)
} dq_qact;
// amax: NULL, or max_j |x[t][j]| of each token as the absmax kernel gives it (returned by
// dq_rmsnorm_f32 / dq_swiglu_f32 that wrote x), which spares the symmetric scheme a pass over x;
// the other schemes ignore it.
void dq_quantize_act(dq_pool *pool, dq_qact *qa, const float *x, int m, int k, dq_act_scheme scheme,
                     const float *amax);
// The same in two steps, for a producer that quantizes each token as soon as it has written it
// (the per-token steps of the forward pass, split over the pool): dq_quantize_act_begin sets qa
// up for m tokens of k inputs (main thread); dq_quantize_act_rows then quantizes tokens
// [t0, t1) of x (token t at x + t * k; amax as above, indexed by t), from any thread, on
// disjoint ranges. Same codes and scales as dq_quantize_act. Not for DQ_ACT_TENSOR, whose one
// scale needs every token first.
void dq_quantize_act_begin(dq_pool *pool, dq_qact *qa, int m, int k, dq_act_scheme scheme);
void dq_quantize_act_rows(dq_qact *qa, const float *x, int t0, int t1, const float *amax);
// y (qa->m, w->n) from pre-quantized activations; qa->k must equal w->k.
void dq_matmul_q8_pre(dq_pool *pool, float *y, const dq_qact *qa, const dq_qweight *w);
// ys[j] (qa->m, ws[j]->n) for count <= 3 matrices that share the input, in one pool hand-off.
void dq_matmul_q8_multi(dq_pool *pool, int count, float *const *ys, const dq_qact *qa, const dq_qweight *const *ws);
// The ranges behind dq_matmul_q8_warm for a plan on nth threads: out[r] (r < the count returned,
// min(nth, DQ_CLAIM_REGIONS)) for slot r, the start of the first tile it claims, as its GEMV reads
// it: `streams` ranges of `bytes`, `stride` apart from base (base NULL and bytes 0: no tile).
typedef struct dq_warm_range {
    const int8_t *base;
    size_t bytes, stride;
    int streams;
} dq_warm_range;
int dq_matmul_q8_warm_ranges(int nth, int count, const dq_qweight *const *ws, dq_warm_range *out);
// Decode (one token): the matmul of ws[0..count) comes after the next pool job. Each thread warms
// the first weights of its share of it (dq_pool_warm) while it waits at the end of that job and
// in the gap before the matmul (the caller's per-token steps), where the GEMVs would otherwise
// leave memory idle. Nothing where dq_decode_warm (kernels.h) is off or one thread runs.
void dq_matmul_q8_warm(dq_pool *pool, int count, const dq_qweight *const *ws);

// FP32 kernels of the chosen ISA, bit-identical on every ISA (ggml_like/vec_f32.h), one thread.
// Attention of one head over its cache, for nq <= DQ_ATTN_NQ queries at once: query i (hd values at
// q + i * ldq) attends to positions p < np0 + i * dnp, out_i at out + i * ldo.
// kt: the head's keys, in blocks of 16 positions transposed inside a block (dq_kt_index);
// v: the head's value rows, ldv apart. att: scratch of dq_attn_scratch(np0 + (nq - 1) * dnp).
// kt and v hold FP32, IEEE binary16 or q8_0 values (dq_kv_type of each), widened to FP32 on load:
// binary16 exactly, q8_0 as code * scale (one rounding); so the result is the FP32 attention
// over the widened cache, bit for bit. ldv counts elements of the value type (bytes for q8_0).
// Layout, for every type, in rows of dq_kv_row_bytes(type, hd) per position: value row p at
// p * row; key block b (positions 16b .. 16b + 15) at 16 * b * row, holding dimension d of its
// 16 positions side by side (dq_kt_index). A q8_0 block of 16 keys is hd x 16 codes (int8), then
// at 16 * dq_q8_codes(hd) bytes its scales, [ceil(hd / 32)][16] floats; a q8_0 value row is hd
// codes, then at dq_q8_codes(hd) bytes ceil(hd / 32) floats: each run of 32 dimensions (the last
// may be shorter) of a position has one scale (dq_q8_row).
typedef enum { DQ_KV_F32 = 0, DQ_KV_F16 = 1, DQ_KV_Q8 = 2 } dq_kv_type;
void dq_attn(float *out, int ldo, const float *q, int ldq, int nq, int np0, int dnp, const void *kt, dq_kv_type kty,
             const void *v, dq_kv_type vty, int ldv, int hd, float scale, float *att);
#define DQ_Q8_BLOCK 32
static inline size_t dq_q8_codes(int hd) { return ((size_t)hd + 3) & ~(size_t)3; }  // the scales stay 4-byte aligned
static inline size_t dq_q8_blocks(int hd) { return ((size_t)hd + DQ_Q8_BLOCK - 1) / DQ_Q8_BLOCK; }
static inline size_t dq_kv_row_bytes(dq_kv_type t, int hd) {
    return t == DQ_KV_Q8 ? dq_q8_codes(hd) + 4 * dq_q8_blocks(hd) : (t == DQ_KV_F16 ? 2 : 4) * (size_t)hd;
}
// Byte offsets in a head's q8_0 key cache of key p's first code (its dimension d at + 16 d) and of
// its first scale (run j of 32 dimensions at + 64 j): the one spelling of the layout above that
// the cache's stores (model.c) and loads (vec_f32.h) share.
static inline size_t dq_q8_key_code(int p, int hd) {
    return (size_t)(p / 16) * 16 * dq_kv_row_bytes(DQ_KV_Q8, hd) + (size_t)(p % 16);
}
static inline size_t dq_q8_key_scale(int p, int hd) {
    return (size_t)(p / 16) * 16 * dq_kv_row_bytes(DQ_KV_Q8, hd) + 16 * dq_q8_codes(hd) + 4 * (size_t)(p % 16);
}
// "f32" / "f16" / "q8_0" (llama.cpp's -ctk / -ctv names); -1 for anything else.
int dq_kv_parse(const char *s);
const char *dq_kv_name(dq_kv_type t);
// q8_0 codes of n values x (one position of one head): for each run j of DQ_Q8_BLOCK values
// (the last may be shorter), scale s = max |x| / 127 stored at sc[j * sstride], and code
// c_i = x_i * (1 / s) rounded to nearest even (0 if s = 0), clamped to [-127, 127], at
// q[i * qstride]. The same bits on every ISA. NaNs and infinities are not meaningful input.
void dq_q8_row(int8_t *q, size_t qstride, float *sc, size_t sstride, const float *x, int n);
// A q8_0 cache widened to FP32, each value (float)code * scale: keys = 1: n key blocks (16
// positions each, FP32 blocks of 16 * hd floats at dst, as dq_kt_index); keys = 0: n value rows
// (hd floats each at dst).
void dq_q8_to_f32(float *dst, const int8_t *src, int n, int hd, int keys);

// IEEE binary16 <-> binary32, exact software conversions (round to nearest even on narrowing,
// overflow to infinity, NaNs quieted with the payload's top bits kept), the same on every ISA:
// the F16C / AVX-512 / NEON conversion instructions give these bits too (tested).
static inline float dq_f16_to_f32(uint16_t h) {
    uint32_t s = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu, u;
    float f;
    if (e == 0x1f) {
        u = s | 0x7f800000u | (m << 13) | (m ? 0x400000u : 0);  // inf, or a NaN made quiet
    } else if (e) {
        u = s | ((e + 112) << 23) | (m << 13);
    } else {  // zero or subnormal: m * 2^-24, exact in binary32
        f = (float)m * 0x1p-24f;
        memcpy(&u, &f, sizeof u);
        u |= s;
    }
    memcpy(&f, &u, sizeof f);
    return f;
}
static inline uint16_t dq_f32_to_f16(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    uint32_t s = (u >> 16) & 0x8000u, a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(s | 0x7e00u | ((a >> 13) & 0x3ffu));  // NaN: quiet
    if (a >= 0x47800000u) return (uint16_t)(s | 0x7c00u);                        // >= 2^16: infinity
    if (a >= 0x38800000u) {  // >= 2^-14: normal (a carry out of the mantissa gives the next
                             // exponent, or infinity above 65504, as rounding should)
        uint32_t r = a - 0x38000000u, h = r >> 13, rem = r & 0x1fffu;
        h += rem > 0x1000u || (rem == 0x1000u && (h & 1));
        return (uint16_t)(s | h);
    }
    // below 2^-14: a multiple of 2^-24 in binary16; |f| * 2^24 is exact and < 2^10, and the
    // integer conversion of x + 2^23 - 2^23 rounds it to nearest even (1024: the smallest normal)
    float x;
    uint32_t b = a;
    memcpy(&x, &b, sizeof x);
    float r = (x * 0x1p24f + 0x1p23f) - 0x1p23f;
    return (uint16_t)(s | (uint32_t)r);
}
// dst[i] = dq_f32_to_f16(src[i]), i < n, with the chosen ISA's conversion instructions.
void dq_f32_to_f16_row(uint16_t *dst, const float *src, size_t n);
// dst[i] = dq_f16_to_f32(src[i]), i < n, likewise.
void dq_f16_to_f32_row(float *dst, const uint16_t *src, size_t n);
#define DQ_ATTN_NQ 8
static inline size_t dq_attn_scratch(int np) { return DQ_ATTN_NQ * (((size_t)np + 15) & ~(size_t)15); }
// Where key dimension d of position p lives in a head's key cache (positions rounded up to 16).
static inline size_t dq_kt_index(int p, int d, int hd) {
    return ((size_t)(p / 16) * (size_t)hd + (size_t)d) * 16 + (size_t)(p % 16);
}
float dq_swiglu_f32(float *h, const float *g, const float *u, size_t n);  // h = silu(g) * u; max |h|
// One whole block of 16 positions of an FP32 key cache: kb[d * 16 + j] = src[j * lds + d] for
// j < 16, d < hd (kb = the block's first float, dq_kt_index(16 b, 0, hd)).
void dq_kblock_f32(float *kb, const float *src, size_t lds, int hd);
// RoPE, in place, of n_h heads of hd values (hd even; one position): x'[j] = x[j] c[j] + x[j'] s[j] with
// j' = j ^ 1 (halves = 0: llama2.c's pairs (2i, 2i+1)) or j +- hd/2 (halves = 1: HF's (i, i+hd/2)).
// c, s: the position's hd-long tables from dq_rope_tables. Bit-identical to x0 cos - x1 sin,
// x1 cos + x0 sin pair by pair.
void dq_rope_f32(float *x, int n_h, int hd, int halves, const float *c, const float *s);
// c[j] = cos(angle(j)), s[j] = -sin or +sin on the first or second value of each pair, where
// angle(j) = pos * theta^(-2i/hd) for the pair i that j belongs to (computed in double, rounded once).
void dq_rope_tables(float *c, float *s, int pos, int hd, int halves, float theta);
// x += r (if r is not NULL), then o = w x / rms(x); returns max |o|.
float dq_rmsnorm_f32(float *o, float *x, const float *r, const float *w, int n, float eps);

#endif
