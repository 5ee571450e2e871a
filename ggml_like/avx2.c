// ggml_like/avx2.c: AVX2 kernels (ymm), for x86-64 CPUs without AVX-512 VNNI.
//   gemm_s8s8_3x16c4__avx2   int8 GEMM/GEMV: 3 tokens x 1 weight panel (16 rows) per step
//   gemm_f32_4x3__avx2       FP32 GEMM/GEMV, one 8-lane accumulator per output
//
// Exactness without int16 saturation. vpmaddubsw multiplies unsigned bytes by signed bytes and
// adds adjacent pairs into int16 WITH saturation: 255 * 127 * 2 (or 255 * -128 * 2) overflows.
// So the unsigned operand is |w| (0..128, since |-128| = 128 read as u8) and the signed operand
// is the activation code with w's sign moved onto it, sign(c, w) = c * sgn(w). Codes are in
// [-127, 127] by construction (kernels.h), so sign(c, w) never negates -128, and one pair is at
// most 2 * 128 * 127 = 32512 < 32767: no saturation, the int16 sums are exact. vpmaddwd with 1s
// then widens each row's 4 products to int32 (exact) before vpaddd accumulates.
//
// Prefill (a panel's |w| precomputed, below) moves the sign differently, because vpsignb runs only
// on the two pipes that also multiply on Zen 3 (2 per cycle; with vpmaddwd, 1.06 pairs per cycle):
// the signed operand is c ^ m, m = 0xff where w < 0 (a mask precomputed with |w|), which vpxor
// makes on any of the four pipes. For w < 0, c ^ 0xff = -c - 1, so |w| * (c ^ m) = w * c + w: the
// sum over k is the exact dot product plus the row's sum of min(w, 0), precomputed per panel and
// subtracted from the int32 sum. Bounds: c ^ m is in [-128, 127] and |w| <= 128, so a pair is in
// [-32768, 32512]: no saturation either.
// Built with -mavx2 -mfma (ggml_like.mk); the tests also build it against SIMDe.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#define DQ_VEC_BYTES 32  // ymm: the attention kernel's native vector
#define DQ_EXP_ILP 2  // e^x chains interleaved (SwiGLU)
#include "vec_f32.h"

#ifdef DQ_SIMDE_HEADER
#include DQ_SIMDE_HEADER
#else
#include <immintrin.h>
#endif

#define ALWAYS_INLINE static inline __attribute__((always_inline))

// ---------------------------------------------------------------- activation codes
// max(v, a) returns a when v is NaN: NaNs are ignored, as in the scalar spec.
static float absmax_avx2(const float *x, int k) {
    const __m256 mag = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    __m256 a = _mm256_setzero_ps();
    int j = 0;
    for (; j + 8 <= k; j += 8) a = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(x + j), mag), a);
    float t[8], r = 0.0f;
    _mm256_storeu_ps(t, a);
    for (int i = 0; i < 8; i++) r = t[i] > r ? t[i] : r;
    for (; j < k; j++) {
        float v = fabsf(x[j]);
        r = v > r ? v : r;
    }
    return r;
}

static void quant_avx2(int8_t *q, const float *x, int k, float inv, int32_t off) {
    const __m256 vinv = _mm256_set1_ps(inv);
    const __m256i voff = _mm256_set1_epi32(off), lo = _mm256_set1_epi32(-127), hi = _mm256_set1_epi32(127);
    int j = 0;
    for (; j + 8 <= k; j += 8) {
        __m256i c = _mm256_add_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + j), vinv)), voff);
        c = _mm256_min_epi32(_mm256_max_epi32(c, lo), hi);
        // int32 -> int8 (values already in range, so the saturating packs are exact)
        __m128i w16 = _mm_packs_epi32(_mm256_castsi256_si128(c), _mm256_extracti128_si256(c, 1));
        __m128i b8 = _mm_packs_epi16(w16, w16);
        int64_t v = _mm_cvtsi128_si64(b8);
        memcpy(q + j, &v, 8);
    }
    for (; j < k; j++) {  // tail: the same arithmetic, one lane
        __m128 v = _mm_mul_ss(_mm_set_ss(x[j]), _mm_set_ss(inv));
        int32_t c = _mm_cvtss_si32(v) + off;
        q[j] = (int8_t)(c < -127 ? -127 : c > 127 ? 127 : c);
    }
}

