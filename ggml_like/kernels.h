// ggml_like/kernels.h: internal contract between the dispatcher (dispatch.c) and the per-ISA
// kernel files (scalar.c is the spec; avx2.c, avx512vnni.c, amx.c, neon.c follow it exactly).
// Not for the model: it sees only ops.h.
//
// Exactness. Activation codes c are int8 in [-127, 127] for every scheme (asymmetric uses 255
// levels so that c = u - 127 fits), weights are any int8. Every kernel computes the exact int32
// dot product acc = sum_j c[t][j] * w[i][j] (however it gets there) and then the one epilogue
//     y[t][i] = (float)(acc - off[t] * rowsum[i]) * (scale_x[t] * scale_w[i])
// evaluated in that order, without FMA contraction (-ffp-contract=off on these files). So all
// ISAs give bit-identical outputs, for any thread count and any m-tiling.
#ifndef DYNQ_KERNELS_H
#define DYNQ_KERNELS_H

#include "ops.h"

#define DQ_PANEL 16   // weight rows per packed panel
#define DQ_KALIGN 64  // k is padded to this in packed weights and activation rows
// Fewest tokens the AMX GEMM takes (ggml_like/amx.c): its tiles hold 16, so below that the A tile
// reads zeroed pad rows (dq_quantize_act zeroes them from this many tokens up); fewer go to the
// AVX-512 VNNI kernel. Intel Xeon with AMX, `dynq bench -p P -n 2 -t 1,2`, VNNI against AMX tok/s:
// stories110M P = 4: 678 / 1302 -> 715 / 1314, 6: 949 / 1842 -> 1014 / 1728, 8: 1118 / 2166 -> 1335 /
// 2480, 12: 1335 -> 1761 (one thread), 15: 1620 -> 2496; TinyLlama P = 6: 75.4 / 142 -> 73.9 / 141,
// 8: 87.5 / 165 -> 101 / 186, 12: 120 / 227 -> 149 / 280. Below 8 the two trade places.
#define DQ_AMX_MIN_M 8

static inline int dq_round_up(int x, int a) { return (x + a - 1) / a * a; }

// Packed weights (w->packed): one allocation, this header first.
// Panel layout (when `panels` is non-NULL): panel p = rows 16p..16p+15; inside it, for each
// group of 4 inputs s = 0..kp/4-1, 64 bytes: byte r*4+j = w[16p+r][4s+j]. A zmm load is 16 rows x
// 4 inputs (vpdpbusd), a ymm 8 x 4, a NEON q register 4 x 4 (sdot); 16 consecutive groups are
// one AMX B tile (16 rows of 64 bytes, "VNNI" layout). Pad rows and columns are zero.
typedef struct dq_wpack {
    dq_isa isa;         // table that packed it (matmul asserts it matches)
    int n, k, np, kp;   // np = n rounded up to 16, kp = k rounded up to 64
    int32_t *rowsum;    // (np) sum_j w[i][j]; 0 for pad rows
    float *scale;       // (np) copy of w->scale; 0 for pad rows
    const int8_t *panels;  // (np/16, kp/4, 16, 4): the copy below, or w->panels in place; NULL for
                           // scalar with a row-major w (it reads w->w in place)
    size_t map_bytes;   // its own mapping (munmap), when arena is NULL
    struct dq_arena *arena;  // shared mapping of dq_qweight_prepare_many (refcounted), or NULL
} dq_wpack;

