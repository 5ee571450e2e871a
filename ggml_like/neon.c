// ggml_like/neon.c: aarch64 kernels, three int8 variants picked by HWCAP at run time:
//   gemm_s8s8_2x16c8__neoni8mm   vmmlaq_s32 (SMMLA): 2 tokens x 2 rows x 8 inputs per instruction
//   gemm_s8s8_4x16c4__neondot    vdotq_laneq_s32 (SDOT): 4 rows x 4 inputs, one token lane
//   gemm_s8s8_1x16c4__neon       plain NEON: vmull_s8 (s8 x s8 -> s16, exact: |p| <= 16384)
//                                + vpadalq_s16 (pairwise add into s32, exact)
//   gemm_f32_4x4__neon           FP32, one 4-lane accumulator per output
// All take the 16-row panels of kernels.h and signed codes (act_bias 0). GEMV (m = 1) and odd
// tokens use the dot product kernel when i8mm is present (i8mm implies dotprod).
// Instructions beyond ARMv8.0 are enabled only around the functions that use them (#pragma GCC
// target regions), so the file is built for plain armv8-a and nothing newer leaks elsewhere.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "vec_f32.h"

#ifdef DQ_SIMDE_HEADER
#include DQ_SIMDE_HEADER
#else
#include <arm_neon.h>
#endif

#define ALWAYS_INLINE static inline __attribute__((always_inline))

// ---------------------------------------------------------------- activation codes
// FMAX would propagate NaN; vbslq keeps a where v > a is false (NaN included), like the spec.
static float absmax_neon(const float *x, int k) {
    float32x4_t a = vdupq_n_f32(0.0f);
    int j = 0;
    for (; j + 4 <= k; j += 4) {
        float32x4_t v = vabsq_f32(vld1q_f32(x + j));
        a = vbslq_f32(vcgtq_f32(v, a), v, a);
    }
    float t[4], r = 0.0f;
    vst1q_f32(t, a);
    for (int i = 0; i < 4; i++) r = t[i] > r ? t[i] : r;
    for (; j < k; j++) {
        float v = fabsf(x[j]);
        r = v > r ? v : r;
    }
    return r;
}

static void quant_neon(int8_t *q, const float *x, int k, float inv, int32_t off) {
    const int32x4_t voff = vdupq_n_s32(off), lo = vdupq_n_s32(-127), hi = vdupq_n_s32(127);
    int j = 0;
    for (; j + 8 <= k; j += 8) {
        int32x4_t a = vaddq_s32(vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(x + j), inv)), voff);  // nearest-even
        int32x4_t b = vaddq_s32(vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(x + j + 4), inv)), voff);
        a = vminq_s32(vmaxq_s32(a, lo), hi);
        b = vminq_s32(vmaxq_s32(b, lo), hi);
        vst1_s8(q + j, vqmovn_s16(vcombine_s16(vqmovn_s32(a), vqmovn_s32(b))));  // in range: exact
    }
    for (; j < k; j++) {
        long c = lrintf(x[j] * inv) + off;
        q[j] = (int8_t)(c < -127 ? -127 : c > 127 ? 127 : c);
    }
}

// ---------------------------------------------------------------- shared epilogue
// 4 rows [row, row+4) of token (sx, off): y = (acc - off * rowsum) * (sx * sw), masked to n.
ALWAYS_INLINE void store4(float *y, int32x4_t acc, int row, int n, const dq_wpack *p, float sx, int32_t off) {
    if (row >= n) return;
    int32x4_t corr = vmulq_n_s32(vld1q_s32(p->rowsum + row), off);
    float32x4_t f = vcvtq_f32_s32(vsubq_s32(acc, corr));
    float32x4_t v = vmulq_f32(f, vmulq_n_f32(vld1q_f32(p->scale + row), sx));
    if (n - row >= 4) {
        vst1q_f32(y + row, v);
    } else {
        float tmp[4];
        vst1q_f32(tmp, v);
        memcpy(y + row, tmp, (size_t)(n - row) * 4);
    }
}

// ---------------------------------------------------------------- plain NEON
// One token x one panel. acc[h] holds rows 2h, 2h+1 as [a01, a23, b01, b23] partial sums.
static void panel_neon(float *y, const int8_t *x, int kp, const int8_t *wp, const dq_wpack *p, int i, int n, float sx,
                       int32_t off) {
    int32x4_t acc[8];
    for (int h = 0; h < 8; h++) acc[h] = vdupq_n_s32(0);
    for (int s = 0; s < kp / 4; s++) {
        int32_t x4;
        memcpy(&x4, x + 4 * s, 4);
        int8x16_t xb = vreinterpretq_s8_s32(vdupq_n_s32(x4));
        const int8_t *w = wp + (size_t)s * 64;
        for (int v = 0; v < 4; v++) {
            int8x16_t wv = vld1q_s8(w + 16 * v);
            acc[2 * v] = vpadalq_s16(acc[2 * v], vmull_s8(vget_low_s8(wv), vget_low_s8(xb)));
            acc[2 * v + 1] = vpadalq_s16(acc[2 * v + 1], vmull_high_s8(wv, xb));
        }
    }
    for (int v = 0; v < 4; v++) store4(y, vpaddq_s32(acc[2 * v], acc[2 * v + 1]), i + 4 * v, n, p, sx, off);
}

