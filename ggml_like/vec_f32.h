// ggml_like/vec_f32.h: the FP32 kernels around the matmuls (attention over the KV cache, SwiGLU,
// RMSNorm, e^x), written once with GCC/Clang vector extensions on 16 lanes and included by every ISA file
// (scalar.c, avx2.c, avx512vnni.c, neon.c), each compiling it with its own flags:
//   attn_f32__vec     one query of one head against np cached positions: scores, softmax, mix
//   swiglu_f32__vec   h = silu(g) * u
//   rmsnorm_f32__vec  o = w * x / rms(x)
// Every ISA therefore runs the same lane-wise IEEE operations in the same order (-ffp-contract=off
// in ggml_like.mk: no fused multiply-add), so the results are bit-identical across ISAs and the
// scalar table's copy is the reference the others are tested against; wider registers only do
// more lanes per instruction (one zmm, two ymm, four xmm or four NEON q registers per vector).
// Helpers taking or returning vectors are always inlined: no vector crosses a call boundary.
#ifndef DQ_VEC_F32_H
#define DQ_VEC_F32_H

#include <math.h>
#include <stdint.h>
#include <string.h>

// Vectors never cross a call (all helpers are always inlined, the two kernels take pointers), so
// the ABI of passing 64-byte vectors, which -Wpsabi warns about without AVX-512, never applies.
// GCC reports it at the end of the translation unit: the including ISA file keeps it off.
#pragma GCC diagnostic ignored "-Wpsabi"

typedef float dq_v16f __attribute__((vector_size(64)));
typedef int32_t dq_v16i __attribute__((vector_size(64)));
#define V16_INLINE static inline __attribute__((always_inline))

V16_INLINE dq_v16f v16_load(const float *p) {
    dq_v16f v;
    memcpy(&v, p, sizeof v);
    return v;
}
V16_INLINE void v16_store(float *p, dq_v16f v) { memcpy(p, &v, sizeof v); }
V16_INLINE dq_v16f v16_set1(float a) { return (dq_v16f){0} + a; }
// m ? a : b lane by lane (m from a comparison: all ones or all zeros).
V16_INLINE dq_v16f v16_select(dq_v16i m, dq_v16f a, dq_v16f b) {
    return (dq_v16f)((m & (dq_v16i)a) | (~m & (dq_v16i)b));
}
// Sum of the 16 lanes in one fixed tree: (i, i+8), then (i, i+4), (i, i+2), (0, 1).
V16_INLINE float v16_hsum(dq_v16f a) {
    float b[8], c[4];
    for (int i = 0; i < 8; i++) b[i] = a[i] + a[i + 8];
    for (int i = 0; i < 4; i++) c[i] = b[i] + b[i + 4];
    return (c[0] + c[2]) + (c[1] + c[3]);
}

// e^x, Cephes-style: x = n ln2 + r with |r| <= ln2/2 (ln2 split in two so n ln2 is exact enough),
// a degree-6 polynomial for e^r, and 2^n put together in the exponent bits. Within 2 ulp of e^x
// for -87 <= x <= 88; below -87 it returns 0 (the true value is subnormal, < 2e-38), above 88 it
// returns +inf (true values there reach 3.4e38), NaN stays NaN. Softmax (x <= 0) and SiLU need
// nothing more.
V16_INLINE dq_v16f v16_exp(dq_v16f x) {
    const dq_v16f lo = v16_set1(-87.0f), hi = v16_set1(88.0f);
    dq_v16f xc = v16_select(x == x, x, v16_set1(0.0f));  // NaN lanes computed on 0, fixed below
    xc = v16_select(xc < lo, lo, xc);
    xc = v16_select(xc > hi, hi, xc);
    const dq_v16f magic = v16_set1(12582912.0f);  // 1.5 * 2^23: adding it rounds to an integer
    dq_v16f n = (xc * 1.44269504088896341f + magic) - magic;
    dq_v16f r = (xc - n * 0.693359375f) + n * 2.12194440e-4f;
    dq_v16f p = v16_set1(1.9875691500e-4f);
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = (p * (r * r) + r) + 1.0f;
    dq_v16i e = (__builtin_convertvector(n, dq_v16i) + 127) << 23;  // 2^n, n in [-126, 127]
    dq_v16f y = p * (dq_v16f)e;
    y = v16_select(x > hi, v16_set1(INFINITY), y);
    y = v16_select(x < lo, v16_set1(0.0f), y);
    return v16_select(x == x, y, x);
}