typedef struct dq_kernels {
    dq_isa isa;
    const char *name;  // kernel names, for dq_cpu_describe
    int use_panels;    // dq_qweight_prepare builds the panel layout
    uint8_t act_bias;  // activation codes stored as c + act_bias (0 or 128)
    // max_j |x[j]| (0 for k = 0; NaNs ignored, as the scalar `v > a ? v : a`). Exact on every ISA.
    float (*absmax)(const float *x, int k);
    // codes q[j] = clamp(lrintf(x[j] * inv) + off, -127, 127) + act_bias, j < k (round half even)
    void (*quant)(int8_t *q, const float *x, int k, float inv, int32_t off);
    // y[t*ldy + i] for tokens t in [t0, t1) and rows i in [i0, i1); i0 is a multiple of 16.
    void (*gemm_q8)(float *y, int ldy, const dq_qact *qa, int t0, int t1, const dq_qweight *w, int i0, int i1);
    // y[t*n + i] = sum_j x[t*k + j] * w[i*k + j] (FP32; not bit-identical across ISAs)
    void (*gemm_f32)(float *y, const float *x, int t0, int t1, const float *w, int n, int k, int i0, int i1);
    // Register-resident loop of the ISA's int8 dot instruction(s), for the roofline: returns the
    // int8 operations done (2 per multiply-add); `sink` defeats dead-code elimination.
    int64_t (*int8_peak)(int64_t iters, int32_t *sink);
    // FP32 kernels of vec_f32.h, the same source compiled for each ISA: bit-identical everywhere.
    // dq_attn (ops.h): nq <= DQ_ATTN_NQ queries of one head over its key blocks and value rows.
    void (*attn)(float *out, int ldo, const float *q, int ldq, int nq, int np0, int dnp, const void *kt,
                 dq_kv_type kty, const void *v, dq_kv_type vty, int ldv, int hd, float scale, float *att);
    // h[i] = silu(g[i]) * u[i], i < n; returns max |h| (= absmax(h, n))
    float (*swiglu)(float *h, const float *g, const float *u, size_t n);
    // dst[i] = dq_f32_to_f16(src[i]), i < n: the FP16 KV cache's stores (bit-identical on every ISA)
    void (*to_f16)(uint16_t *dst, const float *src, size_t n);
    // dst[i] = dq_f16_to_f32(src[i]), i < n (exact)
    void (*to_f32)(float *dst, const uint16_t *src, size_t n);
    // dq_q8_row (ops.h): the q8_0 KV cache's stores (bit-identical on every ISA)
    void (*to_q8)(int8_t *q, size_t qstride, float *sc, size_t sstride, const float *x, int n);
    // dq_q8_to_f32 (ops.h): widening a q8_0 cache (bit-identical on every ISA)
    void (*q8_to_f32)(float *dst, const int8_t *src, int n, int hd, int keys);
    // x += r if r is not NULL, then o = w * x / sqrt(mean(x^2) + eps), n values; returns max |o|
    float (*rmsnorm)(float *o, float *x, const float *r, const float *w, int n, float eps);
    // dq_rope_f32 (ops.h)
    void (*rope)(float *x, int n_h, int hd, int halves, const float *c, const float *s);
    // dq_kblock_f32 (ops.h): kb[d * 16 + j] = src[j * lds + d], j < 16, d < hd
    void (*kblock)(float *kb, const float *src, size_t lds, int hd);
} dq_kernels;

// Kernel tables. x86 files exist only on x86-64 builds, neon.c only on aarch64.
// DQ_KTABLE_SUFFIX lets a test compile the same source a second time (SIMDe, AMX model)
// under another name.
const dq_kernels *dq_kernels_scalar(void);
const dq_kernels *dq_kernels_avx2(void);     // vpmaddubsw variant
const dq_kernels *dq_kernels_avxvnni(void);  // ymm vpdpbusd variant of the "avx2" ISA
const dq_kernels *dq_kernels_avx512vnni(void);
const dq_kernels *dq_kernels_amx(void);
const dq_kernels *dq_kernels_neon(void);
const dq_kernels *dq_kernels_neon_level(int level);  // 0 plain, 1 dotprod, 2 i8mm
const dq_kernels *dq_kernels_table(dq_isa isa);  // NULL if this build or CPU lacks it
const dq_kernels *dq_kernels_current(void);      // the chosen one (after dq_kernels_init)

// Scalar pieces reused by other files (GROUP scheme, tails).
void dq_gemm_q8_group_scalar(float *y, int ldy, const dq_qact *qa, int t0, int t1, const dq_qweight *w, int i0,
                             int i1);