static void gemm_q8_neon(float *y, int ldy, const dq_qact *qa, int t0, int t1, const dq_qweight *w, int i0, int i1) {
    const dq_wpack *p = w->packed;
    DQ_ASSERT(qa->bias == 0 && qa->kp == p->kp && i0 % 16 == 0);
    for (int i = i0; i < i1; i += 16)
        for (int t = t0; t < t1; t++)
            panel_neon(y + (size_t)t * ldy, qa->q + (size_t)t * p->kp, p->kp, p->panels + (size_t)i * p->kp, p, i, i1,
                       qa->scale[t], qa->off[t]);
}

// ---------------------------------------------------------------- dotprod
#ifndef DQ_SIMDE_HEADER
#pragma GCC push_options
#pragma GCC target("arch=armv8.2-a+dotprod")
#endif
// MR tokens x one panel; 16 inputs of each token are loaded at once and used lane by lane.
ALWAYS_INLINE void ukernel_dot(const int MR, float *y, int ldy, const int8_t *x, int kp, const int8_t *wp,
                                          const dq_wpack *p, int i, int n, const float *sx, const int32_t *off) {
    int32x4_t acc[4][4];
#pragma GCC unroll 4
    for (int r = 0; r < MR; r++)
        for (int v = 0; v < 4; v++) acc[r][v] = vdupq_n_s32(0);
    for (int j = 0; j < kp; j += 16) {
        int8x16_t xv[4];
#pragma GCC unroll 4
        for (int r = 0; r < MR; r++) xv[r] = vld1q_s8(x + (size_t)r * kp + j);
        const int8_t *w = wp + (size_t)j * 16;
#define DOT_LANE(L)                                                                  \
    do {                                                                             \
        int8x16_t w0 = vld1q_s8(w + 64 * L), w1 = vld1q_s8(w + 64 * L + 16);         \
        int8x16_t w2 = vld1q_s8(w + 64 * L + 32), w3 = vld1q_s8(w + 64 * L + 48);    \
        _Pragma("GCC unroll 4") for (int r = 0; r < MR; r++) {                      \
            acc[r][0] = vdotq_laneq_s32(acc[r][0], w0, xv[r], L);                    \
            acc[r][1] = vdotq_laneq_s32(acc[r][1], w1, xv[r], L);                    \
            acc[r][2] = vdotq_laneq_s32(acc[r][2], w2, xv[r], L);                    \
            acc[r][3] = vdotq_laneq_s32(acc[r][3], w3, xv[r], L);                    \
        }                                                                            \
    } while (0)
        DOT_LANE(0);
        DOT_LANE(1);
        DOT_LANE(2);
        DOT_LANE(3);
#undef DOT_LANE
    }
#pragma GCC unroll 4
    for (int r = 0; r < MR; r++)
        for (int v = 0; v < 4; v++) store4(y + (size_t)r * ldy, acc[r][v], i + 4 * v, n, p, sx[r], off[r]);
}

static void gemm_q8_dot_range(float *y, int ldy, const dq_qact *qa, int t0, int t1, const dq_wpack *p,
                                         int i0, int i1) {
    const int kp = p->kp;
    for (int i = i0; i < i1; i += 16) {
        const int8_t *wp = p->panels + (size_t)i * kp;
        for (int t = t0; t < t1; t += 4) {
            const int8_t *xt = qa->q + (size_t)t * kp;
            float *yt = y + (size_t)t * ldy;
            switch (t1 - t < 4 ? t1 - t : 4) {
            case 1: ukernel_dot(1, yt, ldy, xt, kp, wp, p, i, i1, qa->scale + t, qa->off + t); break;
            case 2: ukernel_dot(2, yt, ldy, xt, kp, wp, p, i, i1, qa->scale + t, qa->off + t); break;
            case 3: ukernel_dot(3, yt, ldy, xt, kp, wp, p, i, i1, qa->scale + t, qa->off + t); break;
            default: ukernel_dot(4, yt, ldy, xt, kp, wp, p, i, i1, qa->scale + t, qa->off + t); break;
            }
        }
    }
}