// ---------------------------------------------------------------- int8 GEMM
static inline int32_t load4(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

// Exact sum of 4 products per int32 lane (see the comment at the top).
ALWAYS_INLINE __m256i dot4(__m256i acc, __m256i absw, __m256i w, __m256i xb, __m256i ones) {
    __m256i p16 = _mm256_maddubs_epi16(absw, _mm256_sign_epi8(xb, w));
    return _mm256_add_epi32(acc, _mm256_madd_epi16(p16, ones));
}

// The same sum plus the rows' sums of min(w, 0), from |w| and w's sign mask m (see the top).
ALWAYS_INLINE __m256i dot4_xor(__m256i acc, __m256i absw, __m256i m, __m256i xb, __m256i ones) {
    __m256i p16 = _mm256_maddubs_epi16(absw, _mm256_xor_si256(xb, m));
    return _mm256_add_epi32(acc, _mm256_madd_epi16(p16, ones));
}

ALWAYS_INLINE void store_rows(float *y, __m256i acc, int row, int n, const dq_wpack *p, float sx, int32_t off) {
    __m256i corr = _mm256_mullo_epi32(_mm256_set1_epi32(off), _mm256_loadu_si256((const void *)(p->rowsum + row)));
    __m256 f = _mm256_cvtepi32_ps(_mm256_sub_epi32(acc, corr));
    __m256 sc = _mm256_mul_ps(_mm256_set1_ps(sx), _mm256_loadu_ps(p->scale + row));
    __m256 v = _mm256_mul_ps(f, sc);
    if (n - row >= 8) {
        _mm256_storeu_ps(y + row, v);
    } else if (n > row) {
        float tmp[8];
        _mm256_storeu_ps(tmp, v);
        memcpy(y + row, tmp, (size_t)(n - row) * 4);
    }
}

// y[r0, r1) (r1 - r0 a multiple of 8, all rows of the matrix) holds the four-stream GEMV's int32
// sums as they are (their bit patterns): turn them into what store_rows would have stored (the
// same expression, dq_epilogue), reading the rows' sums and scales as one sequential pass. With
// no zero offset (symmetric activations) the row sums are not read: off * rowsum is 0.
static void epilogue_rows(float *y, int r0, int r1, const dq_wpack *p, float sx, int32_t off) {
    DQ_ASSERT((r1 - r0) % 8 == 0);
    const __m256 vsx = _mm256_set1_ps(sx);
    for (int r = r0; r < r1; r += 8) {
        const __m256i acc = _mm256_loadu_si256((const void *)(y + r));
        if (off) {
            store_rows(y, acc, r, r1, p, sx, off);
            continue;
        }
        _mm256_storeu_ps(y + r, _mm256_mul_ps(_mm256_cvtepi32_ps(acc), _mm256_mul_ps(vsx, _mm256_loadu_ps(p->scale + r))));
    }
}

// A panel prepared once for all its token blocks in prefill: 32 kp + 64 bytes from the heap, one
// allocation per call (on the stack, 256 KiB for K = 8192 overflowed a 200 KiB `ulimit -s`).
struct pre_panel {
    int8_t *abs;      // |w|, 64-byte aligned
    int8_t *neg;      // w's sign mask: 0xff where w < 0, else 0
    int32_t *negsum;  // each row's sum of min(w, 0)
};

// 0, or -1 with nothing allocated (the caller then takes the path that needs no preparation).
static int pre_alloc(struct pre_panel *pre, int kp) {
    const size_t b = (size_t)32 * kp;  // a multiple of 64: kp is a multiple of 4
    int8_t *m = aligned_alloc(64, b + 64);
    if (!m) return -1;
    pre->abs = m;
    pre->neg = m + b / 2;
    pre->negsum = (int32_t *)(void *)(m + b);
    return 0;
}

// The panel at w (kp / 4 steps of 16 rows x 4 bytes) into pre.
static void prepare_panel(struct pre_panel *pre, const int8_t *w, int kp) {
    const __m256i z = _mm256_setzero_si256(), one8 = _mm256_set1_epi8(1), one16 = _mm256_set1_epi16(1);
    __m256i c[2] = {z, z};
    for (int j = 0; j < 16 * kp; j += 64)
        for (int h = 0; h < 2; h++) {  // rows 0-7, 8-15
            const __m256i v = _mm256_loadu_si256((const void *)(w + j + 32 * h));
            _mm256_store_si256((void *)(pre->abs + j + 32 * h), _mm256_abs_epi8(v));
            _mm256_store_si256((void *)(pre->neg + j + 32 * h), _mm256_cmpgt_epi8(z, v));
            // each row's 4 bytes of min(w, 0) summed into its int32 lane (pairs >= -256: exact)
            c[h] = _mm256_add_epi32(c[h], _mm256_madd_epi16(_mm256_maddubs_epi16(one8, _mm256_min_epi8(v, z)), one16));
        }
    _mm256_store_si256((void *)pre->negsum, c[0]);
    _mm256_store_si256((void *)(pre->negsum + 8), c[1]);
}

// MR <= 3 tokens x one panel (16 rows = 2 ymm), whole k (MR = 4 spills: 16 ymm registers).
// pre: the panel's |w|, sign masks and rows' sums of min(w, 0) (pre_panel), or NULL: |w| and the
// sign computed here from the panel wp, once per token block.
ALWAYS_INLINE void ukernel(const int MR, float *y, int ldy, const int8_t *x, int kp, const int8_t *wp,
                           const struct pre_panel *pre, const dq_wpack *p, int i, int n, const float *sx,
                           const int32_t *off, const int8_t *pf, int npf) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i acc[3][2];
#pragma GCC unroll 4
    for (int r = 0; r < MR; r++) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
    const int ng = kp / 4;
    for (int s = 0; s < ng; s++) {
        dq_prefetch_step(pf, npf, s);
        if (pre) {
            const __m256i a0 = _mm256_load_si256((const void *)(pre->abs + (size_t)s * 64));
            const __m256i a1 = _mm256_load_si256((const void *)(pre->abs + (size_t)s * 64 + 32));
            const __m256i m0 = _mm256_load_si256((const void *)(pre->neg + (size_t)s * 64));
            const __m256i m1 = _mm256_load_si256((const void *)(pre->neg + (size_t)s * 64 + 32));
#pragma GCC unroll 4
            for (int r = 0; r < MR; r++) {
                __m256i xb = _mm256_set1_epi32(load4(x + (size_t)r * kp + 4 * s));
                acc[r][0] = dot4_xor(acc[r][0], a0, m0, xb, ones);
                acc[r][1] = dot4_xor(acc[r][1], a1, m1, xb, ones);
            }
            continue;
        }
        const __m256i w0 = _mm256_loadu_si256((const void *)(wp + (size_t)s * 64));
        const __m256i w1 = _mm256_loadu_si256((const void *)(wp + (size_t)s * 64 + 32));
        const __m256i a0 = _mm256_abs_epi8(w0), a1 = _mm256_abs_epi8(w1);
#pragma GCC unroll 4
        for (int r = 0; r < MR; r++) {
            __m256i xb = _mm256_set1_epi32(load4(x + (size_t)r * kp + 4 * s));
            acc[r][0] = dot4(acc[r][0], a0, w0, xb, ones);
            acc[r][1] = dot4(acc[r][1], a1, w1, xb, ones);
        }
    }
    if (pre) {
        const __m256i c0 = _mm256_load_si256((const void *)pre->negsum), c1 = _mm256_load_si256((const void *)(pre->negsum + 8));
#pragma GCC unroll 4
        for (int r = 0; r < MR; r++) acc[r][0] = _mm256_sub_epi32(acc[r][0], c0), acc[r][1] = _mm256_sub_epi32(acc[r][1], c1);
    }
#pragma GCC unroll 4
    for (int r = 0; r < MR; r++) {
        store_rows(y + (size_t)r * ldy, acc[r][0], i, n, p, sx[r], off[r]);
        store_rows(y + (size_t)r * ldy, acc[r][1], i + 8, n, p, sx[r], off[r]);
    }
}

