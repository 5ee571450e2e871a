// ggml_like/amx.c: Intel AMX kernels (Sapphire Rapids and later).
//   gemm_u8s8_32x32__amx   int8 GEMM: 2 x 2 tiles of 16 tokens x 16 weight rows, TDPBUSD over
//                          64 inputs per step; m < 8 (decode) goes to the AVX-512 VNNI kernel.
// Tiles (palette 1, each 16 rows x 64 bytes): tmm0-3 = int32 C blocks, tmm4-5 = A (16 tokens x
// 64 u8 codes, row stride kp: the activation buffer read in place), tmm6-7 = B (one weight
// panel x 64 inputs: 16 consecutive 4-input groups of the panel layout in kernels.h, which is
// exactly the B tile's "VNNI" layout, 1024 contiguous bytes). Activation codes are biased u8 as
// for VNNI (act_bias 128); the epilogue removes (128 + off) * rowsum exactly.
// The OS must grant tile state first (arch_prctl, see cpu.c); each call loads the tile config
// for its own thread (LDTILECFG is per thread) and releases it at the end.
//
// Run natively and checked against the scalar spec on an Intel Xeon with AMX-INT8 (2026-12-02,
// under KVM). On every other machine the tests compile this same file with DQ_AMX_MODEL_HEADER
// naming a software model of LDTILECFG / TILELOADD / TDPBUSD / TILESTORED / TILERELEASE
// (tests/kernels_amx_model.h) and check the packing and loop structure against the scalar spec.
#include <pthread.h>
#include <string.h>

#include "kernels.h"

#ifdef DQ_SIMDE_HEADER
#include DQ_SIMDE_HEADER
#else
#include <immintrin.h>
#endif
#ifdef DQ_AMX_MODEL_HEADER
#include DQ_AMX_MODEL_HEADER
#endif

#define AMX_INLINE static inline __attribute__((always_inline))

typedef struct amx_tilecfg {
    uint8_t palette, start_row;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} amx_tilecfg;
_Static_assert(sizeof(amx_tilecfg) == 64, "LDTILECFG takes a 64-byte block");

static void amx_config(void) {
    amx_tilecfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) {
        cfg.rows[t] = 16;
        cfg.colsb[t] = 64;
    }
    _tile_loadconfig(&cfg);
}

// The epilogue of a 32 x 32 block, (float)(acc + neg) * (sx[t] * sw[i]) with neg = -(128 + off[t])
// * rowsum[i] (the scalar spec's expression, acc holding the biased codes' sums), runs while the
// tile unit computes the next block: its int32 sums go to one half of a two-block buffer, and
// each k-step of the next block applies it to a few of its rows (ceil(64 / k-steps)), between the
// tile instructions. Done after the k-loop instead, it only began once the tile unit had drained:
// a 128-token prefill ran 1.079x (stories110M) and 1.087x (TinyLlama) faster this way, one thread
// (docs/PERFORMANCE.md, "First AMX session"; one matrix shape, 768 x 768, ran slower alone).
// Its rows are walked as one list, sub-tile by sub-tile.
typedef struct amx_epi {
    int nq;             // sub-tiles of the block (0: nothing pending)
    const int32_t *c[4];  // 16 x 16 sums of each, rows 64 bytes apart
    float *y[4];        // its first output
    const float *sx[4];
    const int32_t *off[4];  // NULL for symmetric activations (off = 0)
    int rows[4], h[4];  // valid tokens; panel (0 or 1) of the block
    __m512i rs[2], neg[2];  // each panel's row sums, and -128 * them
    __m512 sw[2];
    __mmask16 mk[2];    // the panel's rows below n
} amx_epi;
typedef struct amx_cursor {
    int q, left;  // current sub-tile, rows left in it
    const int32_t *c, *off;
    float *y;
    const float *sx;
    __m512i rs, neg;
    __m512 sw;
    __mmask16 mk;
} amx_cursor;
AMX_INLINE void amx_cursor_load(amx_cursor *k, const amx_epi *e) {
    k->left = k->q < e->nq ? e->rows[k->q] : 0;
    if (!k->left) return;
    const int h = e->h[k->q];
    k->c = e->c[k->q], k->y = e->y[k->q], k->sx = e->sx[k->q], k->off = e->off[k->q];
    k->rs = e->rs[h], k->neg = e->neg[h], k->sw = e->sw[h], k->mk = e->mk[h];
}
// The next `rows` rows of the list (fewer at its end).
AMX_INLINE void amx_epi_rows(amx_cursor *k, const amx_epi *e, int rows, int ldy) {
    while (rows > 0 && k->left > 0) {
        __m512i neg = k->off ? _mm512_mullo_epi32(_mm512_set1_epi32(-128 - *k->off), k->rs) : k->neg;
        __m512 f = _mm512_cvtepi32_ps(_mm512_add_epi32(_mm512_loadu_si512((const void *)k->c), neg));
        __m512 sc = _mm512_mul_ps(_mm512_set1_ps(*k->sx), k->sw);
        _mm512_mask_storeu_ps(k->y, k->mk, _mm512_mul_ps(f, sc));
        k->c += 16, k->y += ldy, k->sx++, rows--;
        if (k->off) k->off++;
        if (--k->left == 0) {
            k->q++;
            amx_cursor_load(k, e);
        }
    }
}