static void gemm_q8_neondot(float *y, int ldy, const dq_qact *qa, int t0, int t1, const dq_qweight *w, int i0,
                            int i1) {
    const dq_wpack *p = w->packed;
    DQ_ASSERT(qa->bias == 0 && qa->kp == p->kp && i0 % 16 == 0);
    gemm_q8_dot_range(y, ldy, qa, t0, t1, p, i0, i1);
}

#ifndef DQ_SIMDE_HEADER
#pragma GCC pop_options
#endif

// ---------------------------------------------------------------- i8mm
#ifndef DQ_SIMDE_HEADER
#pragma GCC push_options
#pragma GCC target("arch=armv8.2-a+dotprod+i8mm")
#endif
// Two tokens x one panel. SMMLA takes A = 2 rows x 8 inputs and B = 2 columns x 8 inputs and
// accumulates the 2x2 int32 block [a0.b0, a0.b1, a1.b0, a1.b1]. Panel groups s and s+1 hold
// inputs 4s..4s+3 and 4s+4..4s+7 of 4 rows per register; zipping 32-bit lanes of the two gives
// rows (r, r+1) x 8 inputs, exactly SMMLA's B operand.
static void pair_i8mm(float *y, int ldy, const int8_t *x, int kp, const int8_t *wp, const dq_wpack *p,
                                  int i, int n, const float *sx, const int32_t *off) {
    int32x4_t acc[8];
    for (int h = 0; h < 8; h++) acc[h] = vdupq_n_s32(0);
    for (int j = 0; j < kp; j += 8) {
        int8x16_t a = vcombine_s8(vld1_s8(x + j), vld1_s8(x + kp + j));
        const int8_t *g0 = wp + (size_t)j * 16, *g1 = g0 + 64;
        for (int v = 0; v < 4; v++) {  // rows 4v..4v+3
            int32x4_t lo = vreinterpretq_s32_s8(vld1q_s8(g0 + 16 * v)), hi = vreinterpretq_s32_s8(vld1q_s8(g1 + 16 * v));
            int8x16_t b01 = vreinterpretq_s8_s32(vzip1q_s32(lo, hi)), b23 = vreinterpretq_s8_s32(vzip2q_s32(lo, hi));
            acc[2 * v] = vmmlaq_s32(acc[2 * v], a, b01);
            acc[2 * v + 1] = vmmlaq_s32(acc[2 * v + 1], a, b23);
        }
    }
    for (int v = 0; v < 4; v++) {
        int32x4_t t0 = vcombine_s32(vget_low_s32(acc[2 * v]), vget_low_s32(acc[2 * v + 1]));
        int32x4_t t1 = vcombine_s32(vget_high_s32(acc[2 * v]), vget_high_s32(acc[2 * v + 1]));
        store4(y, t0, i + 4 * v, n, p, sx[0], off[0]);
        store4(y + ldy, t1, i + 4 * v, n, p, sx[1], off[1]);
    }
}

static void gemm_q8_i8mm(float *y, int ldy, const dq_qact *qa, int t0, int t1, const dq_qweight *w, int i0, int i1) {
    const dq_wpack *p = w->packed;
    DQ_ASSERT(qa->bias == 0 && qa->kp == p->kp && i0 % 16 == 0);
    int tp = t0 + (t1 - t0) / 2 * 2;  // token pairs; an odd last token goes to the dot kernel
    for (int i = i0; i < i1; i += 16)
        for (int t = t0; t < tp; t += 2)
            pair_i8mm(y + (size_t)t * ldy, ldy, qa->q + (size_t)t * p->kp, p->kp, p->panels + (size_t)i * p->kp, p, i, i1,
                      qa->scale + t, qa->off + t);
    if (tp < t1) gemm_q8_dot_range(y, ldy, qa, tp, t1, p, i0, i1);
}

#ifndef DQ_SIMDE_HEADER
#pragma GCC pop_options
#endif