#if !defined(DQ_SIMDE_HEADER) && defined(__x86_64__)
// The 3-token step of ukernel with the panel precomputed (the GEMM's hot loop in prefill), written
// out in assembly: the same instructions and arithmetic, so the same int32 sums bit for bit (the
// kernel tests compare it with scalar; the SIMDe build runs the C ukernel). Registers: ymm0 the
// int16 ones, ymm1-6 the accumulators (token r, rows 0-7 / 8-15 in ymm(1+2r), ymm(2+2r)), ymm9-10
// |w|, ymm11-13 the tokens' broadcast codes, ymm14-15 the products; w's sign masks are vpxor's
// memory operand (a separate load into a register was 7 % slower: 2.50 against 2.69 G steps/s in
// a harness, Zen 3). Four steps per loop iteration, the L2 prefetch of dq_prefetch_step once per
// iteration (npf lines from pf). The rows' sums of min(w, 0) are subtracted at the end, as
// ukernel does, so the sums out are the exact dot products.
// Why: gcc compiled the C loop with a register copy per accumulator and a stack spill or two in
// every step (51 instructions for 24 vector operations), and the variants of the C that removed
// them were slower still. This loop, alternating with the C one in one binary on the Zen 3
// (family 25 model 1), `dynq bench -p 128 -n 1`, one thread: stories110M shape 679-684 -> 770-780
// tok/s (4 rounds), TinyLlama shape 62.3-63.0 -> 71.4-72.7 at one thread, 123.6-124.1 ->
// 142.5-143.7 at two (2 rounds): +14-16 %.
//
// Widening off the multiply pipe (dq_avx2_widen = 1, AMD family 23). On the Zen 2 (family 23
// model 49) vpmaddubsw and vpmaddwd both issue on one pipe, one per cycle together (a harness: 8
// independent vpmaddubsw and 8 vpmaddwd take 16 cycles, vpmaddubsw with a vpsrad beside it 1 per
// cycle), so the step above costs 2 cycles of that pipe per 32 products, and the int8 peak loop
// (`--roofline`) is the same pair. The third token of the block widens by shifts and adds
// instead, which run elsewhere: with v the 16 int16 pair sums as 8 int32 lanes, each lane holds
// hi * 65536 + (lo mod 65536). vpxor with 0x00008000 per lane turns the low field into lo +
// 32768, in [0, 65535], so the lane is exactly v' = 65536 hi + lo + 32768, and vpsrad 16 of it is
// hi. The step adds v' into SA and hi into SB; after S steps the lane's sum of lo + hi is SA -
// 65535 SB - 32768 S, computed mod 2^32 by the caller (uk3_mixed_fix), exact because the true
// value is an int32. Two tokens of the three stay on vpmaddwd: moving the second one too was 7 %
// slower (the other pipes then run out). scripts/ab_decode.c `prefill`, 128 tokens, Zen 2, against
// vpmaddwd for all three: stories110M shape 1.075x and 1.091x at one thread, 1.090x at two;
// TinyLlama shape 1.131x at one thread.
// Shared by the two assembly loops below: zero a register; store one to the acc operand at O.
#define ASM_ZERO(R) "vpxor %%xmm" #R ", %%xmm" #R ", %%xmm" #R "\n\t"
#define ASM_STORE(R, O) "vmovdqu %%ymm" #R ", " #O "(%[acc])\n\t"
#define UK3_STEP(O, R0, R1, XR)                                                                     \
    "vpxor " #O "(%[mp]), %%ymm" #XR ", %%ymm14\n\t"                                                \
    "vpmaddubsw %%ymm14, %%ymm9, %%ymm14\n\t"                                                       \
    "vpmaddwd %%ymm0, %%ymm14, %%ymm14\n\t"                                                         \
    "vpaddd %%ymm14, %%ymm" #R0 ", %%ymm" #R0 "\n\t"                                               \
    "vpxor " #O "+32(%[mp]), %%ymm" #XR ", %%ymm15\n\t"                                             \
    "vpmaddubsw %%ymm15, %%ymm10, %%ymm15\n\t"                                                      \
    "vpmaddwd %%ymm0, %%ymm15, %%ymm15\n\t"                                                         \
    "vpaddd %%ymm15, %%ymm" #R1 ", %%ymm" #R1 "\n\t"
// The shift form of UK3_STEP: SA in ymm R0 / R1, SB in ymm S0 / S1, ymm12 the 0x00008000 lanes.
#define UK3_SHIFT(O, R0, R1, S0, S1, XR)                                                            \
    "vpxor " #O "(%[mp]), %%ymm" #XR ", %%ymm14\n\t"                                                \
    "vpmaddubsw %%ymm14, %%ymm9, %%ymm14\n\t"                                                       \
    "vpxor %%ymm12, %%ymm14, %%ymm14\n\t"                                                           \
    "vpaddd %%ymm14, %%ymm" #R0 ", %%ymm" #R0 "\n\t"                                               \
    "vpsrad $16, %%ymm14, %%ymm14\n\t"                                                              \
    "vpaddd %%ymm14, %%ymm" #S0 ", %%ymm" #S0 "\n\t"                                               \
    "vpxor " #O "+32(%[mp]), %%ymm" #XR ", %%ymm15\n\t"                                             \
    "vpmaddubsw %%ymm15, %%ymm10, %%ymm15\n\t"                                                      \
    "vpxor %%ymm12, %%ymm15, %%ymm15\n\t"                                                           \
    "vpaddd %%ymm15, %%ymm" #R1 ", %%ymm" #R1 "\n\t"                                               \
    "vpsrad $16, %%ymm15, %%ymm15\n\t"                                                              \
    "vpaddd %%ymm15, %%ymm" #S1 ", %%ymm" #S1 "\n\t"
