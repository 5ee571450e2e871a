// ggml_like/avxvnni.c: AVX-VNNI kernels (VEX vpdpbusd on ymm) for x86-64 CPUs that have it
// without AVX-512 (Alder Lake and later client cores, Zen 5 client parts run it too). Part of
// the "avx2" ISA: dispatch.c picks this table instead of avx2.c's when CPUID says AVX-VNNI.
//   gemm_u8s8_4x16c4__avxvnni   int8 GEMM/GEMV: 4 tokens x 1 weight panel (16 rows)
// Codes are stored as c + 128 (u8) and the epilogue removes (128 + off) * rowsum, exactly as in
// avx512vnni.c; vpdpbusd does not saturate. FP32 uses avx2.c's kernel.
// Built with -mavx2 -mfma -mavxvnni; the tests build it against SIMDe (which maps the VEX
// instruction to its AVX512VL twin, same arithmetic).
#include <pthread.h>
#include <string.h>

#include "kernels.h"

#ifdef DQ_SIMDE_HEADER
#include DQ_SIMDE_HEADER
#define VNNI_DPBUSD(acc, u, s) simde_mm256_dpbusd_epi32(acc, u, s)
#else
#include <immintrin.h>
#define VNNI_DPBUSD(acc, u, s) _mm256_dpbusd_avx_epi32(acc, u, s)
#endif

#define VNNI_INLINE static inline __attribute__((always_inline))

// ---------------------------------------------------------------- activation codes
static void vnni_quant(int8_t *q, const float *x, int k, float inv, int32_t off) {
    const __m256 vinv = _mm256_set1_ps(inv);
    const __m256i voff = _mm256_set1_epi32(off), lo = _mm256_set1_epi32(-127), hi = _mm256_set1_epi32(127);
    int j = 0;
    for (; j + 8 <= k; j += 8) {
        __m256i c = _mm256_add_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + j), vinv)), voff);
        c = _mm256_min_epi32(_mm256_max_epi32(c, lo), hi);
        __m128i w16 = _mm_packs_epi32(_mm256_castsi256_si128(c), _mm256_extracti128_si256(c, 1));
        __m128i b8 = _mm_xor_si128(_mm_packs_epi16(w16, w16), _mm_set1_epi8((char)0x80));  // c + 128 as u8
        int64_t v = _mm_cvtsi128_si64(b8);
        memcpy(q + j, &v, 8);
    }
    for (; j < k; j++) {
        int32_t c = _mm_cvtss_si32(_mm_mul_ss(_mm_set_ss(x[j]), _mm_set_ss(inv))) + off;
        c = c < -127 ? -127 : c > 127 ? 127 : c;
        q[j] = (int8_t)(uint8_t)(c + 128);
    }
}