// MT x 16 tokens from x (the activation buffer has zeroed rows up to a multiple of 16, so a
// full A tile is always readable) times NP panels from wp, whole k, into tmm0-3; the epilogue of
// the block before (e) meanwhile, and npf cache lines from pf into L2, spread over the k-steps
// (the next 32 weight rows, a slice per token block: kernels.h, dq_prefetch_slice). The
// prefetch: one thread, 128 tokens, `scripts/ab_decode.c ... prefill`, TinyLlama shape
// 1.045x (weights from memory), stories110M 1.060x; into L3 instead (prefetcht2) the same.
//
// Where the k-loop is short (kp <= AMX_YPF_KP), the block's own output lines (nt tokens x NP
// lines at yb, which the next block's epilogue will store) are also prefetched for ownership
// (prefetchw), spread over the k-steps. With several threads those lines were last read by the
// per-token step that follows the matmul, on whichever core took that token, so a store had to
// wait for the line to come back; with a short k-loop the next block's epilogue stores one 64-byte
// line per few tile instructions, and those misses held up the tile loads behind them. Xeon with
// AMX (model 167), `scripts/ab_decode.c ... 128 N prefill`, stories110M (K = 768 but for the down
// matrix), two threads: 1.047-1.062x (four sets of 31 prompts), one thread 0.994-1.005x. For every
// matrix of K >= 2048 (all of TinyLlama's): 0.992x at two threads, 0.995x at one (the weights
// there come from memory, and the prefetches take miss slots from them), hence the bound. The
// activations' lines of the next token block prefetched the same way (they too come half from
// the other core on a matmul's first pass) instead cost 2-3 %.
#define AMX_YPF_KP 1024
AMX_INLINE void amx_block(const int MT, const int NP, const int8_t *x, int kp, const int8_t *wp, const amx_epi *e,
                          int ldy, const int8_t *pf, int npf, const float *yb, int nt) {
    _tile_zero(0);
    if (NP > 1) _tile_zero(1);
    if (MT > 1) _tile_zero(2);
    if (MT > 1 && NP > 1) _tile_zero(3);
    const size_t ps = (size_t)16 * kp;
    // what is spread over the kp / 64 k-steps (epilogue rows, weight lines, output lines) goes
    // ceil(total / steps) per step
    const int steps = kp / 64, per = (64 + steps - 1) / steps;
    amx_cursor k = {.q = 0};
    amx_cursor_load(&k, e);
    const int pstep = (npf + steps - 1) / steps;
    // output line l: the line holding the first of panel l % NP's 16 floats for token l / NP
    // (all 16 where ldy is a multiple of 16, as in every model's matrices but the smallest test
    // ones; a hint either way). NP = 2 only where a row of the second panel exists.
    const int ylines = kp <= AMX_YPF_KP ? nt * NP : 0, ystep = (ylines + steps - 1) / steps;
    int yl = 0;
    for (int kk = 0; kk < kp; kk += 64) {
        for (int l = 0; l < pstep && npf > 0; l++, npf--, pf += 64) _mm_prefetch((const char *)pf, _MM_HINT_T1);
        for (int l = 0; l < ystep && yl < ylines; l++, yl++)
            __asm__ volatile("prefetchw %0" : : "m"(*(yb + (size_t)(yl / NP) * ldy + 16 * (yl % NP))));
        _tile_loadd(4, x + kk, kp);
        _tile_loadd(6, wp + (size_t)kk * 16, 64);
        if (NP > 1) _tile_loadd(7, wp + ps + (size_t)kk * 16, 64);
        _tile_dpbusd(0, 4, 6);
        if (NP > 1) _tile_dpbusd(1, 4, 7);
        // the second A tile only now, after the first two products: 128 tokens, one thread,
        // alternating (scripts/ab_decode.c ... prefill), TinyLlama 1.013x and 1.018x, stories110M
        // 1.007x; two threads 1.00x (docs/PERFORMANCE.md, "Second AMX session")
        if (MT > 1) _tile_loadd(5, x + (size_t)16 * kp + kk, kp);
        if (MT > 1) _tile_dpbusd(2, 5, 6);
        if (MT > 1 && NP > 1) _tile_dpbusd(3, 5, 7);
        amx_epi_rows(&k, e, per, ldy);
    }
    amx_epi_rows(&k, e, 64, ldy);
}