// L2 prefetch of the next weights while the current ones meet every token block (the ISA GEMMs):
// a first pass over weights that are not in L2 otherwise runs at memory speed, not at dot-product
// speed (measured: a 768 x 768 matrix at 128 tokens took 18 % longer from L3/DRAM than from L2).
// The `lines` cache lines at cur + next_off are split into nblk slices; token block b takes slice
// b: returns its start and sets *n to its length in lines (0: nothing, cur returned).
static inline const int8_t *dq_prefetch_slice(const int8_t *cur, size_t next_off, int lines, int nblk, int b,
                                              int *n) {
    int per = (lines + nblk - 1) / nblk, from = b * per < lines ? b * per : lines;
    *n = lines - from < per ? lines - from : per;
    return *n > 0 ? cur + next_off + (size_t)from * 64 : cur;
}
// In a micro-kernel's loop over groups of 4 inputs: one line of the slice every 4 groups.
static inline void dq_prefetch_step(const int8_t *pf, int npf, int s) {
    if ((s & 3) == 0 && s / 4 < npf) __builtin_prefetch(pf + (size_t)s * 16, 0, 2);  // prefetcht1: into L2
}

// The GEMVs (decode: one token, every weight read once) read their panels as one sequential
// stream and prefetch the 4 cache lines dq_gemv_prefetch_bytes ahead of the 256 bytes each step
// consumes. The distance is the CPU vendor's, set once by the dispatcher (dispatch.c):
// - Intel, 4 KiB: the hardware prefetcher alone left one core at 10-14 GB/s; 4 KiB ahead it read
//   20-24 GB/s (Xeon model 207, stories110M decode, DYNQ_ISA=avx2 DYNQ_AVX2=plain: 95 -> ~200
//   tok/s); 2 or 8 KiB read the same.
// - AMD, 1 KiB: on a Zen 3 (EPYC, family 25 model 1), TinyLlama-shape decode (1.1 GB of int8
//   weights), medians of alternating runs: 0.5 / 1 / 1.5 / 4 KiB gave 12.3 / 14.3 / 14.3 / 12.4
//   tok/s at one thread and 21.7 / 24.3 / 22.9 / 20.3 at two; 1 against 4 KiB was faster in all
//   eight pairs of an earlier set (15.2 / 23.7 against 12.8 / 19.7).
// Past the end of a matrix the address is no pointer into it (so it is computed as an integer)
// and the prefetch touches the next matrix or nothing: prefetches never fault.
extern int dq_gemv_prefetch_bytes;
// How many panels the x86 GEMVs (AVX2, AVX-VNNI, AVX-512 VNNI) read side by side: 4 (a tile's
// panels cut in four runs of consecutive panels, walked together as four streams, no software
// prefetch) or 1 (the one stream above); 4 since 2026-12-02 on every x86 CPU, before that on AMD
// only; DYNQ_GEMV_STREAMS=1|4 overrides it (benchmarks).
// Zen 3, one thread: a throw-away microbenchmark over 256 MiB of k = 2048 panels read 16-17 GB/s
// with one stream whatever the prefetch, 20-22 with four (four neighbouring panels at a time,
// 18-21 with the prefetch);
// decode, alternating runs of three builds (one stream / four neighbouring panels / four runs),
// medians: TinyLlama shape 13.2 / 16.7 / 17.2 tok/s at one thread and 18.8 / 22.4 / 23.1 at two;
// stories110M shape 133 / 135 / 144 at one thread (its 12 KiB panels made short streams when
// four neighbours were read together; within a matrix, k = 768 read 15.6 GB/s that way, k = 2048
// 18.2), 192-194 for all three at two threads. Zen 4, AVX-512 VNNI: one stream 0.87x / 0.90x of
// four (one / two threads). Intel Xeon with AMX (family 6 model 167 under KVM), `dynq bench -p 8`
// alternating DYNQ_GEMV_STREAMS=1 and 4, TinyLlama shape, one / two threads: AVX-512 VNNI 15.5 /
// 29.0 -> 15.9 / 30.6 tok/s, AVX-VNNI 14.5 / 27.5 -> 15.6 / 30.1, plain AVX2 10.8 / 11.1 -> 13.8 /
// 26.7; stories110M AVX-512 VNNI one thread 177-222 -> 208-232. An earlier Intel (model 207) had
// measured two interleaved streams slower than one in the AVX-512 GEMV, before the four-run form
// with its deferred epilogue; four were not measured there.
extern int dq_gemv_streams;
// The shortest rows (kp, bytes) the four runs read; shorter ones are read as one stream. 0 (four
// runs for every matrix) but on the AMD Zen 4 with the AVX-512 VNNI table, where it is 2048: a
// throw-away harness over 256 MiB of panels (one thread, the four runs and the one-stream sums
// form alternating in one process, medians of 9 passes, GB/s): k = 512 24.3 / 26.2, 768 21-23 /
// 25-27 (three runs), 1024 25.3 / 24.1-25.5, 1536 24.9 / 26.0, 2048 28.5 / 27.8, 2560 25.7 /
// 25.1, 4096 25.5 / 24.5, 5632 26-29 / 23.5-27. stories110M decode (k = 768 but for w2), this
// bound against 0, 1.043x and 1.055x at one thread, 1.019x and 1.022x at two; every matrix as one
// stream, TinyLlama (k = 2048, 5632) 0.983x / 0.995x (scripts/ab_decode.c). The read probe's
// one-stream loop read 28-29 GB/s there, its four-stream loop 20-22.
extern int dq_gemv4_min_kp;
// The x86 four-stream GEMVs' software prefetch distance per stream (avx2.c gemv4_xs_asm, avxvnni.c
// and avx512vnni.c gemv_panels4): 0, the hardware prefetchers alone (AMD from Zen 3 on); 256 on
// AMD family 23; 2048 on Intel (Xeon family 6 model 207, scripts/ab_decode.c against none,
// stories110M shape, one / two threads: AVX-512 VNNI 1.013-1.025x / 1.014-1.039x, AVX-VNNI
// 1.055x / 1.023x, plain AVX2 1.198x / 1.144x; TinyLlama 1.016-1.017x / 0.997-1.019x, 1.056x / 1.046x,
// 1.170x at one thread). The Xeon with AMX (model 167), same harness: AVX-512 VNNI 1.031x / 1.049x,
// AVX-VNNI 1.087x / 1.151x, plain AVX2 1.285x / 1.318x; TinyLlama 1.026x at one thread; 1024 and
// 4096 bytes both slower than 2048 there (0.984-0.990x, 0.972-0.984x).
extern int dq_gemv4_prefetch_bytes;
// Decode's idle-time warming (dq_matmul_q8_warm, ops.h): 1 on Intel x86, 0 elsewhere (not
// measured there: the AMD GEMVs leave prefetching to the hardware); DYNQ_DECODE_WARM=off|on forces
// it (benchmarks, tests). Off against on, scripts/ab_decode.c, two threads, stories110M shape:
// Xeon model 207 1.008-1.032x (TinyLlama 1.006x); Xeon with AMX (model 167) AVX-512 VNNI 1.008x
// and 1.020x, AVX-VNNI 1.027x, plain AVX2 1.025x (TinyLlama 1.004x).
extern int dq_decode_warm;
// One step of the VNNI four-stream GEMVs' prefetch: the line pfd (dq_gemv4_prefetch_bytes) bytes
// past byte off of each stream w[q] (past a matrix's end an integer, as dq_gemv_prefetch's).
static inline void dq_gemv4_prefetch(const int8_t *const w[4], size_t off, uintptr_t pfd) {
    for (int q = 0; q < 4; q++) __builtin_prefetch((const void *)((uintptr_t)(w[q] + off) + pfd), 0, 3);
}
// How the AVX2 prefill GEMM (avx2.c, ukernel3_pre_asm) widens vpmaddubsw's int16 pairs to int32:
// 0, vpmaddwd with 1s for all three tokens of a block; 1, the third token by a shift instead
// (avx2.c, "Widening off the multiply pipe"). Set from the CPU (1 on AMD family 23, Zen to Zen
// 2, where both multiplies share one pipe), DYNQ_AVX2_WIDEN=madd|mixed forces one; the tests run
// both.
extern int dq_avx2_widen;
// The four runs of a GEMV tile's rows [i0, i1) (i0 a multiple of 16): run = (i1 - i0) / 64 panels
// each, run j reading panels j, j + run, j + 2 run, j + 3 run (rows[] their first rows); the
// panels from i0 + 64 run on (all of them with one stream, else a tile under 64 rows or a ragged
// end) are read one at a time.
static inline int dq_gemv_runs(int i0, int i1, int kp) {
    return dq_gemv_streams == 4 && kp >= dq_gemv4_min_kp ? (i1 - i0) / 64 : 0;
}
// 1 where a GEMV reads one stream because its rows are short (kp < dq_gemv4_min_kp), not because
// DYNQ_GEMV_STREAMS=1 asked for it: the AVX-512 VNNI GEMV then reads its panels in the sums form
// (avx512vnni.c, gemv_panels1).
static inline int dq_gemv_one_by_kp(int kp) { return dq_gemv_streams == 4 && kp < dq_gemv4_min_kp; }
static inline void dq_gemv_run_rows(int i0, int run, int j, int rows[4]) {
    for (int q = 0; q < 4; q++) rows[q] = i0 + 16 * (j + q * run);
}
// lines: the cache lines a step consumes (4 in the GEMVs, 2 in the roofline's read loops).
static inline void dq_gemv_prefetch(const void *w, int lines) {
    const uintptr_t ahead = (uintptr_t)w + (uintptr_t)dq_gemv_prefetch_bytes;
    for (int l = 0; l < lines; l++) __builtin_prefetch((const void *)(ahead + 64 * (uintptr_t)l), 0, 3);
}