#define UK3_LOAD(O)                                                                                 \
    "vmovdqa " #O "(%[ap]), %%ymm9\n\t"                                                             \
    "vmovdqa " #O "+32(%[ap]), %%ymm10\n\t"
// One group of four steps of the 3-token block: tokens 0 and 1 on UK3_STEP (their broadcast codes
// in ymm11 and ymm X1), token 2's codes in ymm X2 and its step LAST.
#define UK3_GROUP_OF(O, OX, X1, X2, LAST)                                                           \
    UK3_LOAD(O)                                                                                     \
    "vpbroadcastd " #OX "(%[x0]), %%ymm11\n\t"                                                      \
    UK3_STEP(O, 1, 2, 11)                                                                           \
    "vpbroadcastd " #OX "(%[x1]), %%ymm" #X1 "\n\t"                                                 \
    UK3_STEP(O, 3, 4, X1)                                                                           \
    "vpbroadcastd " #OX "(%[x2]), %%ymm" #X2 "\n\t" LAST
#define UK3_GROUP(O, OX) UK3_GROUP_OF(O, OX, 12, 13, UK3_STEP(O, 5, 6, 13))
#define UK3_GROUP_MIXED(O, OX) UK3_GROUP_OF(O, OX, 13, 11, UK3_SHIFT(O, 5, 6, 7, 8, 11))  // ymm12: the bias
#define UK3_LOOP(GROUP)                                                                             \
    ".p2align 5\n"                                                                                  \
    "1:\n\t"                                                                                        \
    "cmp %[npf], %[g]\n\t"                                                                          \
    "jge 2f\n\t"                                                                                    \
    "prefetcht1 (%[pf])\n\t"                                                                        \
    "add $64, %[pf]\n"                                                                              \
    "2:\n\t"                                                                                        \
    GROUP(0, 0) GROUP(64, 4) GROUP(128, 8) GROUP(192, 12)                                           \
    "add $256, %[mp]\n\t"                                                                           \
    "add $256, %[ap]\n\t"                                                                           \
    "add $16, %[x0]\n\t"                                                                            \
    "add $16, %[x1]\n\t"                                                                            \
    "add $16, %[x2]\n\t"                                                                            \
    "inc %[g]\n\t"                                                                                  \
    "cmp %[ng4], %[g]\n\t"                                                                          \
    "jl 1b\n\t"
#define UK3_SUB_NEGSUM(R0, R1)                                                                      \
    "vpsubd 0(%[ns]), %%ymm" #R0 ", %%ymm" #R0 "\n\t"                                               \
    "vpsubd 32(%[ns]), %%ymm" #R1 ", %%ymm" #R1 "\n\t"
// pre: the prepared panel (kp / 4 steps of 64 bytes of sign masks and of |w|); x0-x2: the three
// tokens' codes; mixed: dq_avx2_widen. acc out: the three tokens' sums (rows 0-7, 8-15), and with
// mixed, token 2's as SA in acc[4], acc[5] and SB in acc[6], acc[7], for uk3_mixed_fix.
static void ukernel3_pre_asm(const struct pre_panel *pre, const int8_t *x0, const int8_t *x1, const int8_t *x2, int kp,
                             const int8_t *pf, int npf, int mixed, __m256i acc[8]) {
    const int8_t *mp = pre->neg, *ap = pre->abs;
    long g = 0;
    const long ng4 = kp / 16, npfl = npf;  // kp is a multiple of 64: whole groups of four steps
#define UK3_OPERANDS                                                                                \
    : [mp] "+r"(mp), [ap] "+r"(ap), [x0] "+r"(x0), [x1] "+r"(x1), [x2] "+r"(x2), [g] "+r"(g), [pf] "+r"(pf)          \
    : [ng4] "r"(ng4), [npf] "r"(npfl), [acc] "r"(acc), [ns] "r"(pre->negsum)                                          \
    : "memory", "cc", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10",         \
      "xmm11", "xmm12", "xmm13", "xmm14", "xmm15"
    if (!mixed)
        __asm__ volatile("vpcmpeqw %%ymm0, %%ymm0, %%ymm0\n\t"
                         "vpsrlw $15, %%ymm0, %%ymm0\n\t" ASM_ZERO(1) ASM_ZERO(2) ASM_ZERO(3) ASM_ZERO(4) ASM_ZERO(5)
                             ASM_ZERO(6) UK3_LOOP(UK3_GROUP) UK3_SUB_NEGSUM(1, 2) UK3_SUB_NEGSUM(3, 4)
                                 UK3_SUB_NEGSUM(5, 6) ASM_STORE(1, 0) ASM_STORE(2, 32) ASM_STORE(3, 64)
                                     ASM_STORE(4, 96) ASM_STORE(5, 128) ASM_STORE(6, 160) UK3_OPERANDS);
    else
        __asm__ volatile("vpcmpeqw %%ymm0, %%ymm0, %%ymm0\n\t"
                         "vpsrlw $15, %%ymm0, %%ymm0\n\t"
                         "vpcmpeqw %%ymm12, %%ymm12, %%ymm12\n\t"
                         "vpslld $31, %%ymm12, %%ymm12\n\t"
                         "vpsrld $16, %%ymm12, %%ymm12\n\t" ASM_ZERO(1) ASM_ZERO(2) ASM_ZERO(3) ASM_ZERO(4)
                             ASM_ZERO(5) ASM_ZERO(6) ASM_ZERO(7) ASM_ZERO(8) UK3_LOOP(UK3_GROUP_MIXED)
                                 UK3_SUB_NEGSUM(1, 2) UK3_SUB_NEGSUM(3, 4) ASM_STORE(1, 0) ASM_STORE(2, 32)
                                     ASM_STORE(3, 64) ASM_STORE(4, 96) ASM_STORE(5, 128) ASM_STORE(6, 160)
                                         ASM_STORE(7, 192) ASM_STORE(8, 224) UK3_OPERANDS);
#undef UK3_OPERANDS
}
#undef UK3_SUB_NEGSUM
#undef UK3_LOOP
#undef UK3_GROUP_MIXED
#undef UK3_GROUP
#undef UK3_GROUP_OF
#undef UK3_LOAD
#undef UK3_SHIFT
#undef UK3_STEP