static void gemm_q8_amx(float *y, int ldy, const dq_qact *qa, int t0, int t1, const dq_qweight *w, int i0, int i1) {
    const dq_wpack *p = w->packed;
    const int kp = p->kp, n = i1;
    DQ_ASSERT(qa->bias == 128 && qa->kp == kp && i0 % 16 == 0 && t0 % 16 == 0);
    if (t1 - t0 < DQ_AMX_MIN_M) {  // decode and tiny batches: a tile would be mostly padding (kernels.h)
        dq_kernels_avx512vnni()->gemm_q8(y, ldy, qa, t0, t1, w, i0, i1);
        return;
    }
    const int sym = qa->scheme != DQ_ACT_ASYM;  // off = 0 for every token
    _Alignas(64) int32_t cbuf[2][4 * 256];
    amx_epi e;
    memset(&e, 0, sizeof e);
    int cur = 0;
    amx_config();
    for (int i = i0; i < i1; i += 32) {
        const int8_t *wp = p->panels + (size_t)i * kp;
        const int two = i1 - i > 16;
        const int nblk = (t1 - t0 + 31) / 32, lines = i + 64 <= p->np ? kp / 2 : 0;
        for (int t = t0; t < t1; t += 32) {
            const int8_t *xt = qa->q + (size_t)t * kp;
            const int nt = t1 - t < 32 ? t1 - t : 32;
            int npf;
            const int8_t *pf = dq_prefetch_slice(wp, (size_t)32 * kp, lines, nblk, (t - t0) / 32, &npf);
            const float *yt = y + (size_t)t * ldy + i;  // this block's outputs
            if (nt > 16 && two) amx_block(2, 2, xt, kp, wp, &e, ldy, pf, npf, yt, nt);
            else if (nt > 16) amx_block(2, 1, xt, kp, wp, &e, ldy, pf, npf, yt, nt);
            else if (two) amx_block(1, 2, xt, kp, wp, &e, ldy, pf, npf, yt, nt);
            else amx_block(1, 1, xt, kp, wp, &e, ldy, pf, npf, yt, nt);
            int32_t *c = cbuf[cur];
            cur ^= 1;
            _tile_stored(0, c, 64);
            if (two) _tile_stored(1, c + 256, 64);
            if (nt > 16) _tile_stored(2, c + 512, 64);
            if (nt > 16 && two) _tile_stored(3, c + 768, 64);
            e.nq = 0;
            for (int q = 0; q < 4; q++) {  // q & 1: panel, q >> 1: token half
                const int h = q & 1, r0 = (q >> 1) * 16;
                if ((h && !two) || r0 >= nt) continue;
                e.c[e.nq] = c + 256 * q;
                e.y[e.nq] = y + (size_t)(t + r0) * ldy + i + 16 * h;
                e.sx[e.nq] = qa->scale + t + r0;
                e.off[e.nq] = sym ? NULL : qa->off + t + r0;
                e.rows[e.nq] = nt - r0 < 16 ? nt - r0 : 16;
                e.h[e.nq++] = h;
            }
            for (int h = 0; h <= two; h++) {  // row sums and scales are zero-padded to whole panels
                const int r = i + 16 * h, cnt = n - r < 16 ? n - r : 16;
                e.mk[h] = (__mmask16)((1u << cnt) - 1);
                e.rs[h] = _mm512_loadu_si512((const void *)(p->rowsum + r));
                e.neg[h] = _mm512_mullo_epi32(_mm512_set1_epi32(-128), e.rs[h]);
                e.sw[h] = _mm512_loadu_ps(p->scale + r);
            }
        }
    }
    amx_cursor k = {.q = 0};
    amx_cursor_load(&k, &e);
    amx_epi_rows(&k, &e, 64, ldy);
    _tile_release();
}