// Shared epilogue for one output: keep every ISA on this exact expression.
static inline float dq_epilogue(int32_t acc, int32_t off, int32_t rowsum, float sx, float sw) {
    return (float)(acc - off * rowsum) * (sx * sw);
}

// CPU features (cpu.c)
typedef struct dq_cpu {
    char vendor[16], brand[64];
    int avx2, fma, f16c, avx512f, avx512bw, avx512vl, avx512vnni, avxvnni, amx_tile, amx_int8;
    int os_ymm, os_zmm, os_amx, amx_perm;  // OS state support (XGETBV), AMX permission granted
    int family, model;                     // x86 display family and model (0 elsewhere)
    int neon, asimddp, i8mm;
} dq_cpu;
void dq_cpu_probe(dq_cpu *c);
int dq_cpu_request_amx(void);  // arch_prctl(ARCH_REQ_XCOMP_PERM, XTILEDATA); 1 if granted
int dq_isa_supported(const dq_cpu *c, dq_isa isa);

// The public entry points with an explicit kernel table (tests run every table this way).
int dq_qweight_prepare_with(const dq_kernels *K, dq_qweight *w, dq_err *e);
void dq_quantize_act_with(const dq_kernels *K, dq_pool *pool, dq_qact *qa, const float *x, int m, int k,
                          dq_act_scheme scheme, const float *amax);