// Token 2's sums of the mixed form (SA, SB, over kp / 4 steps) into the exact dot products less
// the rows' sums of min(w, 0), as the other tokens leave the asm: SA - 65535 SB - 32768 S -
// negsum, in wrapping int32 arithmetic.
static inline void uk3_mixed_fix(__m256i acc[8], const struct pre_panel *pre, int kp) {
    const __m256i s = _mm256_set1_epi32((int32_t)(32768u * (uint32_t)(kp / 4)));
    for (int h = 0; h < 2; h++) {
        const __m256i sa = acc[4 + h], sb = acc[6 + h];
        __m256i v = _mm256_add_epi32(_mm256_sub_epi32(sa, _mm256_slli_epi32(sb, 16)), sb);
        v = _mm256_sub_epi32(v, s);
        acc[4 + h] = _mm256_sub_epi32(v, _mm256_load_si256((const void *)(pre->negsum + 8 * h)));
    }
}
#define DQ_UK3_ASM 1
#endif

// Decode moves the sign onto the weights instead, since the activations are the operand that
// does not change from row to row: the unsigned operand is |c| and the signed one w ^ mc, mc =
// 0xff where c < 0. For c < 0, |c| * (w ^ 0xff) = |c| * (-w - 1) = c * w - |c|, so the sum over k
// is the exact dot product minus the token's sum of |c| over its negative codes, a constant of
// the call (neg_code_sum) added back once per row. |c| <= 127 and w ^ mc is in [-128, 127], so a
// pair is in [-32512, 32258]: exact. Per 32 weight bytes: vpxor (any pipe), vpmaddubsw,
// vpmaddwd, vpaddd, where w's |w| and vpsignb took two more operations; |c| and mc cost two per
// 4-input group, shared by every row of the step.
ALWAYS_INLINE __m256i dot4_xs(__m256i acc, __m256i w, __m256i xa, __m256i xm, __m256i ones) {
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(xa, _mm256_xor_si256(w, xm)), ones));
}

// The sum of |c| over the negative codes of x[0, kp) (kp a multiple of 4), the correction dot4_xs
// leaves out.
static int32_t neg_code_sum(const int8_t *x, int kp) {
    const __m256i z = _mm256_setzero_si256();
    __m256i s = z;
    int j = 0;
    for (; j + 32 <= kp; j += 32)  // |min(c, 0)| <= 127 per byte; vpsadbw sums 8 bytes into 64 bits
        s = _mm256_add_epi64(
            s, _mm256_sad_epu8(_mm256_abs_epi8(_mm256_min_epi8(_mm256_loadu_si256((const void *)(x + j)), z)), z));
    int64_t t[4];
    _mm256_storeu_si256((void *)t, s);
    int32_t r = (int32_t)(t[0] + t[1] + t[2] + t[3]);
    for (; j < kp; j++) r += x[j] < 0 ? -x[j] : 0;
    return r;
}

// GEMV (one token), one panel: four 4-input groups (4 cache lines) per step, each into its own
// accumulators, and the weights dq_gemv_prefetch_bytes ahead prefetched (kernels.h). ncs: the
// token's neg_code_sum.
static void gemv_panel(float *y, const int8_t *x, int kp, const int8_t *wp, const dq_wpack *p, int row, int n,
                       float sx, int32_t off, int32_t ncs) {
    const __m256i ones = _mm256_set1_epi16(1), z = _mm256_setzero_si256();
    __m256i a[4][2];
    for (int g = 0; g < 4; g++) a[g][0] = a[g][1] = z;
    for (int j = 0; j < kp; j += 16) {
        const int8_t *w = wp + (size_t)j * 16;
        dq_gemv_prefetch(w, 4);
#pragma GCC unroll 4
        for (int g = 0; g < 4; g++) {
            const __m256i xb = _mm256_set1_epi32(load4(x + j + 4 * g));
            const __m256i xa = _mm256_abs_epi8(xb), xm = _mm256_cmpgt_epi8(z, xb);
            a[g][0] = dot4_xs(a[g][0], _mm256_loadu_si256((const void *)(w + 64 * g)), xa, xm, ones);
            a[g][1] = dot4_xs(a[g][1], _mm256_loadu_si256((const void *)(w + 64 * g + 32)), xa, xm, ones);
        }
    }
    const __m256i c = _mm256_set1_epi32(ncs);
    for (int h = 0; h < 2; h++) {
        const __m256i sum = _mm256_add_epi32(_mm256_add_epi32(a[0][h], a[1][h]), _mm256_add_epi32(a[2][h], a[3][h]));
        store_rows(y, _mm256_add_epi32(sum, c), row + 8 * h, n, p, sx, off);
    }
}