// ---------------------------------------------------------------- roofline loop
// 4 independent TDPBUSD accumulators on register-resident tiles: 16 x 16 x 64 MACs each.
static int64_t int8_peak_amx(int64_t iters, int32_t *sink) {
    _Alignas(64) int8_t buf[1024];
    memset(buf, 1 + (*sink & 1), sizeof buf);
    amx_config();
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    _tile_loadd(4, buf, 64);
    _tile_loadd(5, buf, 64);
    _tile_loadd(6, buf, 64);
    _tile_loadd(7, buf, 64);
    for (int64_t i = 0; i < iters; i++) {
        _tile_dpbusd(0, 4, 6);
        _tile_dpbusd(1, 4, 7);
        _tile_dpbusd(2, 5, 6);
        _tile_dpbusd(3, 5, 7);
    }
    _Alignas(64) int32_t c[256];
    _tile_stored(0, c, 64);
    _tile_release();
    *sink = c[0];
    return iters * 4 * 16 * 16 * 64 * 2;
}

// ---------------------------------------------------------------- FP32 key block
// kb[d * 16 + j] = src[j * lds + d] (dq_kblock_f32, ops.h): each dimension's 16 positions gathered
// into one zmm and stored as one whole 64-byte line. The generic version (vec_f32.h) stores each
// line in four 16-byte pieces, interleaved with three other lines, and on the Xeon with AMX those
// stores were most of the RoPE/cache step's time (the block's lines are usually not in L1: each
// layer writes ~0.4 MiB of keys per 128 tokens): prefill of stories110M 1.019-1.022x at one
// thread, 1.011-1.017x at two (scripts/ab_decode.c ... 128 31 prefill). Only this table has it: on
// the AMD Zen 4 the zmm gather is slow, and the same kernel took 1.23-1.31x the generic one's
// time (docs/PERFORMANCE.md, fourth AMX session). Gather indices are int32, so an lds above 2^24
// (no model's: the model check bounds attention widths by 2^20) takes the generic way.
static void kblock_gather__amx(float *kb, const float *src, size_t lds, int hd) {
    static const int32_t iota[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    if (lds > (size_t)1 << 24) {
        dq_kernels_avx512vnni()->kblock(kb, src, lds, hd);
        return;
    }
    const __m512i idx = _mm512_mullo_epi32(_mm512_loadu_si512((const void *)iota), _mm512_set1_epi32((int)lds));
    for (int d = 0; d < hd; d++) _mm512_storeu_ps(kb + (size_t)d * 16, _mm512_i32gather_ps(idx, src + d, 4));
}

// The AVX-512 table (its quantizer: the same code format; FP32 GEMM; vec_f32.h kernels) with the
// tile GEMM and the gathering key-block store.
static dq_kernels amx_table;
static pthread_once_t amx_once = PTHREAD_ONCE_INIT;
static void amx_table_init(void) {
    amx_table = *dq_kernels_avx512vnni();
    amx_table.isa = DQ_ISA_AMX;
    amx_table.name = "gemm_u8s8_32x32__amx (m < 8: gemm_u8s8_6x64c4__avx512vnni), gemm_f32_4x4__avx512f";
    amx_table.use_panels = 1;
    amx_table.act_bias = 128;
    amx_table.gemm_q8 = gemm_q8_amx;
    amx_table.int8_peak = int8_peak_amx;
    amx_table.kblock = kblock_gather__amx;
}
const dq_kernels *dq_kernels_amx(void) {
    pthread_once(&amx_once, amx_table_init);
    return &amx_table;
}