void dq_matmul_q8_pre_with(const dq_kernels *K, dq_pool *pool, float *y, const dq_qact *qa, const dq_qweight *w);
void dq_matmul_q8_multi_with(const dq_kernels *K, dq_pool *pool, int count, float *const *ys, const dq_qact *qa,
                             const dq_qweight *const *ws);
void dq_matmul_f32_with(const dq_kernels *K, dq_pool *pool, float *y, const float *x, int m, const float *w, int n,
                        int k);

// Pool internals used by the dispatcher.
void *dq_pool_act_scratch(dq_pool *pool, size_t bytes);

// The pool's back-off policy (threadpool.c), apart so that tests can drive it with made-up
// times. State zero-initialized; times in ns on one clock. At a stall at time t: how long the
// caller should run jobs alone from t (0: sit this stall out). contended: a thread not the
// pool's wanted its CPUs at the stall (0: sit it out whatever came before, and a later back-off
// starts from the shortest). retried_at: set by the pool when a back-off ends.
typedef struct dq_backoff {
    uint64_t last_stall, retried_at, serial_ns;
} dq_backoff;
uint64_t dq_backoff_on_stall(dq_backoff *b, uint64_t t, int contended);
// The end of a back-off: whether the running threads counted in `text` (/proc/loadavg's
// contents; the reader among them) leave fewer than nth of ncpu CPUs free (then the caller keeps
// running alone and looks again 20 ms later). At a stall, with nth 1: whether threads beyond the
// pool's own (all runnable then) want its CPUs (else the stall is sat out, not backed off from).
// 0 for text it cannot parse.
int dq_loadavg_cpus_taken(const char *text, int nth, int ncpu);

#endif