// The same tree for 16 vectors at once: lane r of the result is v16_hsum(a[r]), bit for bit
// (every addition pairs the same two values; shuffles only move them into place).
V16_INLINE dq_v16f v16_hsum16(const dq_v16f a[16]) {
    dq_v16f x[8], y[4], z[2];
    for (int j = 0; j < 8; j++)  // lanes 0-7: b of a[2j], lanes 8-15: b of a[2j+1]; b[i] = a[i] + a[i+8]
        x[j] = __builtin_shufflevector(a[2 * j], a[2 * j + 1], 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23) +
               __builtin_shufflevector(a[2 * j], a[2 * j + 1], 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30,
                                       31);
    for (int j = 0; j < 4; j++)  // four vectors each: c[i] = b[i] + b[i+4], i < 4
        y[j] = __builtin_shufflevector(x[2 * j], x[2 * j + 1], 0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27) +
               __builtin_shufflevector(x[2 * j], x[2 * j + 1], 4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30,
                                       31);
    for (int j = 0; j < 2; j++)  // eight vectors each: d[i] = c[i] + c[i+2], i < 2
        z[j] = __builtin_shufflevector(y[2 * j], y[2 * j + 1], 0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 24, 25, 28, 29) +
               __builtin_shufflevector(y[2 * j], y[2 * j + 1], 2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22, 23, 26, 27, 30, 31);
    return __builtin_shufflevector(z[0], z[1], 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30) +
           __builtin_shufflevector(z[0], z[1], 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);  // d0 + d1
}

// exp of n <= 16 values of x into y (the missing lanes are computed on -inf: e^-inf = 0).
V16_INLINE dq_v16f v16_load_part(const float *x, int n, float fill) {
    float b[16];
    for (int i = 0; i < 16; i++) b[i] = i < n ? x[i] : fill;
    return v16_load(b);
}
V16_INLINE void v16_store_part(float *y, dq_v16f v, int n) {
    float b[16];
    v16_store(b, v);
    memcpy(y, b, (size_t)n * sizeof(float));
}

// scale * (q . k) for one key: 16-lane partial sums over hd in order, the fixed tree, then the
// hd % 16 tail one by one.
V16_INLINE float v16_dot_tail(const float *q, const float *k, int hd) {
    dq_v16f a = {0};
    int i = 0;
    for (; i + 16 <= hd; i += 16) a += v16_load(q + i) * v16_load(k + i);
    float s = v16_hsum(a);
    for (; i < hd; i++) s += q[i] * k[i];
    return s;
}