// ---------------------------------------------------------------- FP32
ALWAYS_INLINE void ukernel_f32(const int MR, const int NR, float *y, int ldy, const float *x, const float *w, int k) {
    float32x4_t acc[4][4];
#pragma GCC unroll 4
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
        for (int c = 0; c < NR; c++) acc[r][c] = vdupq_n_f32(0.0f);
    int j = 0;
    for (; j + 4 <= k; j += 4) {
        float32x4_t wv[4];
#pragma GCC unroll 4
        for (int c = 0; c < NR; c++) wv[c] = vld1q_f32(w + (size_t)c * k + j);
#pragma GCC unroll 4
        for (int r = 0; r < MR; r++) {
            float32x4_t xv = vld1q_f32(x + (size_t)r * k + j);
#pragma GCC unroll 4
            for (int c = 0; c < NR; c++) acc[r][c] = vfmaq_f32(acc[r][c], xv, wv[c]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
        for (int c = 0; c < NR; c++) {
            float s = vaddvq_f32(acc[r][c]);
            for (int jj = j; jj < k; jj++) s += x[(size_t)r * k + jj] * w[(size_t)c * k + jj];
            y[(size_t)r * ldy + c] = s;
        }
}

#define UKF(MR, NR) ukernel_f32(MR, NR, y + (size_t)t * n + i, n, x + (size_t)t * k, w + (size_t)i * k, k)
#define UKF_ROW(MR)                \
    switch (nr) {                  \
    case 1: UKF(MR, 1); break;     \
    case 2: UKF(MR, 2); break;     \
    case 3: UKF(MR, 3); break;     \
    default: UKF(MR, 4); break;    \
    }

static void gemm_f32_neon(float *y, const float *x, int t0, int t1, const float *w, int n, int k, int i0, int i1) {
    for (int i = i0; i < i1; i += 4) {
        int nr = i1 - i < 4 ? i1 - i : 4;
        for (int t = t0; t < t1; t += 4) {
            switch (t1 - t < 4 ? t1 - t : 4) {
            case 1: UKF_ROW(1); break;
            case 2: UKF_ROW(2); break;
            case 3: UKF_ROW(3); break;
            default: UKF_ROW(4); break;
            }
        }
    }
}
#undef UKF
#undef UKF_ROW

// ---------------------------------------------------------------- roofline loops
#ifndef DQ_SIMDE_HEADER
#pragma GCC push_options
#pragma GCC target("arch=armv8.2-a+dotprod")
#endif
static int64_t peak_dot(int64_t iters, int32_t *sink) {
    int32x4_t a[12];
    for (int r = 0; r < 12; r++) a[r] = vdupq_n_s32(r);
    int8x16_t u = vreinterpretq_s8_s32(vdupq_n_s32(*sink | 0x01010101)), s = vdupq_n_s8(3);
    for (int64_t i = 0; i < iters; i++)
#pragma GCC unroll 12
        for (int r = 0; r < 12; r++) a[r] = vdotq_s32(a[r], u, s);
    int32x4_t t = a[0];
    for (int r = 1; r < 12; r++) t = vaddq_s32(t, a[r]);
    *sink = vaddvq_s32(t);
    return iters * 12 * 16 * 2;
}
#ifndef DQ_SIMDE_HEADER
#pragma GCC pop_options
#endif

static int64_t peak_neon(int64_t iters, int32_t *sink) {
    int32x4_t a[8];
    for (int r = 0; r < 8; r++) a[r] = vdupq_n_s32(r);
    int8x8_t u = vreinterpret_s8_s32(vdup_n_s32(*sink | 0x01010101));
    for (int64_t i = 0; i < iters; i++) {
#pragma GCC unroll 8
        for (int r = 0; r < 8; r++) a[r] = vpadalq_s16(a[r], vmull_s8(u, vreinterpret_s8_s32(vget_low_s32(a[r]))));
    }
    int32x4_t t = a[0];
    for (int r = 1; r < 8; r++) t = vaddq_s32(t, a[r]);
    *sink = vaddvq_s32(t);
    return iters * 8 * 8 * 2;
}

#define NEON_TABLE(gemm, peak, nm)                                                                  \
    {.isa = DQ_ISA_NEON, .name = nm, .use_panels = 1, .act_bias = 0, .absmax = absmax_neon, .quant = quant_neon, \
     .gemm_q8 = gemm,                                                                                  \
     .gemm_f32 = gemm_f32_neon, .int8_peak = peak, DQ_VEC_F32_MEMBERS}
static const dq_kernels tables[3] = {
    NEON_TABLE(gemm_q8_neon, peak_neon, "gemm_s8s8_1x16c4__neon, gemm_f32_4x4__neon"),
    NEON_TABLE(gemm_q8_neondot, peak_dot, "gemm_s8s8_4x16c4__neondot, gemm_f32_4x4__neon"),
    NEON_TABLE(gemm_q8_i8mm, peak_dot,
               "gemm_s8s8_2x16c8__neoni8mm (+4x16c4__neondot for m odd), gemm_f32_4x4__neon"),
};

// level: 0 plain NEON, 1 dotprod, 2 i8mm (+ dotprod). The caller makes sure the CPU has it.
const dq_kernels *dq_kernels_neon_level(int level) { return &tables[level < 0 ? 0 : level > 2 ? 2 : level]; }

// The variant follows the CPU (dq_cpu_probe); DYNQ_NEON=plain|dot narrows it (tests).
const dq_kernels *dq_kernels_neon(void) {
    dq_cpu c;
    dq_cpu_probe(&c);
    int level = c.asimddp ? (c.i8mm ? 2 : 1) : 0;
    const char *v = getenv("DYNQ_NEON");
    if (v && strcmp(v, "plain") == 0) level = 0;
    if (v && strcmp(v, "dot") == 0 && level > 1) level = 1;
    return dq_kernels_neon_level(level);
}
