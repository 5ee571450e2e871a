// ggml_like/amx.c: Intel AMX kernels (Sapphire Rapids and later).
//   gemm_u8s8_32x32__amx   int8 GEMM: 2 x 2 tiles of 16 tokens x 16 weight rows, TDPBUSD over
//                          64 inputs per step; m < 16 (decode) goes to the AVX-512 VNNI kernel.
// Tiles (palette 1, each 16 rows x 64 bytes): tmm0-3 = int32 C blocks, tmm4-5 = A (16 tokens x
// 64 u8 codes, row stride kp: the activation buffer read in place), tmm6-7 = B (one weight
// panel x 64 inputs: 16 consecutive 4-input groups of the panel layout in kernels.h, which is
// exactly the B tile's "VNNI" layout, 1024 contiguous bytes). Activation codes are biased u8 as
// for VNNI (act_bias 128); the epilogue removes (128 + off) * rowsum exactly.
// The OS must grant tile state first (arch_prctl, see cpu.c); each call loads the tile config
// for its own thread (LDTILECFG is per thread) and releases it at the end.
//
// No machine here has AMX. The tests compile this same file with DQ_AMX_MODEL_HEADER naming a
// software model of LDTILECFG / TILELOADD / TDPBUSD / TILESTORED / TILERELEASE
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

// Epilogue of one 16 x 16 int32 block c (tokens x weight rows), AVX-512, same expression as
// the scalar spec. nt valid tokens, rows [row, n).
static void amx_epilogue(float *y, int ldy, const int32_t *c, int nt, int row, int n, const dq_wpack *p,
                         const float *sx, const int32_t *off) {
    if (row >= n) return;
    __mmask16 mk = n - row >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - row)) - 1);
    __m512i rs = _mm512_loadu_si512((const void *)(p->rowsum + row));
    __m512 sw = _mm512_loadu_ps(p->scale + row);
    for (int r = 0; r < nt; r++) {
        __m512i corr = _mm512_mullo_epi32(_mm512_set1_epi32(128 + off[r]), rs);
        __m512 f = _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_loadu_si512((const void *)(c + 16 * r)), corr));
        __m512 sc = _mm512_mul_ps(_mm512_set1_ps(sx[r]), sw);
        _mm512_mask_storeu_ps(y + (size_t)r * ldy + row, mk, _mm512_mul_ps(f, sc));
    }
}

// MT x 16 tokens from x (the activation buffer has zeroed rows up to a multiple of 16, so a
// full A tile is always readable) times NP panels from wp, whole k.
AMX_INLINE void amx_block(const int MT, const int NP, float *y, int ldy, const int8_t *x, int kp, const int8_t *wp,
                          const dq_wpack *p, int row, int n, int nt, const float *sx, const int32_t *off) {
    _tile_zero(0);
    if (NP > 1) _tile_zero(1);
    if (MT > 1) _tile_zero(2);
    if (MT > 1 && NP > 1) _tile_zero(3);
    const size_t ps = (size_t)16 * kp;
    for (int kk = 0; kk < kp; kk += 64) {
        _tile_loadd(4, x + kk, kp);
        if (MT > 1) _tile_loadd(5, x + (size_t)16 * kp + kk, kp);
        _tile_loadd(6, wp + (size_t)kk * 16, 64);
        if (NP > 1) _tile_loadd(7, wp + ps + (size_t)kk * 16, 64);
        _tile_dpbusd(0, 4, 6);
        if (NP > 1) _tile_dpbusd(1, 4, 7);
        if (MT > 1) _tile_dpbusd(2, 5, 6);
        if (MT > 1 && NP > 1) _tile_dpbusd(3, 5, 7);
    }
    _Alignas(64) int32_t c[4][256];
    _tile_stored(0, c[0], 64);
    if (NP > 1) _tile_stored(1, c[1], 64);
    if (MT > 1) _tile_stored(2, c[2], 64);
    if (MT > 1 && NP > 1) _tile_stored(3, c[3], 64);
    int nt0 = nt < 16 ? nt : 16;
    amx_epilogue(y, ldy, c[0], nt0, row, n, p, sx, off);
    if (NP > 1) amx_epilogue(y, ldy, c[1], nt0, row + 16, n, p, sx, off);
    if (MT > 1) {
        amx_epilogue(y + (size_t)16 * ldy, ldy, c[2], nt - 16, row, n, p, sx + 16, off + 16);
        if (NP > 1) amx_epilogue(y + (size_t)16 * ldy, ldy, c[3], nt - 16, row + 16, n, p, sx + 16, off + 16);
    }
}

static void gemm_q8_amx(float *y, int ldy, const dq_qact *qa, int t0, int t1, const dq_qweight *w, int i0, int i1) {
    const dq_wpack *p = w->packed;
    const int kp = p->kp, n = i1;
    DQ_ASSERT(qa->bias == 128 && qa->kp == kp && i0 % 16 == 0 && t0 % 16 == 0);
    if (t1 - t0 < 16) {  // decode and tiny batches: a tile would be mostly padding
        dq_kernels_avx512vnni()->gemm_q8(y, ldy, qa, t0, t1, w, i0, i1);
        return;
    }
    amx_config();
    for (int i = i0; i < i1; i += 32) {
        const int8_t *wp = p->panels + (size_t)i * kp;
        int two = i1 - i > 16;
        for (int t = t0; t < t1; t += 32) {
            const int8_t *xt = qa->q + (size_t)t * kp;
            float *yt = y + (size_t)t * ldy;
            int nt = t1 - t < 32 ? t1 - t : 32;
            const float *sx = qa->scale + t;
            const int32_t *off = qa->off + t;
            if (nt > 16 && two) amx_block(2, 2, yt, ldy, xt, kp, wp, p, i, n, nt, sx, off);
            else if (nt > 16) amx_block(2, 1, yt, ldy, xt, kp, wp, p, i, n, nt, sx, off);
            else if (two) amx_block(1, 2, yt, ldy, xt, kp, wp, p, i, n, nt, sx, off);
            else amx_block(1, 1, yt, ldy, xt, kp, wp, p, i, n, nt, sx, off);
        }
    }
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

// The AVX-512 table (its quantizer: the same code format; FP32 GEMM; vec_f32.h kernels) with the
// tile GEMM.
static dq_kernels amx_table;
static pthread_once_t amx_once = PTHREAD_ONCE_INIT;
static void amx_table_init(void) {
    amx_table = *dq_kernels_avx512vnni();
    amx_table.isa = DQ_ISA_AMX;
    amx_table.name = "gemm_u8s8_32x32__amx (m < 16: gemm_u8s8_6x64c4__avx512vnni), gemm_f32_4x4__avx512f";
    amx_table.use_panels = 1;
    amx_table.act_bias = 128;
    amx_table.gemm_q8 = gemm_q8_amx;
    amx_table.int8_peak = int8_peak_amx;
}
const dq_kernels *dq_kernels_amx(void) {
    pthread_once(&amx_once, amx_table_init);
    return &amx_table;
}
