// ggml_like/scalar.c: the reference kernels. Every SIMD kernel must give exactly what these
// give (integer accumulators equal, float outputs bit-identical, see kernels.h); they are also
// the fallback on CPUs without a supported SIMD extension (DYNQ_ISA=scalar forces them).
// Plain loops over row-major weights read in place (rows gathered one at a time when a matrix
// comes in the panel layout of a .dynq file): no packing.
#include <math.h>

#include "kernels.h"
#include "vec_f32.h"

// ---------------------------------------------------------------- activation codes
static float absmax_scalar(const float *x, int k) {
    float a = 0.0f;
    for (int j = 0; j < k; j++) {
        float v = fabsf(x[j]);
        a = v > a ? v : a;
    }
    return a;
}

static void quant_scalar(int8_t *q, const float *x, int k, float inv, int32_t off) {
    for (int j = 0; j < k; j++) {
        long v = lrintf(x[j] * inv) + off;  // round half to even, as cvtps2dq does
        v = v < -127 ? -127 : v > 127 ? 127 : v;
        q[j] = (int8_t)v;
    }
}

// ---------------------------------------------------------------- int8 matmul
static int32_t dot_s8(const int8_t *a, const int8_t *b, int k) {
    int32_t acc = 0;
    for (int j = 0; j < k; j++) acc += (int32_t)a[j] * (int32_t)b[j];
    return acc;
}

// Row i of w: in place if w is row-major, else gathered from its panels into buf (k bytes).
static const int8_t *w_row(const dq_qweight *w, int i, int8_t *buf) {
    if (w->w) return w->w + (size_t)i * w->k;
    dq_qweight_row(w, i, buf);
    return buf;
}

// gemm_s8s8__scalar: y = epilogue(codes . w) for the per-token schemes (SYM, ASYM, TENSOR).
static void gemm_q8_scalar(float *y, int ldy, const dq_qact *qa, int t0, int t1, const dq_qweight *w, int i0,
                           int i1) {
    const dq_wpack *p = w->packed;
    DQ_ASSERT(qa->bias == 0 && qa->ngroup == 1);
    int8_t buf[DQ_MAX_K];
    for (int i = i0; i < i1; i++) {
        const int8_t *wr = w_row(w, i, buf);
        for (int t = t0; t < t1; t++) {
            int32_t acc = dot_s8(qa->q + (size_t)t * qa->kp, wr, w->k);
            y[(size_t)t * ldy + i] = dq_epilogue(acc, qa->off[t], p->rowsum[i], qa->scale[t], p->scale[i]);
        }
    }
}

// gemm_s8s8_group64__scalar: one int32 sum per group of 64 inputs, combined in float in group
// order: y = scale_w * sum_g (scale_x[g] * acc_g). Used by every ISA (quality study only).
void dq_gemm_q8_group_scalar(float *y, int ldy, const dq_qact *qa, int t0, int t1, const dq_qweight *w, int i0,
                             int i1) {
    const dq_wpack *p = w->packed;
    DQ_ASSERT(qa->bias == 0);
    int8_t buf[DQ_MAX_K];
    for (int i = i0; i < i1; i++) {
        const int8_t *wr = w_row(w, i, buf);
        for (int t = t0; t < t1; t++) {
            const int8_t *xq = qa->q + (size_t)t * qa->kp;
            const float *sx = qa->scale + (size_t)t * qa->ngroup;
            float sum = 0.0f;
            for (int g = 0; g < qa->ngroup; g++) {
                int j0 = g * 64, len = w->k - j0 < 64 ? w->k - j0 : 64;
                sum += sx[g] * (float)dot_s8(xq + j0, wr + j0, len);
            }
            y[(size_t)t * ldy + i] = sum * p->scale[i];
        }
    }
}

// ---------------------------------------------------------------- fp32 matmul
// One sequential sum per output (the order SIMD kernels do not follow: FP32 is compared with a
// tolerance, never bit for bit).
static void gemm_f32_scalar(float *y, const float *x, int t0, int t1, const float *w, int n, int k, int i0,
                            int i1) {
    for (int t = t0; t < t1; t++) {
        const float *xr = x + (size_t)t * k;
        for (int i = i0; i < i1; i++) {
            const float *wr = w + (size_t)i * k;
            float acc = 0.0f;
            for (int j = 0; j < k; j++) acc += xr[j] * wr[j];
            y[(size_t)t * n + i] = acc;
        }
    }
}

// ---------------------------------------------------------------- roofline loop
static int64_t int8_peak_scalar(int64_t iters, int32_t *sink) {
    uint32_t a0 = 1, a1 = 2, a2 = 3, a3 = 4;  // unsigned: the sums wrap over long runs
    volatile int8_t src[8] = {1, -2, 3, -4, 5, -6, 7, -8};
    int8_t x0 = src[0], x1 = src[1], x2 = src[2], x3 = src[3], w0 = src[4], w1 = src[5], w2 = src[6], w3 = src[7];
    for (int64_t i = 0; i < iters; i++) {
        a0 += (uint32_t)(x0 * w0);
        a1 += (uint32_t)(x1 * w1);
        a2 += (uint32_t)(x2 * w2);
        a3 += (uint32_t)(x3 * w3);
        __asm__ volatile("" : "+r"(a0), "+r"(a1), "+r"(a2), "+r"(a3));  // keep the loop scalar
    }
    *sink = (int32_t)(a0 + a1 + a2 + a3);
    return iters * 4 * 2;
}

static const dq_kernels table = {
    .isa = DQ_ISA_SCALAR,
    .name = "gemm_s8s8__scalar, gemm_f32__scalar",
    .use_panels = 0,
    .act_bias = 0,
    .absmax = absmax_scalar,
    .quant = quant_scalar,
    .gemm_q8 = gemm_q8_scalar,
    .gemm_f32 = gemm_f32_scalar,
    .int8_peak = int8_peak_scalar,
    DQ_VEC_F32_MEMBERS,
};
const dq_kernels *dq_kernels_scalar(void) { return &table; }