// out (hd) = softmax(scale * q . k_p, p < np) . v: q (hd), k and v (np, hd) rows of one head's
// cache, att (np rounded up to 16) scratch. The arithmetic, identical on every ISA:
//   score p = scale * v16_dot_tail(q, k_p): 16-lane partial sums over hd in order, the tree;
//   mx = the largest score; e_p = e^(score_p - mx); sum = the 16-lane partial sums of e_p
//   (p mod 16), the tree; w_p = e_p * (1 / sum);
//   out[i] = (sum of w_p v_p[i] over even p, in order) + (the same over odd p).
// The order of the work is free and chosen for the hardware: scores for 16 keys at a time, eight
// keys' sums in flight at once and one v16_hsum16 for the sixteen (each key's own additions stay
// in order); the mix keeps even and odd positions in separate registers; both give enough
// independent additions to hide their latency (a single chain of dependent adds ran at a third of
// the adder's throughput).
static void attn_f32__vec(float *out, const float *q, const float *k, const float *v, int np, int hd, float scale,
                          float *att) {
    int p = 0;
    if (hd % 16 == 0) {
        for (; p + 16 <= np; p += 16) {
            dq_v16f acc[16];
            for (int r = 0; r < 16; r += 8) {
                const float *kr = k + (size_t)(p + r) * hd;
                for (int j = 0; j < 8 * hd; j += 16) __builtin_prefetch(kr + 16 * hd + j);
                dq_v16f a[8] = {{0}};
                for (int i = 0; i < hd; i += 16) {
                    dq_v16f qv = v16_load(q + i);
#pragma GCC unroll 8
                    for (int j = 0; j < 8; j++) a[j] += qv * v16_load(kr + (size_t)j * hd + i);
                }
#pragma GCC unroll 8
                for (int j = 0; j < 8; j++) acc[r + j] = a[j];
            }
            v16_store(att + p, v16_hsum16(acc) * scale);
        }
    }
    for (; p < np; p++) att[p] = v16_dot_tail(q, k + (size_t)p * hd, hd) * scale;
    // The largest score (NaNs ignored; exact in any order, and e^(s - mx) does not see the sign
    // of a zero mx), 16 lanes at a time: a scalar running max is one dependent vmaxss per key.
    dq_v16f mv = v16_set1(-INFINITY);
    for (p = 0; p < np; p += 16) {  // (the part-loads go through memory: full chunks load directly)
        dq_v16f sv = np - p >= 16 ? v16_load(att + p) : v16_load_part(att + p, np - p, -INFINITY);
        mv = v16_select(sv > mv, sv, mv);
    }
    float mx = -INFINITY;
    for (int i = 0; i < 16; i++) mx = mv[i] > mx ? mv[i] : mx;
    dq_v16f sum = {0};
    for (p = 0; p < np; p += 16) {
        dq_v16f e = v16_exp((np - p >= 16 ? v16_load(att + p) : v16_load_part(att + p, np - p, -INFINITY)) - mx);
        sum += e;
        v16_store(att + p, e);  // att has room for np rounded up to 16
    }
    const float inv = 1.0f / v16_hsum(sum);
    for (p = 0; p < np; p += 16) v16_store(att + p, v16_load(att + p) * inv);
    int i = 0;
    for (; i + 64 <= hd; i += 64) {
        dq_v16f e0 = {0}, e1 = {0}, e2 = {0}, e3 = {0}, o0 = {0}, o1 = {0}, o2 = {0}, o3 = {0};
        for (p = 0; p + 2 <= np; p += 2) {
            const float *vp = v + (size_t)p * hd + i;
            __builtin_prefetch(vp + 4 * hd);
            __builtin_prefetch(vp + 4 * hd + 32);
            __builtin_prefetch(vp + 5 * hd);
            __builtin_prefetch(vp + 5 * hd + 32);
            const float we = att[p], wo = att[p + 1];
            e0 += we * v16_load(vp), e1 += we * v16_load(vp + 16);
            e2 += we * v16_load(vp + 32), e3 += we * v16_load(vp + 48);
            o0 += wo * v16_load(vp + hd), o1 += wo * v16_load(vp + hd + 16);
            o2 += wo * v16_load(vp + hd + 32), o3 += wo * v16_load(vp + hd + 48);
        }
        if (p < np) {
            const float *vp = v + (size_t)p * hd + i;
            const float we = att[p];
            e0 += we * v16_load(vp), e1 += we * v16_load(vp + 16);
            e2 += we * v16_load(vp + 32), e3 += we * v16_load(vp + 48);
        }
        v16_store(out + i, e0 + o0), v16_store(out + i + 16, e1 + o1);
        v16_store(out + i + 32, e2 + o2), v16_store(out + i + 48, e3 + o3);
    }
    for (; i + 16 <= hd; i += 16) {
        dq_v16f e0 = {0}, o0 = {0};
        for (p = 0; p < np; p++) {
            if (p & 1) o0 += att[p] * v16_load(v + (size_t)p * hd + i);
            else e0 += att[p] * v16_load(v + (size_t)p * hd + i);
        }
        v16_store(out + i, e0 + o0);
    }
    for (; i < hd; i++) {
        float e0 = 0.0f, o0 = 0.0f;
        for (p = 0; p < np; p++) {
            if (p & 1) o0 += att[p] * v[(size_t)p * hd + i];
            else e0 += att[p] * v[(size_t)p * hd + i];
        }
        out[i] = e0 + o0;
    }
}

// o = w * (x / sqrt(mean(x^2) + eps)), n values: the squares summed in 16 lanes (p mod 16)
// and the tree, then one scale per element (the n % 16 tail one by one, same expression).
static void rmsnorm_f32__vec(float *o, const float *x, const float *w, int n, float eps) {
    dq_v16f ss = {0};
    int j = 0;
    for (; j + 16 <= n; j += 16) {
        dq_v16f v = v16_load(x + j);
        ss += v * v;
    }
    if (j < n) {
        dq_v16f v = v16_load_part(x + j, n - j, 0.0f);
        ss += v * v;
    }
    const float inv = 1.0f / sqrtf(v16_hsum(ss) / (float)n + eps);
    for (j = 0; j + 16 <= n; j += 16) v16_store(o + j, v16_load(w + j) * (inv * v16_load(x + j)));
    for (; j < n; j++) o[j] = w[j] * (inv * x[j]);
}

// h[i] = g[i] / (1 + e^-g[i]) * u[i], i < n.
static void swiglu_f32__vec(float *h, const float *g, const float *u, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        dq_v16f gv = v16_load(g + i);
        v16_store(h + i, gv / (1.0f + v16_exp(-gv)) * v16_load(u + i));
    }
    if (i < n) {
        int r = (int)(n - i);
        dq_v16f gv = v16_load_part(g + i, r, 0.0f);
        v16_store_part(h + i, gv / (1.0f + v16_exp(-gv)) * v16_load_part(u + i, r, 0.0f), r);
    }
}

#endif