#if !defined(DQ_SIMDE_HEADER) && defined(__x86_64__)
// The step loop of gemv_panels4 (gemv4_xs, its C form below) in assembly: the same operations in
// the same order per accumulator, so the same int32 sums (the kernel tests compare it with scalar;
// the SIMDe build runs the C loop). gcc 12 kept the C loop's eight accumulators, |c|, mc and the
// 1s in registers only by spilling two accumulators to the stack and copying six more every step.
// Zen 2 (family 23 model 49), one thread, scripts/ab_decode.c against the C loop of vpabsb +
// vpsignb (dot4) it replaced: 1.2 % (stories110M shape) and 1.8 % (TinyLlama) less time per token;
// the four-stream read it is, not the arithmetic, sets that pace there. Each stream is also
// prefetched dq_gemv4_prefetch_bytes ahead: 256 on AMD family 23 (Zen 2, ab_decode against none,
// one thread: 1.020x (quartiles 1.017-1.022) stories110M shape, 1.022x TinyLlama, two threads
// 1.003x; 128 bytes 1.006x, 192 1.014x, 384 1.018x, 512 1.007x, and 1024 or 2048 0.85x), 2048 on
// Intel (Xeon model 207: stories110M 1.198x / 1.144x at one / two threads, TinyLlama 1.170x at
// one; 256 there 1.070x / 1.050x), none on later AMD (Zen 3 and 4 measured). Registers: ymm0 the
// int16 1s, ymm1-8 the accumulators (panel q, rows 0-7 / 8-15 in ymm(1+2q), ymm(2+2q)), ymm12
// zero, ymm13 mc, ymm14 |c|, ymm15 the product.
#define GV4_BLOCK(O, R)                                                                             \
    "vpxor " O ", %%ymm13, %%ymm15\n\t"                                                            \
    "vpmaddubsw %%ymm15, %%ymm14, %%ymm15\n\t"                                                      \
    "vpmaddwd %%ymm0, %%ymm15, %%ymm15\n\t"                                                         \
    "vpaddd %%ymm15, %%ymm" #R ", %%ymm" #R "\n\t"
#define GV4_PREFETCH                                                                                \
    "prefetcht0 (%[w],%[pfd])\n\t"                                                                  \
    "lea (%[w],%[d1]), %[t]\n\t"                                                                    \
    "prefetcht0 (%[t],%[pfd])\n\t"                                                                  \
    "lea (%[w],%[d2]), %[t]\n\t"                                                                    \
    "prefetcht0 (%[t],%[pfd])\n\t"                                                                  \
    "lea (%[w],%[d3]), %[t]\n\t"                                                                    \
    "prefetcht0 (%[t],%[pfd])\n\t"
#define GV4_ASM(PREFETCH)                                                                           \
    "vpcmpeqw %%ymm0, %%ymm0, %%ymm0\n\t"                                                           \
    "vpsrlw $15, %%ymm0, %%ymm0\n\t" ASM_ZERO(1) ASM_ZERO(2) ASM_ZERO(3) ASM_ZERO(4) ASM_ZERO(5)    \
        ASM_ZERO(6) ASM_ZERO(7) ASM_ZERO(8) ASM_ZERO(12)                                            \
    ".p2align 5\n"                                                                                  \
    "1:\n\t" PREFETCH                                                                               \
    "vpbroadcastd (%[x]), %%ymm13\n\t"                                                              \
    "vpabsb %%ymm13, %%ymm14\n\t"                                                                   \
    "vpcmpgtb %%ymm13, %%ymm12, %%ymm13\n\t"                                                        \
    GV4_BLOCK("(%[w])", 1) GV4_BLOCK("32(%[w])", 2)                                                 \
    GV4_BLOCK("(%[w],%[d1])", 3) GV4_BLOCK("32(%[w],%[d1])", 4)                                     \
    GV4_BLOCK("(%[w],%[d2])", 5) GV4_BLOCK("32(%[w],%[d2])", 6)                                     \
    GV4_BLOCK("(%[w],%[d3])", 7) GV4_BLOCK("32(%[w],%[d3])", 8)                                     \
    "add $64, %[w]\n\t"                                                                             \
    "add $4, %[x]\n\t"                                                                              \
    "dec %[n]\n\t"                                                                                  \
    "jnz 1b\n\t" ASM_STORE(1, 0) ASM_STORE(2, 32) ASM_STORE(3, 64) ASM_STORE(4, 96) ASM_STORE(5, 128) \
        ASM_STORE(6, 160) ASM_STORE(7, 192) ASM_STORE(8, 224)
// pfd: dq_gemv4_prefetch_bytes, 0 for none.
static void gemv4_xs_asm(const int8_t *w0, long d1, long d2, long d3, const int8_t *x, long nsteps, __m256i acc[4][2]) {
    const long pfd = dq_gemv4_prefetch_bytes;
    long t;
#define GV4_OPERANDS                                                                                \
    : [w] "+r"(w0), [x] "+r"(x), [n] "+r"(nsteps), [t] "=&r"(t)                                     \
    : [d1] "r"(d1), [d2] "r"(d2), [d3] "r"(d3), [acc] "r"(acc), [pfd] "r"(pfd)                       \
    : "memory", "cc", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm12", "xmm13", \
      "xmm14", "xmm15"
    if (pfd)
        __asm__ volatile(GV4_ASM(GV4_PREFETCH) GV4_OPERANDS);
    else
        __asm__ volatile(GV4_ASM("") GV4_OPERANDS);
#undef GV4_OPERANDS
}
#undef GV4_ASM
#undef ASM_STORE
#undef ASM_ZERO
#undef GV4_PREFETCH
#undef GV4_BLOCK
#define gemv4_xs gemv4_xs_asm
#else
// The step loop of gemv_panels4: panels at w0, w0 + d1, w0 + d2, w0 + d3, nsteps (>= 1) 4-input
// groups, acc[q][h] the sums of panel q's rows 8h..8h+7 without the neg_code_sum correction.
static void gemv4_xs(const int8_t *w0, long d1, long d2, long d3, const int8_t *x, long nsteps,
                     __m256i acc[4][2]) {
    const __m256i ones = _mm256_set1_epi16(1), z = _mm256_setzero_si256();
    const long d[4] = {0, d1, d2, d3};
#pragma GCC unroll 4
    for (int q = 0; q < 4; q++) acc[q][0] = acc[q][1] = z;
    for (long s = 0; s < nsteps; s++) {
        const __m256i xb = _mm256_set1_epi32(load4(x + 4 * s));
        const __m256i xa = _mm256_abs_epi8(xb), xm = _mm256_cmpgt_epi8(z, xb);
#pragma GCC unroll 4
        for (int q = 0; q < 4; q++) {
            const int8_t *w = w0 + d[q] + s * 64;
            acc[q][0] = dot4_xs(acc[q][0], _mm256_loadu_si256((const void *)w), xa, xm, ones);
            acc[q][1] = dot4_xs(acc[q][1], _mm256_loadu_si256((const void *)(w + 32)), xa, xm, ones);
        }
    }
}
#endif