// ---------------------------------------------------------------- int8 GEMM
static inline int32_t vnni_load4(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

VNNI_INLINE void vnni_store(float *y, __m256i acc, int row, int n, const dq_wpack *p, float sx, int32_t off) {
    if (row >= n) return;
    __m256i corr =
        _mm256_mullo_epi32(_mm256_set1_epi32(128 + off), _mm256_loadu_si256((const void *)(p->rowsum + row)));
    __m256 f = _mm256_cvtepi32_ps(_mm256_sub_epi32(acc, corr));
    __m256 v = _mm256_mul_ps(f, _mm256_mul_ps(_mm256_set1_ps(sx), _mm256_loadu_ps(p->scale + row)));
    if (n - row >= 8) {
        _mm256_storeu_ps(y + row, v);
    } else {
        float tmp[8];
        _mm256_storeu_ps(tmp, v);
        memcpy(y + row, tmp, (size_t)(n - row) * 4);
    }
}

VNNI_INLINE void vnni_ukernel(const int MR, float *y, int ldy, const int8_t *x, int kp, const int8_t *wp,
                              const dq_wpack *p, int i, int n, const float *sx, const int32_t *off, const int8_t *pf, int npf) {
    __m256i acc[4][2];
#pragma GCC unroll 4
    for (int r = 0; r < MR; r++) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
    for (int s = 0; s < kp / 4; s++) {
        __m256i w0 = _mm256_loadu_si256((const void *)(wp + (size_t)s * 64));
        __m256i w1 = _mm256_loadu_si256((const void *)(wp + (size_t)s * 64 + 32));
        dq_prefetch_step(pf, npf, s);
#pragma GCC unroll 4
        for (int r = 0; r < MR; r++) {
            __m256i xb = _mm256_set1_epi32(vnni_load4(x + (size_t)r * kp + 4 * s));
            acc[r][0] = VNNI_DPBUSD(acc[r][0], xb, w0);
            acc[r][1] = VNNI_DPBUSD(acc[r][1], xb, w1);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < MR; r++) {
        vnni_store(y + (size_t)r * ldy, acc[r][0], i, n, p, sx[r], off[r]);
        vnni_store(y + (size_t)r * ldy, acc[r][1], i + 8, n, p, sx[r], off[r]);
    }
}

// GEMV (one token), one panel: four consecutive 4-input groups per step into their own
// accumulators, so the vpdpbusd latency chain (5 cycles) is not paid once per 64 weight bytes,
// and the weights dq_gemv_prefetch_bytes ahead prefetched (kernels.h). kp is a multiple of 64.
static void vnni_gemv_panel(float *y, const int8_t *x, int kp, const int8_t *wp, const dq_wpack *p, int row, int n,
                            float sx, int32_t off) {
    __m256i a[4][2];
    for (int g = 0; g < 4; g++) a[g][0] = a[g][1] = _mm256_setzero_si256();
    for (int j = 0; j < kp; j += 16) {
        const int8_t *w = wp + (size_t)j * 16;
        dq_gemv_prefetch(w, 4);
#pragma GCC unroll 4
        for (int g = 0; g < 4; g++) {
            __m256i xb = _mm256_set1_epi32(vnni_load4(x + j + 4 * g));
            a[g][0] = VNNI_DPBUSD(a[g][0], xb, _mm256_loadu_si256((const void *)(w + 64 * g)));
            a[g][1] = VNNI_DPBUSD(a[g][1], xb, _mm256_loadu_si256((const void *)(w + 64 * g + 32)));
        }
    }
    for (int h = 0; h < 2; h++)
        vnni_store(y, _mm256_add_epi32(_mm256_add_epi32(a[0][h], a[1][h]), _mm256_add_epi32(a[2][h], a[3][h])),
                   row + 8 * h, n, p, sx, off);
}

// GEMV over four panels side by side (run j of the tile at i0, kernels.h: dq_gemv_runs): four
// weight streams, one 4-input group of each per step (the broadcast shared), each stream
// prefetched dq_gemv4_prefetch_bytes ahead as in the AVX-512 GEMV (Intel 2048, AMD none).
// The int32 sums go to y as they are and vnni_epilogue_rows applies the offsets and scales after
// all four runs, as in the AVX2 and AVX-512 GEMVs (measured faster there on AMD).
VNNI_INLINE void vnni_gemv_panels4(float *y, const int8_t *x, int kp, int i0, int run, int j, const dq_wpack *p) {
    int rows[4];
    dq_gemv_run_rows(i0, run, j, rows);
    const int8_t *w[4];
    __m256i a[4][2];
#pragma GCC unroll 4
    for (int q = 0; q < 4; q++) a[q][0] = a[q][1] = _mm256_setzero_si256(), w[q] = p->panels + (size_t)rows[q] * kp;
    const uintptr_t pfd = (uintptr_t)dq_gemv4_prefetch_bytes;
    for (int s = 0; s < kp / 4; s++) {
        const __m256i xb = _mm256_set1_epi32(vnni_load4(x + 4 * s));
        if (pfd) dq_gemv4_prefetch(w, (size_t)s * 64, pfd);
#pragma GCC unroll 4
        for (int q = 0; q < 4; q++) {
            const int8_t *ws = w[q] + (size_t)s * 64;
            a[q][0] = VNNI_DPBUSD(a[q][0], xb, _mm256_loadu_si256((const void *)ws));
            a[q][1] = VNNI_DPBUSD(a[q][1], xb, _mm256_loadu_si256((const void *)(ws + 32)));
        }
    }
#pragma GCC unroll 4
    for (int q = 0; q < 4; q++) {  // every row of a run is under n (dq_gemv_runs)
        _mm256_storeu_si256((void *)(y + rows[q]), a[q][0]);
        _mm256_storeu_si256((void *)(y + rows[q] + 8), a[q][1]);
    }
}

// y[r0, r1) (r1 - r0 a multiple of 8, all rows of the matrix) holds vnni_gemv_panels4's int32 sums
// as they are: turn them into what vnni_store would have stored, in one sequential pass.
static void vnni_epilogue_rows(float *y, int r0, int r1, const dq_wpack *p, float sx, int32_t off) {
    DQ_ASSERT((r1 - r0) % 8 == 0);
    for (int r = r0; r < r1; r += 8) vnni_store(y, _mm256_loadu_si256((const void *)(y + r)), r, r1, p, sx, off);
}

static void gemm_q8_avxvnni(float *y, int ldy, const dq_qact *qa, int t0, int t1, const dq_qweight *w, int i0,
                            int i1) {
    const dq_wpack *p = w->packed;
    const int kp = p->kp, n = i1;
    DQ_ASSERT(qa->bias == 128 && qa->kp == kp && i0 % 16 == 0);
    if (t1 - t0 == 1) {
        const int run = dq_gemv_runs(i0, i1, kp);  // four streams: the tile's panels in four runs
        for (int j = 0; j < run; j++) vnni_gemv_panels4(y + (size_t)t0 * ldy, qa->q + (size_t)t0 * kp, kp, i0, run, j, p);
        vnni_epilogue_rows(y + (size_t)t0 * ldy, i0, i0 + 64 * run, p, qa->scale[t0], qa->off[t0]);
        for (int i = i0 + 64 * run; i < i1; i += 16)
            vnni_gemv_panel(y + (size_t)t0 * ldy, qa->q + (size_t)t0 * kp, kp, p->panels + (size_t)i * kp, p, i, n,
                            qa->scale[t0], qa->off[t0]);
        return;
    }
    for (int i = i0; i < i1; i += 16) {
        const int8_t *wp = p->panels + (size_t)i * kp;
        // the next panel (16 kp contiguous bytes) into L2, a slice per token block (kernels.h)
        const int nblk = (t1 - t0 + 3) / 4, lines = i + 32 <= p->np ? kp / 4 : 0;
        for (int t = t0; t < t1; t += 4) {
            int npf_b;
            const int8_t *pf = dq_prefetch_slice(wp, (size_t)16 * kp, lines, nblk, (t - t0) / 4, &npf_b);
            const int8_t *xt = qa->q + (size_t)t * kp;
            float *yt = y + (size_t)t * ldy;
            const float *sx = qa->scale + t;
            const int32_t *off = qa->off + t;
            switch (t1 - t < 4 ? t1 - t : 4) {
            case 1: vnni_ukernel(1, yt, ldy, xt, kp, wp, p, i, n, sx, off, pf, npf_b); break;
            case 2: vnni_ukernel(2, yt, ldy, xt, kp, wp, p, i, n, sx, off, pf, npf_b); break;
            case 3: vnni_ukernel(3, yt, ldy, xt, kp, wp, p, i, n, sx, off, pf, npf_b); break;
            default: vnni_ukernel(4, yt, ldy, xt, kp, wp, p, i, n, sx, off, pf, npf_b); break;
            }
        }
    }
}

// ---------------------------------------------------------------- roofline loop
static int64_t int8_peak_avxvnni(int64_t iters, int32_t *sink) {
    __m256i a[12];
    for (int r = 0; r < 12; r++) a[r] = _mm256_set1_epi32(r);
    const __m256i u = _mm256_set1_epi32(*sink | 0x01010101), s = _mm256_set1_epi32(0x02fe03fd);
    for (int64_t i = 0; i < iters; i++)
#pragma GCC unroll 12
        for (int r = 0; r < 12; r++) a[r] = VNNI_DPBUSD(a[r], u, s);
    __m256i t = a[0];
    for (int r = 1; r < 12; r++) t = _mm256_add_epi32(t, a[r]);
    int32_t v[8];
    _mm256_storeu_si256((void *)v, t);
    *sink = (int32_t)((uint32_t)v[0] + (uint32_t)v[5]);  // the lanes wrapped long ago: unsigned sum
    return iters * 12 * 32 * 2;
}

// avx2.c's table (its FP32 GEMM, absmax and the vec_f32.h kernels) with this file's int8 path.
static dq_kernels vnni_table;
static pthread_once_t vnni_once = PTHREAD_ONCE_INIT;
static void vnni_table_init(void) {
    vnni_table = *dq_kernels_avx2();
    vnni_table.isa = DQ_ISA_AVX2;
    vnni_table.name = "gemm_u8s8_4x16c4__avxvnni, gemm_f32_4x3__avx2";
    vnni_table.use_panels = 1;
    vnni_table.act_bias = 128;
    vnni_table.quant = vnni_quant;
    vnni_table.gemm_q8 = gemm_q8_avxvnni;
    vnni_table.int8_peak = int8_peak_avxvnni;
}
const dq_kernels *dq_kernels_avxvnni(void) {
    pthread_once(&vnni_once, vnni_table_init);
    return &vnni_table;
}