// GEMV over four panels side by side (run j of the tile at i0, kernels.h: dq_gemv_runs):
// four weight streams, one 4-input group of each per step (the activations' broadcast shared), no
// software prefetch but on AMD family 23 (gemv4_xs_asm): the hardware prefetchers follow the
// streams (kernels.h: dq_gemv_streams).
// The int32 sums go to y as they are, and epilogue_rows applies the scales once all four runs
// are done: reading the rows' sums and scales panel by panel beside the weights (eight more small
// streams, a line each per panel) slowed the weight streams. Zen 3 (family 25 model 1), one
// thread, a harness alternating both forms per repetition, each against a four-stream read of the
// same panels right after it: 32000 x 768 matrices 0.84-0.87 -> 0.90-0.91 of the read, 2048 x 768
// 0.85-0.88 -> 0.88-0.93; prefetching those lines two or four panels ahead did not help.
ALWAYS_INLINE void gemv_panels4(float *y, const int8_t *x, int kp, int i0, int run, int j, const dq_wpack *p,
                                int32_t ncs) {
    int rows[4];
    dq_gemv_run_rows(i0, run, j, rows);
    __m256i a[4][2];
    gemv4_xs(p->panels + (size_t)rows[0] * kp, (long)(rows[1] - rows[0]) * kp, (long)(rows[2] - rows[0]) * kp,
             (long)(rows[3] - rows[0]) * kp, x, kp / 4, a);
    const __m256i c = _mm256_set1_epi32(ncs);
#pragma GCC unroll 4
    for (int q = 0; q < 4; q++) {  // every row of a run is under n (dq_gemv_runs)
        _mm256_storeu_si256((void *)(y + rows[q]), _mm256_add_epi32(a[q][0], c));
        _mm256_storeu_si256((void *)(y + rows[q] + 8), _mm256_add_epi32(a[q][1], c));
    }
}

static void gemm_q8_avx2(float *y, int ldy, const dq_qact *qa, int t0, int t1, const dq_qweight *w, int i0, int i1) {
    const dq_wpack *p = w->packed;
    const int kp = p->kp, n = i1;
    DQ_ASSERT(qa->bias == 0 && qa->kp == kp && i0 % 16 == 0);
    if (t1 - t0 == 1) {
        const int run = dq_gemv_runs(i0, i1, kp);  // four streams: the tile's panels in four runs
        const int32_t ncs = neg_code_sum(qa->q + (size_t)t0 * kp, kp);
        for (int j = 0; j < run; j++)
            gemv_panels4(y + (size_t)t0 * ldy, qa->q + (size_t)t0 * kp, kp, i0, run, j, p, ncs);
        epilogue_rows(y + (size_t)t0 * ldy, i0, i0 + 64 * run, p, qa->scale[t0], qa->off[t0]);
        for (int i = i0 + 64 * run; i < i1; i += 16)
            gemv_panel(y + (size_t)t0 * ldy, qa->q + (size_t)t0 * kp, kp, p->panels + (size_t)i * kp, p, i, n,
                       qa->scale[t0], qa->off[t0], ncs);
        return;
    }
    // The current panel's |w| and sign masks, made once for all token blocks: vpabsb and vpsignb
    // share the multiplies' pipes (two on Zen 3, ports 0 and 1 on Intel cores), vpxor does not.
    struct pre_panel pp;
    const struct pre_panel *pre = t1 - t0 > 3 && pre_alloc(&pp, kp) == 0 ? &pp : NULL;
    for (int i = i0; i < i1; i += 16) {
        const int8_t *wp = p->panels + (size_t)i * kp;
        if (pre) prepare_panel(&pp, wp, kp);
        // the next panel (16 kp contiguous bytes) into L2, a slice per token block (kernels.h)
        const int nblk = (t1 - t0 + 2) / 3, lines = i + 32 <= p->np ? kp / 4 : 0;
        for (int t = t0; t < t1; t += 3) {
            int npf_b;
            const int8_t *pf = dq_prefetch_slice(wp, (size_t)16 * kp, lines, nblk, (t - t0) / 3, &npf_b);
            const int8_t *xt = qa->q + (size_t)t * kp;
            float *yt = y + (size_t)t * ldy;
            const float *sx = qa->scale + t;
            const int32_t *off = qa->off + t;
            switch (t1 - t < 3 ? t1 - t : 3) {
            case 1: ukernel(1, yt, ldy, xt, kp, wp, pre, p, i, n, sx, off, pf, npf_b); break;
            case 2: ukernel(2, yt, ldy, xt, kp, wp, pre, p, i, n, sx, off, pf, npf_b); break;
            default:
#ifdef DQ_UK3_ASM
                if (pre) {
                    __m256i acc[8];
                    ukernel3_pre_asm(pre, xt, xt + kp, xt + 2 * (size_t)kp, kp, pf, npf_b, dq_avx2_widen, acc);
                    if (dq_avx2_widen) uk3_mixed_fix(acc, pre, kp);
                    for (int r = 0; r < 3; r++) {
                        store_rows(yt + (size_t)r * ldy, acc[2 * r], i, n, p, sx[r], off[r]);
                        store_rows(yt + (size_t)r * ldy, acc[2 * r + 1], i + 8, n, p, sx[r], off[r]);
                    }
                    break;
                }
#endif
                ukernel(3, yt, ldy, xt, kp, wp, pre, p, i, n, sx, off, pf, npf_b);
                break;
            }
        }
    }
    if (pre) free(pp.abs);
}

// ---------------------------------------------------------------- FP32 GEMM
// One 8-lane accumulator per output over k (tail via maskload), reduced in a fixed order.
static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

ALWAYS_INLINE void ukernel_f32(const int MR, const int NR, float *y, int ldy, const float *x, const float *w, int k) {
    __m256 acc[4][3];
#pragma GCC unroll 4
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 3
        for (int c = 0; c < NR; c++) acc[r][c] = _mm256_setzero_ps();
    int j = 0;
    for (; j + 8 <= k; j += 8) {
        __m256 wv[3];
#pragma GCC unroll 3
        for (int c = 0; c < NR; c++) wv[c] = _mm256_loadu_ps(w + (size_t)c * k + j);
#pragma GCC unroll 4
        for (int r = 0; r < MR; r++) {
            __m256 xv = _mm256_loadu_ps(x + (size_t)r * k + j);
#pragma GCC unroll 3
            for (int c = 0; c < NR; c++) acc[r][c] = _mm256_fmadd_ps(xv, wv[c], acc[r][c]);
        }
    }
    if (j < k) {
        const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        __m256i mk = _mm256_cmpgt_epi32(_mm256_set1_epi32(k - j), lane);
        __m256 wv[3];
#pragma GCC unroll 3
        for (int c = 0; c < NR; c++) wv[c] = _mm256_maskload_ps(w + (size_t)c * k + j, mk);
#pragma GCC unroll 4
        for (int r = 0; r < MR; r++) {
            __m256 xv = _mm256_maskload_ps(x + (size_t)r * k + j, mk);
#pragma GCC unroll 3
            for (int c = 0; c < NR; c++) acc[r][c] = _mm256_fmadd_ps(xv, wv[c], acc[r][c]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 3
        for (int c = 0; c < NR; c++) y[(size_t)r * ldy + c] = hsum8(acc[r][c]);
}

#define UKF(MR, NR) ukernel_f32(MR, NR, y + (size_t)t * n + i, n, x + (size_t)t * k, w + (size_t)i * k, k)
#define UKF_ROW(MR)                \
    switch (nr) {                  \
    case 1: UKF(MR, 1); break;     \
    case 2: UKF(MR, 2); break;     \
    default: UKF(MR, 3); break;    \
    }

static void gemm_f32_avx2(float *y, const float *x, int t0, int t1, const float *w, int n, int k, int i0, int i1) {
    for (int i = i0; i < i1; i += 3) {
        int nr = i1 - i < 3 ? i1 - i : 3;
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

// ---------------------------------------------------------------- roofline loop
// The exact int8 step without the sign handling: vpmaddubsw + vpmaddwd + vpaddd, 8 chains; with
// dq_avx2_widen the GEMM's mix instead, one product in three widened by the shift form (vpxor,
// vpaddd, vpsrad, vpaddd: "Widening off the multiply pipe"), 6 chains. The unsigned operand is a
// volatile load in every step: with a loop-invariant operand the compiler hoisted both multiplies
// out of the loop (it measured stack adds, not the dot product).
static int64_t int8_peak_avx2(int64_t iters, int32_t *sink) {
    __m256i a[8], b[8];
    for (int r = 0; r < 8; r++) a[r] = b[r] = _mm256_set1_epi32(r);
    volatile __m256i src[8];
    for (int r = 0; r < 8; r++) src[r] = _mm256_set1_epi32((*sink + r) | 0x01010101);
    const __m256i s = _mm256_set1_epi32(0x02fe03fd), ones = _mm256_set1_epi16(1), bias = _mm256_set1_epi32(0x8000);
    const int mixed = dq_avx2_widen, chains = mixed ? 6 : 8;
    if (mixed)
        for (int64_t i = 0; i < iters; i++)
#pragma GCC unroll 6
            for (int r = 0; r < 6; r++) {
                const __m256i p = _mm256_maddubs_epi16(src[r], s);
                if (r % 3 != 2) {
                    a[r] = _mm256_add_epi32(a[r], _mm256_madd_epi16(p, ones));
                } else {
                    const __m256i v = _mm256_xor_si256(p, bias);
                    a[r] = _mm256_add_epi32(a[r], v);
                    b[r] = _mm256_add_epi32(b[r], _mm256_srai_epi32(v, 16));
                }
            }
    else
        for (int64_t i = 0; i < iters; i++)
#pragma GCC unroll 8
            for (int r = 0; r < 8; r++) a[r] = _mm256_add_epi32(a[r], _mm256_madd_epi16(_mm256_maddubs_epi16(src[r], s), ones));
    __m256i t = _mm256_setzero_si256();
    for (int r = 0; r < 8; r++) t = _mm256_add_epi32(t, _mm256_add_epi32(a[r], b[r]));
    int32_t v[8];
    _mm256_storeu_si256((void *)v, t);
    *sink = (int32_t)((uint32_t)v[0] + (uint32_t)v[7]);  // the lanes wrapped long ago: unsigned sum
    return iters * chains * 32 * 2;
}

static const dq_kernels table = {
    .isa = DQ_ISA_AVX2,
    .name = "gemm_s8s8_3x16c4__avx2, gemm_f32_4x3__avx2",
    .use_panels = 1,
    .act_bias = 0,
    .absmax = absmax_avx2,
    .quant = quant_avx2,
    .gemm_q8 = gemm_q8_avx2,
    .gemm_f32 = gemm_f32_avx2,
    .int8_peak = int8_peak_avx2,
    DQ_VEC_F32_MEMBERS,
};
const dq_kernels *dq_kernels_avx2(void) { return &table; }
