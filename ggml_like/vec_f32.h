// ggml_like/vec_f32.h: the FP32 kernels around the matmuls (attention over the KV cache, SwiGLU,
// RMSNorm, e^x), written once with GCC/Clang vector extensions and included by every ISA file
// (scalar.c, avx2.c, avx512vnni.c, neon.c), each compiling it with its own flags:
//   attn_kv__vec      up to 8 queries of one head against the cached positions (FP32, FP16 or
//                     q8_0 cache): scores, softmax, mix
//   to_f16__vec, to_f32__vec, to_q8__vec, q8_to_f32__vec   the FP16 and q8_0 caches' stores and
//                     prefill's widening
//   swiglu_f32__vec   h = silu(g) * u
//   rmsnorm_f32__vec  x += r; o = w * x / rms(x)
//   rope_f32__vec     rotary position embedding of one position's heads
//   kblock_f32__vec   16 positions' keys into one FP32 key block (transposed; the AMX table has
//                     its own, amx.c)
// Every ISA therefore runs the same lane-wise IEEE operations in the same order (-ffp-contract=off
// in ggml_like.mk: the compiler fuses nothing; multiply-adds are explicit FMAs, exactly rounded by
// definition on every ISA), so the results are bit-identical across ISAs and the scalar table's
// copy is the reference the others are tested against; wider registers only do more lanes per
// instruction.
// All arithmetic is on the ISA's own vector, dq_vnf of DQ_VEC_BYTES (one zmm, ymm, xmm or NEON q
// register). Where the arithmetic couples lanes (the partial sums and maxima kept per p mod 16,
// then folded in one fixed tree), 16 lanes are VN_PER16 native vectors side by side, vn16_*
// below, each holding the same lanes whatever the width, so the folds add and compare the same
// pairs on every ISA. (The 16 lanes used to be one 64-byte generic vector: where that is not
// one register, GCC 12 split and rejoined it lane by lane, through the stack. On a Zen 3, AVX2,
// one thread, medians: SwiGLU 6.8 -> 0.95 ns per value, RMSNorm 1.9 -> 0.25, attention (hd 64)
// of 4 queries over up to 128 positions 3.1x faster, of one query over 512 positions 1.85x.)
// Helpers taking or returning vectors are always inlined: no vector crosses a call boundary.
#ifndef DQ_VEC_F32_H
#define DQ_VEC_F32_H

#include <math.h>
#include <stdint.h>
#include <string.h>
#if !defined(DQ_SIMDE_HEADER) && (defined(__AVX512F__) || defined(__FMA__))
#include <immintrin.h>
#elif defined(__aarch64__)
#include <arm_neon.h>
#endif

// Vectors never cross a call (all helpers are always inlined, the kernels take pointers), so
// the ABI of passing vectors wider than the ISA's registers, which -Wpsabi warns about, never
// applies. GCC reports it at the end of the translation unit: the including ISA file keeps it off.
#pragma GCC diagnostic ignored "-Wpsabi"

#define VN_INLINE static inline __attribute__((always_inline))
#define DQ_ATTN_MAXQ 4  // queries per pass (register blocking); a call takes up to DQ_ATTN_NQ (ops.h)

#ifndef DQ_ATTN_WIDE
#define DQ_ATTN_WIDE 0
#endif
#ifndef DQ_VEC_BYTES
#define DQ_VEC_BYTES 16
#endif
// e^x chains interleaved in SwiGLU, in 16-lane vectors (so DQ_EXP_ILP * VN_PER16 native chains).
#ifndef DQ_EXP_ILP
#define DQ_EXP_ILP 1
#endif
// x, kept in a register from here on: gcc otherwise folds a load that several FMAs share into each
// of them (one load per use), and the attention's value pass then ran out of load ports first.
#if defined(__x86_64__) && !defined(DQ_SIMDE_HEADER) && \
    (DQ_VEC_BYTES == 16 || (DQ_VEC_BYTES == 32 && defined(__AVX__)) || (DQ_VEC_BYTES == 64 && defined(__AVX512F__)))
#define VN_IN_REG(x) __asm__("" : "+v"(x))
#else
#define VN_IN_REG(x) (void)(x)
#endif
#define VN_LANES (DQ_VEC_BYTES / 4)
#define VN_PER16 (16 / VN_LANES)  // native vectors per 16 floats
typedef float dq_vnf __attribute__((vector_size(DQ_VEC_BYTES)));
typedef int32_t dq_vni __attribute__((vector_size(DQ_VEC_BYTES)));
// The narrower steps of the horizontal folds (vn16_hsum, vn16_hmax).
typedef float dq_v4f __attribute__((vector_size(16)));
typedef int32_t dq_v4i __attribute__((vector_size(16)));
typedef float dq_v8f __attribute__((vector_size(32)));
typedef int32_t dq_v8i __attribute__((vector_size(32)));
// Shuffle index lists of a native vector: lane 0 in every lane, each lane's pair partner (j ^ 1),
// the lane numbers.
#if VN_LANES == 16
#define VN_SPLAT0 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
#define VN_PAIRSWAP 1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14
#define VN_IOTA 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15
#elif VN_LANES == 8
#define VN_SPLAT0 0, 0, 0, 0, 0, 0, 0, 0
#define VN_PAIRSWAP 1, 0, 3, 2, 5, 4, 7, 6
#define VN_IOTA 0, 1, 2, 3, 4, 5, 6, 7
#else
#define VN_SPLAT0 0, 0, 0, 0
#define VN_PAIRSWAP 1, 0, 3, 2
#define VN_IOTA 0, 1, 2, 3
#endif
// Each step for the NV vectors side by side (constants after inlining: fully unrolled).
#define VN_EACH(NV) _Pragma("GCC unroll 16") for (int j = 0; j < (NV); j++)
#define VN_PARTS(k) _Pragma("GCC unroll 4") for (int k = 0; k < VN_PER16; k++)

VN_INLINE dq_vnf vn_load(const float *p) {
    dq_vnf v;
    memcpy(&v, p, sizeof v);
    return v;
}
VN_INLINE void vn_store(float *p, dq_vnf v) { memcpy(p, &v, sizeof v); }
// VN_LANES binary16 values at p, widened to FP32 (exact: the instruction where the file is
// compiled for one, else the software conversion of ops.h, which gives the same bits).
VN_INLINE dq_vnf vn_load_h(const uint16_t *p) {
#if DQ_VEC_BYTES == 64 && defined(__AVX512F__) && !defined(DQ_SIMDE_HEADER)
    __m256i h;
    memcpy(&h, p, sizeof h);
    return (dq_vnf)_mm512_cvtph_ps(h);
#elif DQ_VEC_BYTES == 32 && defined(__F16C__) && !defined(DQ_SIMDE_HEADER)
    __m128i h;
    memcpy(&h, p, sizeof h);
    return (dq_vnf)_mm256_cvtph_ps(h);
#elif DQ_VEC_BYTES == 16 && defined(__aarch64__) && !defined(DQ_SIMDE_HEADER)
    return (dq_vnf)vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p)));
#else
    dq_vnf r;
    for (int i = 0; i < VN_LANES; i++) r[i] = dq_f16_to_f32(p[i]);
    return r;
#endif
}
// The VN_LANES values of v narrowed to binary16 at p: round to nearest even, NaNs quieted with
// their top payload bits, as dq_f32_to_f16 (the instruction where the file is compiled for one).
VN_INLINE void vn_store_h(uint16_t *p, dq_vnf v) {
#if DQ_VEC_BYTES == 64 && defined(__AVX512F__) && !defined(DQ_SIMDE_HEADER)
    const __m256i h = _mm512_cvtps_ph((__m512)v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    memcpy(p, &h, sizeof h);
#elif DQ_VEC_BYTES == 32 && defined(__F16C__) && !defined(DQ_SIMDE_HEADER)
    const __m128i h = _mm256_cvtps_ph((__m256)v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    memcpy(p, &h, sizeof h);
#elif DQ_VEC_BYTES == 16 && defined(__aarch64__) && !defined(DQ_SIMDE_HEADER)
    vst1_u16(p, vreinterpret_u16_f16(vcvt_f16_f32((float32x4_t)v)));
#else
    for (int i = 0; i < VN_LANES; i++) p[i] = dq_f32_to_f16(v[i]);
#endif
}
// a in every lane: a broadcast (a lane loop, `v[i] = a`, became one vinsertps per lane in GCC
// 12's AVX2 code, in the attention kernel's innermost loops; `(dq_vnf){0} + a` would be an
// addition, one more FP op).
VN_INLINE dq_vnf vn_set1(float a) {
    const dq_vnf v = {a};
    return __builtin_shufflevector(v, v, VN_SPLAT0);
}
// m ? a : b lane by lane (m from a comparison: all ones or all zeros).
VN_INLINE dq_vnf vn_select(dq_vni m, dq_vnf a, dq_vnf b) { return (dq_vnf)((m & (dq_vni)a) | (~m & (dq_vni)b)); }
// h where h > m, else m: the step of every running maximum here (a NaN h is never taken); for
// the native vector and for the narrower steps of vn16_hmax's fold.
#define VN_MAX_FN(name, F, I) \
    VN_INLINE F name(F m, F h) { \
        const I k = h > m;       \
        return (F)((k & (I)h) | (~k & (I)m)); \
    }
VN_MAX_FN(vn_max, dq_vnf, dq_vni)
VN_MAX_FN(v4_max, dq_v4f, dq_v4i)
VN_MAX_FN(v8_max, dq_v8f, dq_v8i)
#undef VN_MAX_FN
// |v| (the sign bit cleared) folded into the running maximum a, lane by lane (NaNs ignored).
VN_INLINE dq_vnf vn_absmax_acc(dq_vnf a, dq_vnf v) { return vn_max(a, (dq_vnf)((dq_vni)v & 0x7fffffff)); }
// VN_LANES q8_0 codes at c widened to FP32 and multiplied by the scales s, lane by lane (each
// code * scale rounded once, as the scalar (float)code * scale).
// (The widening by instruction where the file is compiled for one: GCC 12 turns a generic
// __builtin_convertvector from bytes into one insert per lane.)
VN_INLINE dq_vnf vn_load_q8(const int8_t *c, dq_vnf s) {
#if DQ_VEC_BYTES == 64 && defined(__AVX512F__) && !defined(DQ_SIMDE_HEADER)
    __m128i b;
    memcpy(&b, c, sizeof b);
    return (dq_vnf)_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(b)) * s;
#elif DQ_VEC_BYTES == 32 && defined(__AVX2__) && !defined(DQ_SIMDE_HEADER)
    long long b;
    memcpy(&b, c, sizeof b);
    return (dq_vnf)_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_cvtsi64_si128(b))) * s;
#elif DQ_VEC_BYTES == 16 && defined(__aarch64__) && !defined(DQ_SIMDE_HEADER)
    int32_t b;
    memcpy(&b, c, sizeof b);
    const int16x8_t w = vmovl_s8(vreinterpret_s8_s32(vdup_n_s32(b)));
    return (dq_vnf)vcvtq_f32_s32(vmovl_s16(vget_low_s16(w))) * s;
#else
    dq_vnf r;
    for (int i = 0; i < VN_LANES; i++) r[i] = (float)c[i];
    return r * s;
#endif
}
// Cache types as the kernels' compile-time constants: T = 0 FP32, 1 FP16, 2 q8_0 (dq_kv_type).
// Dimension d of the VN_LANES keys from lane l (a multiple of VN_LANES) of key block b (ops.h).
VN_INLINE dq_vnf vn_load_key(const void *kt, const int T, int b, int d, int l, int hd) {
    if (T == DQ_KV_Q8) {
        const int8_t *k = (const int8_t *)kt;
        const float *sc = (const float *)(k + dq_q8_key_scale(16 * b + l, hd)) + (size_t)(d / DQ_Q8_BLOCK) * 16;
        return vn_load_q8(k + dq_q8_key_code(16 * b + l, hd) + (size_t)d * 16, vn_load(sc));
    }
    const size_t i = ((size_t)b * hd + d) * 16 + l;
    return T == DQ_KV_F16 ? vn_load_h((const uint16_t *)kt + i) : vn_load((const float *)kt + i);
}
// Dimensions d .. d + VN_LANES - 1 of value row p (rows ldv elements apart: bytes for q8_0;
// d a multiple of VN_LANES, so the run shares one q8_0 scale), and one dimension alone.
VN_INLINE float q8_row_scale(const int8_t *row, int d, int hd) {
    float s;
    memcpy(&s, row + dq_q8_codes(hd) + 4 * (size_t)(d / DQ_Q8_BLOCK), sizeof s);
    return s;
}
VN_INLINE dq_vnf vn_load_val(const void *v, const int T, int p, int ldv, int d, int hd) {
    if (T == DQ_KV_Q8) {
        const int8_t *row = (const int8_t *)v + (size_t)p * ldv;
        return vn_load_q8(row + d, vn_set1(q8_row_scale(row, d, hd)));
    }
    const size_t i = (size_t)p * ldv + d;
    return T == DQ_KV_F16 ? vn_load_h((const uint16_t *)v + i) : vn_load((const float *)v + i);
}
VN_INLINE float val_at(const void *v, const int T, int p, int ldv, int d, int hd) {
    if (T == DQ_KV_Q8) {
        const int8_t *row = (const int8_t *)v + (size_t)p * ldv;
        return (float)row[d] * q8_row_scale(row, d, hd);
    }
    const size_t i = (size_t)p * ldv + d;
    return T == DQ_KV_F16 ? dq_f16_to_f32(((const uint16_t *)v)[i]) : ((const float *)v)[i];
}
// a * b + c with one rounding, lane by lane: IEEE fused multiply-add has one exact definition,
// so every ISA gives the same bits. The ISA's own instruction where the file is compiled for it
// (GCC would find it from the lane loop, clang 14 does not), else fmaf per lane (exact, slow:
// the scalar table and the SIMDe test builds).
VN_INLINE dq_vnf vn_fma(dq_vnf a, dq_vnf b, dq_vnf c) {
#if DQ_VEC_BYTES == 64 && defined(__AVX512F__) && !defined(DQ_SIMDE_HEADER)
    return (dq_vnf)_mm512_fmadd_ps((__m512)a, (__m512)b, (__m512)c);
#elif DQ_VEC_BYTES == 32 && defined(__FMA__) && !defined(DQ_SIMDE_HEADER)
    return (dq_vnf)_mm256_fmadd_ps((__m256)a, (__m256)b, (__m256)c);
#elif DQ_VEC_BYTES == 16 && defined(__aarch64__)
    return (dq_vnf)vfmaq_f32((float32x4_t)c, (float32x4_t)a, (float32x4_t)b);
#else
    dq_vnf r;
    for (int i = 0; i < VN_LANES; i++) r[i] = __builtin_fmaf(a[i], b[i], c[i]);
    return r;
#endif
}

// ---------------------------------------------------------------- 16 lanes as VN_PER16 vectors
// Part k of 16 floats is lanes k VN_LANES .. (k + 1) VN_LANES - 1.
// The first n <= 16 values at x, the other lanes `fill`; and the store of the first n lanes.
// (Both go through a stack buffer: callers keep them for the ragged end of a row.)
VN_INLINE void vn16_load_part(dq_vnf *v, const float *x, int n, float fill) {
    float b[16];
    for (int i = 0; i < 16; i++) b[i] = i < n ? x[i] : fill;
    VN_PARTS(k) v[k] = vn_load(b + k * VN_LANES);
}
VN_INLINE void vn16_store_part(float *y, const dq_vnf *v, int n) {
    float b[16];
    VN_PARTS(k) vn_store(b + k * VN_LANES, v[k]);
    memcpy(y, b, (size_t)n * sizeof(float));
}
// Sum of the 16 lanes in one fixed tree: (i, i+8), then (i, i+4), then (0, 2) + (1, 3).
VN_INLINE float vn16_hsum(const dq_vnf *s) {
#if VN_PER16 == 1
    const dq_v8f b = __builtin_shufflevector(s[0], s[0], 0, 1, 2, 3, 4, 5, 6, 7) +
                     __builtin_shufflevector(s[0], s[0], 8, 9, 10, 11, 12, 13, 14, 15);
#elif VN_PER16 == 2
    const dq_v8f b = s[0] + s[1];
#endif
#if VN_PER16 <= 2
    const dq_v4f c = __builtin_shufflevector(b, b, 0, 1, 2, 3) + __builtin_shufflevector(b, b, 4, 5, 6, 7);
#else
    const dq_v4f c = (s[0] + s[2]) + (s[1] + s[3]);
#endif
    return (c[0] + c[2]) + (c[1] + c[3]);
}
// Largest of the 16 lanes (NaNs ignored, as in the loops that built them), folded in the same
// pairs: (i, i+8), (i, i+4), (i, i+2), (0, 1).
VN_INLINE float vn16_hmax(const dq_vnf *mv) {
#if VN_PER16 == 1
    const dq_v8f m8 = v8_max(__builtin_shufflevector(mv[0], mv[0], 0, 1, 2, 3, 4, 5, 6, 7),
                             __builtin_shufflevector(mv[0], mv[0], 8, 9, 10, 11, 12, 13, 14, 15));
#elif VN_PER16 == 2
    const dq_v8f m8 = v8_max(mv[0], mv[1]);
#endif
#if VN_PER16 <= 2
    dq_v4f m = v4_max(__builtin_shufflevector(m8, m8, 0, 1, 2, 3), __builtin_shufflevector(m8, m8, 4, 5, 6, 7));
#else
    dq_v4f m = v4_max(v4_max(mv[0], mv[2]), v4_max(mv[1], mv[3]));
#endif
    m = v4_max(m, __builtin_shufflevector(m, m, 2, 3, 2, 3));
    m = v4_max(m, __builtin_shufflevector(m, m, 1, 1, 1, 1));
    return m[0];
}
// The VN_LANES floats at x (all readable), lanes n.. replaced by fill: the ragged end of a padded
// row without a trip through memory (a stack buffer written lane by lane, then read as a vector,
// stalls store forwarding).
VN_INLINE dq_vnf vn_load_pad(const float *x, int n, float fill) {
    const dq_vni lane = {VN_IOTA};
    return vn_select(lane < (dq_vni){0} + n, vn_load(x), vn_set1(fill));
}

// e^x for x <= 0 (and NaN), Cephes-style: x = n ln2 + r with |r| <= ln2/2 (ln2 split in two,
// taken off with fused multiply-adds), a degree-6 polynomial for e^r (Horner, fused), and 2^n
// put together in the exponent bits. Within 2 ulp of e^x for -87 <= x <= 0; below -87 it
// returns 0 (the true value is subnormal, < 2e-38), NaN stays NaN. Its callers never pass
// x > 0: softmax takes e^(s - max s), SiLU e^-|g|. (Per vector about 24 operations, half of
// the version it replaced, which also clamped above and rounded each product.)
// x[0..NV) in place, each step for the NV vectors side by side: one vector is a chain of ~24
// dependent operations, and the core overlaps independent chains only as far as its scheduler
// reaches, so interleaving them in the instruction stream is what keeps the vector units busy.
// Callers pass at most VN_EXP_NV vectors: more chains than that only spill registers.
#define VN_EXP_NV (VN_PER16 * DQ_EXP_ILP)
VN_INLINE void vn_exp_neg(const int NV, dq_vnf *x) {
    const dq_vnf lo = vn_set1(-87.0f), magic = vn_set1(12582912.0f);  // 1.5 * 2^23: + magic rounds
    dq_vni in[VN_EXP_NV];
    dq_vnf xc[VN_EXP_NV], n[VN_EXP_NV], r[VN_EXP_NV], p[VN_EXP_NV];
    VN_EACH(NV) in[j] = x[j] >= lo;  // false for NaN and below -87: those lanes are computed on -87
    VN_EACH(NV) xc[j] = vn_select(in[j], x[j], lo);
    VN_EACH(NV) n[j] = vn_fma(xc[j], vn_set1(1.44269504088896341f), magic) - magic;
    VN_EACH(NV) r[j] = vn_fma(n[j], vn_set1(-0.693359375f), xc[j]);  // exact: n * 0.693359375 has <= 16 bits
    VN_EACH(NV) r[j] = vn_fma(n[j], vn_set1(2.12194440e-4f), r[j]);
    VN_EACH(NV) p[j] = vn_fma(vn_set1(1.9875691500e-4f), r[j], vn_set1(1.3981999507e-3f));
    VN_EACH(NV) p[j] = vn_fma(p[j], r[j], vn_set1(8.3334519073e-3f));
    VN_EACH(NV) p[j] = vn_fma(p[j], r[j], vn_set1(4.1665795894e-2f));
    VN_EACH(NV) p[j] = vn_fma(p[j], r[j], vn_set1(1.6666665459e-1f));
    VN_EACH(NV) p[j] = vn_fma(p[j], r[j], vn_set1(5.0000001201e-1f));
    VN_EACH(NV) p[j] = vn_fma(p[j], r[j] * r[j], r[j]) + 1.0f;
    VN_EACH(NV) {
        const dq_vni e = (__builtin_convertvector(n[j], dq_vni) + 127) << 23;  // 2^n, n in [-126, 0]
        const dq_vnf y = vn_select(in[j], p[j] * (dq_vnf)e, vn_set1(0.0f));
        x[j] = vn_select(x[j] == x[j], y, x[j]);
    }
}

// ---------------------------------------------------------------- attention
// The key cache of one head is stored in blocks of 16 positions, transposed inside a block
// (dq_kt_index in ops.h): block b holds, for each of the hd dimensions, the 16 positions'
// values side by side. One vector load is then one dimension of 16 keys, and a score needs no
// horizontal sum: lane j of  acc += q[d] * k_block[d]  accumulates key 16b + j over d in order.
// Values stay one row per position, ldv apart (the model keeps each head's rows contiguous, ldv = hd;
// the tests also use longer strides).
//
// attn_kv__vec: nq <= DQ_ATTN_NQ queries of one head at once (consecutive positions of one
// head in prefill, or the query heads sharing one KV head in decode), so each key block and value
// row is loaded once for several queries. Query i attends to the first np_i = np0 + i * dnp
// positions. The arithmetic of every output, identical on every ISA and for any nq or blocking:
//   score p = scale * a_hd with a_0 = 0, a_(d+1) = fma(q[d], k_p[d], a_d) (fused multiply-add);
//   mx = the largest score; e_p = e^(score_p - mx); sum = the 16-lane partial sums of e_p
//   (p mod 16), the vn16_hsum tree; w_p = e_p * (1 / sum);
//   out[d] = E + O, E = the fma chain of w_p v_p[d] over even p in order, O the same over odd p.
// The blocking (how many queries and key blocks share a pass, DQ_ATTN_WIDE) is chosen per ISA
// for its register file: 32 zmm take 8 accumulator chains, 16 ymm or the NEON q registers 4.
// Each 16-position block is VN_PER16 native vectors; the softmax's maxima and sums are kept
// per p mod 16, in the same parts, and folded by vn16_hmax and vn16_hsum.
// att[i * lda + 16 c + lane] = scale * score of query i, key 16 c + lane, for the KB key blocks
// c = b, b + bs, ..., b + (KB - 1) bs; NQ queries x KB key blocks, one accumulator chain per
// native vector. pf (or NULL): hd cache lines KB * 64 bytes apart from pf, one per step, are
// prefetched (the value rows the mix pass reads next; see attn_scores).
VN_INLINE void attn_score_blk(const int NQ, const int KB, float *att, int lda, const float *q, int ldq, const void *kt,
                               const int KT, int b, int bs, int hd, float scale, const char *pf) {
    enum { NV = VN_PER16 };
    dq_vnf acc[DQ_ATTN_MAXQ][8 * NV];
#pragma GCC unroll 4
    for (int i = 0; i < NQ; i++)
#pragma GCC unroll 32
        for (int j = 0; j < KB * NV; j++) acc[i][j] = (dq_vnf){0};
    for (int d = 0; d < hd; d++) {
        dq_vnf kv[8 * NV];
#pragma GCC unroll 32
        for (int j = 0; j < KB * NV; j++) kv[j] = vn_load_key(kt, KT, b + j / NV * bs, d, (j % NV) * VN_LANES, hd);
        if (pf) __builtin_prefetch(pf + (size_t)d * KB * 64, 0, 3);
#pragma GCC unroll 4
        for (int i = 0; i < NQ; i++) {
            const dq_vnf qd = vn_set1(q[(size_t)i * ldq + d]);
#pragma GCC unroll 32
            for (int j = 0; j < KB * NV; j++) acc[i][j] = vn_fma(qd, kv[j], acc[i][j]);
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < NQ; i++)
#pragma GCC unroll 32
        for (int j = 0; j < KB * NV; j++)
            vn_store(att + (size_t)i * lda + 16 * (b + j / NV * bs) + j % NV * VN_LANES, acc[i][j] * scale);
}

// Scores of nq queries against nblk key blocks: as many key blocks per pass as the chains allow,
// ng = nblk / KB passes, pass g taking blocks g, g + ng, ..., g + (KB - 1) ng (then the leftover
// blocks): KB streams through the head's keys rather than one, which reads an uncached cache
// faster (each score is independent: the order changes no bit). With pf (decode, where each head's
// cache is read once per token, from memory), each pass also prefetches the next piece of the npf
// bytes of value rows at pf, one line in KB per step, the hardware prefetcher filling in between:
// the values then stream from memory alongside the keys and the mix pass finds them in L2.
// Measured on a Zen 3, one thread (a throw-away microbenchmark of this file built with the
// Makefile's flags; 144 heads x 960 positions of FP32 cache, old and new alternated): one query
// 15.1 -> 17.3 GB/s, 8 queries sharing a KV head 7.1 -> 8.5 (with ATTN_DW_1); where one head's
// cache sits in L2 the prefetch costs ~11 % (~14 % together), a case decode does not meet on a
// model worth timing (the weights stream through the caches between a head's two uses).
#if DQ_ATTN_WIDE
#define ATTN_KB(nq) ((nq) <= 2 ? 8 : 4)
#else
#define ATTN_KB(nq) ((nq) == 1 ? 4 : (nq) == 2 ? 2 : 1)
#endif
#define ATTN_SCORES(NQ)                                                                                    \
    do {                                                                                                   \
        const int ng = nblk / ATTN_KB(NQ);                                                                 \
        const size_t pfb = (size_t)ATTN_KB(NQ) * hd * 64;                                                  \
        for (int g = 0; g < ng; g++)                                                                       \
            attn_score_blk(NQ, ATTN_KB(NQ), att, lda, q, ldq, kt, KT, g, ng, hd, scale,                    \
                           pf && (g + 1) * pfb <= npf ? pf + g * pfb : NULL);                              \
        int b = ng * ATTN_KB(NQ); /* the blocks left over, one or two passes more */                     \
        if (ATTN_KB(NQ) >= 4 && b + ATTN_KB(NQ) / 2 <= nblk)                                               \
            attn_score_blk(NQ, ATTN_KB(NQ) / 2, att, lda, q, ldq, kt, KT, b, 1, hd, scale, NULL), b += ATTN_KB(NQ) / 2; \
        for (; b < nblk; b++) attn_score_blk(NQ, 1, att, lda, q, ldq, kt, KT, b, 1, hd, scale, NULL);          \
    } while (0)
VN_INLINE void attn_scores(float *att, int lda, const float *q, int ldq, int nq, int nblk, const void *kt,
                            const int KT, int hd, float scale, const char *pf, size_t npf) {
    switch (nq) {
    case 1: ATTN_SCORES(1); break;
    case 2: ATTN_SCORES(2); break;
    case 3: ATTN_SCORES(3); break;
    default: ATTN_SCORES(4); break;
    }
}
#undef ATTN_SCORES
#undef ATTN_KB

// Row i of att (lda apart, each padded to a multiple of 16) = softmax of its first
// np0 + i * dnp scores, in place, for NQ rows at once: each pass runs the NQ rows' independent
// chains side by side (one row at a time left e^x's long dependency chain exposed), and each
// row's arithmetic is the one of a lone row: the largest score (NaNs ignored; exact in any order,
// and e^(s - mx) does not see the sign of a zero mx), e_p = e^(s_p - mx), the 16-lane partial
// sums of e_p (p mod 16) folded by the vn16_hsum tree, w_p = e_p * (1 / sum).
VN_INLINE void attn_softmax(const int NQ, float *att, int lda, int np0, int dnp) {
    enum { NV = VN_PER16 };
    const int NE = NQ * VN_PER16;
    dq_vnf mv[DQ_ATTN_MAXQ][VN_PER16], sum[DQ_ATTN_MAXQ][VN_PER16];
    float mx[DQ_ATTN_MAXQ], inv[DQ_ATTN_MAXQ];
    const int npm = np0 + (NQ - 1) * dnp;
#pragma GCC unroll 4
    for (int i = 0; i < NQ; i++) VN_PARTS(k) mv[i][k] = vn_set1(-INFINITY), sum[i][k] = (dq_vnf){0};
    for (int p = 0; p < npm; p += 16)
#pragma GCC unroll 4
        for (int i = 0; i < NQ; i++) VN_PARTS(k) {
                const int l = p + k * VN_LANES;
                mv[i][k] = vn_max(mv[i][k], vn_load_pad(att + (size_t)i * lda + l, np0 + i * dnp - l, -INFINITY));
            }
#pragma GCC unroll 4
    for (int i = 0; i < NQ; i++) mx[i] = vn16_hmax(mv[i]);
    // Past a row's own end (rows are padded to the longest), e = e^-inf = +0: stored, and added
    // to a sum that is >= +0, which it leaves unchanged.
    for (int p = 0; p < npm; p += 16) {
        dq_vnf e[DQ_ATTN_MAXQ * VN_PER16];
#pragma GCC unroll 4
        for (int i = 0; i < NQ; i++) VN_PARTS(k) {
                const int l = p + k * VN_LANES;
                e[i * NV + k] = vn_load_pad(att + (size_t)i * lda + l, np0 + i * dnp - l, -INFINITY) - mx[i];
            }
#pragma GCC unroll 16
        for (int j = 0; j < NE; j += VN_EXP_NV) vn_exp_neg(NE - j < VN_EXP_NV ? NE - j : VN_EXP_NV, e + j);
#pragma GCC unroll 4
        for (int i = 0; i < NQ; i++) VN_PARTS(k) {
                sum[i][k] += e[i * NV + k];
                vn_store(att + (size_t)i * lda + p + k * VN_LANES, e[i * NV + k]);
            }
    }
#pragma GCC unroll 4
    for (int i = 0; i < NQ; i++) inv[i] = 1.0f / vn16_hsum(sum[i]);
    for (int p = 0; p < npm; p += 16)
#pragma GCC unroll 4
        for (int i = 0; i < NQ; i++) VN_PARTS(k) {
                float *a = att + (size_t)i * lda + p + k * VN_LANES;
                vn_store(a, vn_load(a) * inv[i]);
            }
}

// out_i[d0 .. d0 + 16 DW) for NQ queries over positions p < npm, even and odd positions in
// separate accumulators, each in increasing p; one load of each value row for all NQ. A query
// whose own positions end before npm has weight +0 past its end (attn_softmax), and those steps
// leave its accumulators as they were: fma(+0, v, a) = a for finite v and a != -0 (a starts at
// +0 and an exact sum never becomes -0 from it), and the value rows below npm are positions of
// this batch, finite. So every query gets the bits of a call with its own positions alone.
VN_INLINE void attn_mix_blk(const int NQ, const int DW, float *out, int ldo, const float *att, int lda, const void *v,
                             const int VT, int ldv, int hd, int d0, int npm) {
    enum { NV = VN_PER16 };
    dq_vnf e[DQ_ATTN_MAXQ][4 * NV], o[DQ_ATTN_MAXQ][4 * NV];  // DW <= 4
#pragma GCC unroll 4
    for (int i = 0; i < NQ; i++)
#pragma GCC unroll 8
        for (int c = 0; c < DW * NV; c++) e[i][c] = o[i][c] = (dq_vnf){0};
    int p = 0;
    for (; p + 2 <= npm; p += 2) {
        dq_vnf a[4 * NV], b[4 * NV];
#pragma GCC unroll 8
        for (int c = 0; c < DW * NV; c++) {
            a[c] = vn_load_val(v, VT, p, ldv, d0 + c * VN_LANES, hd), b[c] = vn_load_val(v, VT, p + 1, ldv, d0 + c * VN_LANES, hd);
            if (NQ > 1) {  // shared by NQ queries' FMAs: one load each
                VN_IN_REG(a[c]);
                VN_IN_REG(b[c]);
            }
        }
#pragma GCC unroll 4
        for (int i = 0; i < NQ; i++) {
            const dq_vnf we = vn_set1(att[(size_t)i * lda + p]), wo = vn_set1(att[(size_t)i * lda + p + 1]);
#pragma GCC unroll 8
            for (int c = 0; c < DW * NV; c++) e[i][c] = vn_fma(we, a[c], e[i][c]), o[i][c] = vn_fma(wo, b[c], o[i][c]);
        }
    }
    if (p < npm) {  // the last position, even
        dq_vnf a[4 * NV];
#pragma GCC unroll 8
        for (int c = 0; c < DW * NV; c++) a[c] = vn_load_val(v, VT, p, ldv, d0 + c * VN_LANES, hd);
#pragma GCC unroll 4
        for (int i = 0; i < NQ; i++) {
            const dq_vnf we = vn_set1(att[(size_t)i * lda + p]);
#pragma GCC unroll 8
            for (int c = 0; c < DW * NV; c++) e[i][c] = vn_fma(we, a[c], e[i][c]);
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < NQ; i++)
#pragma GCC unroll 8
        for (int c = 0; c < DW * NV; c++) vn_store(out + (size_t)i * ldo + d0 + c * VN_LANES, e[i][c] + o[i][c]);
}

#if DQ_ATTN_WIDE
#define ATTN_MQ 4  // queries per value pass
#define ATTN_DW 2  // 16-lane vectors of the head dimension per pass
#else
#define ATTN_MQ 2
#define ATTN_DW 1
#endif
// A lone query (decode without grouped heads): on 32 zmm, 8 accumulators take 64 dimensions per
// pass, so a 64-wide head's value rows are read once, whole, instead of in two passes of 128-byte
// halves (the second half's pass found its lines evicted on long caches): stories110M decode on
// the Zen 4, scripts/ab_decode.c, one / two threads, 1.008x / 1.017x over 64 tokens, 1.038-1.040x
// / 1.033x over 256, 1.148x / 1.084x over 768. With 16 ymm, 8 accumulators take 32 dimensions
// per pass, so each value row is read in 128-byte pieces (two adjacent lines) rather than 64.
#if DQ_ATTN_WIDE
#define ATTN_DW_1 4
#elif DQ_VEC_BYTES == 32
#define ATTN_DW_1 2
#else
#define ATTN_DW_1 ATTN_DW
#endif
#define ATTN_MIX(NQ)                                                                                                   \
    do {                                                                                                               \
        enum { DW = (NQ) == 1 ? ATTN_DW_1 : ATTN_DW };                                                                 \
        for (; d + 16 * DW <= hd; d += 16 * DW)                                                                        \
            attn_mix_blk(NQ, DW, out + (size_t)i * ldo, ldo, a, lda, v, VT, ldv, hd, d, np0 + (i + NQ - 1) * dnp);       \
        for (; d + 16 <= hd; d += 16) attn_mix_blk(NQ, 1, out + (size_t)i * ldo, ldo, a, lda, v, VT, ldv, hd, d, np0 + (i + NQ - 1) * dnp); \
    } while (0)

// The three passes of attn_kv__vec. Scores and mix are inlined once per cache type (K16, V16 =
// 1: FP16, widened on load), the softmax once: every pair of types shares them.
// Groups of DQ_ATTN_MAXQ queries (the register blocking), each pass for every group before the
// next pass: a head's keys, then its values, are read by all groups back to back, from L1 after
// the first. Each group computes what a call with its own queries alone would. In decode (dnp 0)
// the first group's score pass prefetches the vbytes of value rows at v (attn_scores); prefill
// reads a head's cache again for each block of tokens, from cache, and does not.
VN_INLINE void attn_score_pass(float *att, int lda, const float *q, int ldq, int nq, int np0, int dnp,
                                const void *kt, const int KT, int hd, float scale, const char *v, size_t vbytes) {
    for (int g = 0; g < nq; g += DQ_ATTN_MAXQ) {
        const int m = nq - g < DQ_ATTN_MAXQ ? nq - g : DQ_ATTN_MAXQ, np = np0 + (g + m - 1) * dnp;
        attn_scores(att + (size_t)g * lda, lda, q + (size_t)g * ldq, ldq, m, (np + 15) / 16, kt, KT, hd, scale,
                    g || dnp ? NULL : v, vbytes);
    }
}
VN_INLINE void attn_mix_pass(float *out, int ldo, const float *att, int lda, int nq, int np0, int dnp, const void *v,
                              const int VT, int ldv, int hd) {
    for (int i = 0; i < nq; i += ATTN_MQ) {
        const int m = nq - i < ATTN_MQ ? nq - i : ATTN_MQ;
        const float *a = att + (size_t)i * lda;
        int d = 0;
        switch (m) {
        case 1: ATTN_MIX(1); break;
#if ATTN_MQ > 2
        case 3: ATTN_MIX(3); break;
        case 4: ATTN_MIX(4); break;
#endif
        default: ATTN_MIX(2); break;
        }
        for (; d < hd; d++)  // the hd % 16 tail, one dimension at a time, same order
            for (int r = i; r < i + m; r++) {
                const float *ar = att + (size_t)r * lda;
                float e0 = 0.0f, o0 = 0.0f;
                for (int p = 0; p < np0 + r * dnp; p++) {
                    const float vd = val_at(v, VT, p, ldv, d, hd);
                    if (p & 1) o0 = __builtin_fmaf(ar[p], vd, o0);
                    else e0 = __builtin_fmaf(ar[p], vd, e0);
                }
                out[(size_t)r * ldo + d] = e0 + o0;
            }
    }
}

// out_i (hd, at out + i * ldo) = softmax_p(scale * q_i . k_p) . v over p < np0 + i * dnp, for
// the nq <= DQ_ATTN_NQ queries q_i = q + i * ldq. kt: the head's key blocks (dq_kt_index);
// v: its value rows (ldv apart); each FP32 or FP16 (kty, vty); att: dq_attn_scratch(np0 +
// (nq - 1) * dnp) floats.
static void attn_kv__vec(float *out, int ldo, const float *q, int ldq, int nq, int np0, int dnp, const void *kt,
                         dq_kv_type kty, const void *v, dq_kv_type vty, int ldv, int hd, float scale, float *att) {
    const int npm = np0 + (nq - 1) * dnp, lda = (npm + 15) & ~15;
    const size_t vb = (size_t)npm * (size_t)ldv * (vty == DQ_KV_F32 ? 4 : vty == DQ_KV_F16 ? 2 : 1);
    switch (kty) {
    case DQ_KV_F16: attn_score_pass(att, lda, q, ldq, nq, np0, dnp, kt, DQ_KV_F16, hd, scale, v, vb); break;
    case DQ_KV_Q8: attn_score_pass(att, lda, q, ldq, nq, np0, dnp, kt, DQ_KV_Q8, hd, scale, v, vb); break;
    default: attn_score_pass(att, lda, q, ldq, nq, np0, dnp, kt, DQ_KV_F32, hd, scale, v, vb); break;
    }
    for (int g = 0; g < nq; g += DQ_ATTN_MAXQ) {
        float *a = att + (size_t)g * lda;
        const int np = np0 + g * dnp;
        switch (nq - g) {
        case 1: attn_softmax(1, a, lda, np, dnp); break;
        case 2: attn_softmax(2, a, lda, np, dnp); break;
        case 3: attn_softmax(3, a, lda, np, dnp); break;
        default: attn_softmax(4, a, lda, np, dnp); break;
        }
    }
    switch (vty) {
    case DQ_KV_F16: attn_mix_pass(out, ldo, att, lda, nq, np0, dnp, v, DQ_KV_F16, ldv, hd); break;
    case DQ_KV_Q8: attn_mix_pass(out, ldo, att, lda, nq, np0, dnp, v, DQ_KV_Q8, ldv, hd); break;
    default: attn_mix_pass(out, ldo, att, lda, nq, np0, dnp, v, DQ_KV_F32, ldv, hd); break;
    }
}
// dst[i] = dq_f32_to_f16(src[i]) for i < n (vn_store_h: the ISA's instruction, the same bits).
static void to_f16__vec(uint16_t *dst, const float *src, size_t n) {
    size_t i = 0;
    for (; i + VN_LANES <= n; i += VN_LANES) vn_store_h(dst + i, vn_load(src + i));
    for (; i < n; i++) dst[i] = dq_f32_to_f16(src[i]);
}
// The DQ_Q8_BLOCK integral values of r[0 .. DQ_Q8_BLOCK / VN_LANES), all in [-127, 127], as bytes
// at c. (On AVX2 by saturating packs, exact in that range: GCC 12 narrowed each 8-lane vector
// with __builtin_convertvector through one vpextrd and a shift per lane.)
VN_INLINE void vn_q8_codes(int8_t *c, const dq_vnf *r) {
#if DQ_VEC_BYTES == 32 && DQ_Q8_BLOCK == 32 && defined(__AVX2__) && !defined(DQ_SIMDE_HEADER)
    const __m256i w01 = _mm256_packs_epi32(_mm256_cvttps_epi32((__m256)r[0]), _mm256_cvttps_epi32((__m256)r[1]));
    const __m256i w23 = _mm256_packs_epi32(_mm256_cvttps_epi32((__m256)r[2]), _mm256_cvttps_epi32((__m256)r[3]));
    // per 128-bit half: 4 values of each of r[0..3], the first four lanes below, the last four above
    const __m256i b = _mm256_packs_epi16(w01, w23);
    const __m256i o = _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    memcpy(c, &o, sizeof o);
#else
    typedef int8_t vnb __attribute__((vector_size(VN_LANES)));
    for (int j = 0; j < DQ_Q8_BLOCK / VN_LANES; j++) {
        const vnb b = __builtin_convertvector(__builtin_convertvector(r[j], dq_vni), vnb);
        memcpy(c + j * VN_LANES, &b, VN_LANES);
    }
#endif
}
// dq_q8_row (ops.h), each lane's arithmetic the scalar one: max |x| ignoring NaNs (kept per
// p mod 16 and folded as vn16_hmax), s = max / 127, c = x * (1 / s) rounded to nearest even by
// adding and subtracting 1.5 * 2^23 (exact for |c| < 2^22), clamped, NaN -> 0 (an infinite input
// makes s infinite and 1 / s zero).
static void to_q8__vec(int8_t *q, size_t qs, float *sc, size_t ss, const float *x, int n) {
    enum { NB = DQ_Q8_BLOCK / VN_LANES };  // native vectors per block
    for (int j0 = 0; j0 < n; j0 += DQ_Q8_BLOCK, sc += ss) {
        const int m = n - j0 < DQ_Q8_BLOCK ? n - j0 : DQ_Q8_BLOCK;
        dq_vnf v[NB], mv[VN_PER16];
        VN_PARTS(k) mv[k] = (dq_vnf){0};
        if (m == DQ_Q8_BLOCK) {
            VN_EACH(NB) v[j] = vn_load(x + j0 + j * VN_LANES);
        } else {  // the ragged end of the row: zeros after it
            float b[DQ_Q8_BLOCK];
            for (int i = 0; i < DQ_Q8_BLOCK; i++) b[i] = i < m ? x[j0 + i] : 0.0f;
            VN_EACH(NB) v[j] = vn_load(b + j * VN_LANES);
        }
        VN_EACH(NB) mv[j % VN_PER16] = vn_absmax_acc(mv[j % VN_PER16], v[j]);
        const float s = vn16_hmax(mv) / 127.0f, inv = s != 0.0f ? 1.0f / s : 0.0f;
        *sc = s;
        int8_t c[DQ_Q8_BLOCK];
        VN_EACH(NB) {
            dq_vnf r = (v[j] * inv + 0x1.8p23f) - 0x1.8p23f;
            r = vn_select(r > vn_set1(127.0f), vn_set1(127.0f), r);
            r = vn_select(r < vn_set1(-127.0f), vn_set1(-127.0f), r);
            v[j] = vn_select(r == r, r, (dq_vnf){0});
        }
        vn_q8_codes(c, v);
        if (qs == 1 && m == DQ_Q8_BLOCK) memcpy(q + j0, c, DQ_Q8_BLOCK);
        else
            for (int i = 0; i < m; i++) q[(size_t)(j0 + i) * qs] = c[i];
    }
}
// q8_0 cache -> FP32 (dq_q8_to_f32 in ops.h) through the attention kernel's own loads, so each
// value is the code * scale it forms. keys: n blocks of 16 positions; else n value rows.
static void q8_to_f32__vec(float *dst, const int8_t *src, int n, int hd, int keys) {
    const int row = (int)dq_kv_row_bytes(DQ_KV_Q8, hd);
    for (int i = 0; i < n; i++) {
        if (keys) {
            for (int d = 0; d < hd; d++)
                for (int l = 0; l < 16; l += VN_LANES)
                    vn_store(dst + ((size_t)i * hd + d) * 16 + l, vn_load_key(src, DQ_KV_Q8, i, d, l, hd));
            continue;
        }
        float *o = dst + (size_t)i * hd;
        int d = 0;
        for (; d + VN_LANES <= hd; d += VN_LANES) vn_store(o + d, vn_load_val(src, DQ_KV_Q8, i, row, d, hd));
        for (; d < hd; d++) o[d] = val_at(src, DQ_KV_Q8, i, row, d, hd);
    }
}
// dst[i] = dq_f16_to_f32(src[i]) for i < n (vn_load_h: the ISA's instruction, exact).
static void to_f32__vec(float *dst, const uint16_t *src, size_t n) {
    size_t i = 0;
    for (; i + VN_LANES <= n; i += VN_LANES) vn_store(dst + i, vn_load_h(src + i));
    for (; i < n; i++) dst[i] = dq_f16_to_f32(src[i]);
}

#undef ATTN_MIX
#undef ATTN_MQ
#undef ATTN_DW
#undef ATTN_DW_1

// ---------------------------------------------------------------- RoPE
// n_h heads of hd values at x, rotated in place for one position: x'[j] = x[j] c[j] + x[j'] s[j]
// lane by lane, where j' is j's partner (j ^ 1 for llama2.c's pairs, j +- hd/2 for HF's halves)
// and c, s are the position's tables (ops.h, dq_rope_tables): c[j] = cos, s[j] = -sin on the first
// of each pair and +sin on the second. A product with -sin added is exactly the subtraction of
// the product with sin, so this is the textbook x0 cos - x1 sin, x0 sin + x1 cos (with the second
// sum's terms swapped: addition is commutative), to the bit.
static void rope_f32__vec(float *x, int n_h, int hd, int halves, const float *c, const float *s) {
    const int half = hd / 2;
    for (int h = 0; h < n_h; h++, x += hd) {
        int j = 0;
        if (!halves) {
            for (; j + VN_LANES <= hd; j += VN_LANES) {
                const dq_vnf v = vn_load(x + j);
                vn_store(x + j, v * vn_load(c + j) + __builtin_shufflevector(v, v, VN_PAIRSWAP) * vn_load(s + j));
            }
            for (; j + 2 <= hd; j += 2) {
                const float x0 = x[j], x1 = x[j + 1];
                x[j] = x0 * c[j] + x1 * s[j];
                x[j + 1] = x1 * c[j + 1] + x0 * s[j + 1];
            }
        } else {
            for (; j + VN_LANES <= half; j += VN_LANES) {
                const dq_vnf lo = vn_load(x + j), hi = vn_load(x + half + j);
                vn_store(x + j, lo * vn_load(c + j) + hi * vn_load(s + j));
                vn_store(x + half + j, hi * vn_load(c + half + j) + lo * vn_load(s + half + j));
            }
            for (; j < half; j++) {
                const float lo = x[j], hi = x[half + j];
                x[j] = lo * c[j] + hi * s[j];
                x[half + j] = hi * c[half + j] + lo * s[half + j];
            }
        }
    }
}

// x += r first when r is given (the residual add, in the same pass as the sum of squares), then
// o = w * (x / sqrt(mean(x^2) + eps)), n values: the squares summed in 16 lanes (p mod 16) and
// the tree, then one scale per element (the n % 16 tail one by one, same expression). Returns
// max |o|, which the activation quantizer of the next matmul would otherwise compute again.
static float rmsnorm_f32__vec(float *o, float *x, const float *r, const float *w, int n, float eps) {
    dq_vnf ss[VN_PER16], am[VN_PER16];
    VN_PARTS(k) ss[k] = am[k] = (dq_vnf){0};
    int j = 0;
    if (r) {
        for (; j + 16 <= n; j += 16) VN_PARTS(k) {
                const dq_vnf v = vn_load(x + j + k * VN_LANES) + vn_load(r + j + k * VN_LANES);
                vn_store(x + j + k * VN_LANES, v);
                ss[k] += v * v;
            }
        for (int i = j; i < n; i++) x[i] += r[i];
    } else {
        for (; j + 16 <= n; j += 16) VN_PARTS(k) {
                const dq_vnf v = vn_load(x + j + k * VN_LANES);
                ss[k] += v * v;
            }
    }
    if (j < n) {
        dq_vnf v[VN_PER16];
        vn16_load_part(v, x + j, n - j, 0.0f);
        VN_PARTS(k) ss[k] += v[k] * v[k];
    }
    const float inv = 1.0f / sqrtf(vn16_hsum(ss) / (float)n + eps);
    for (j = 0; j + 16 <= n; j += 16) VN_PARTS(k) {
            const dq_vnf y = vn_load(w + j + k * VN_LANES) * (inv * vn_load(x + j + k * VN_LANES));
            vn_store(o + j + k * VN_LANES, y);
            am[k] = vn_absmax_acc(am[k], y);
        }
    float amax = vn16_hmax(am);
    for (; j < n; j++) {
        o[j] = w[j] * (inv * x[j]);
        const float a = fabsf(o[j]);
        amax = a > amax ? a : amax;
    }
    return amax;
}

// silu(g) = g * sigmoid(g), sigmoid from t = e^-|g| <= 1 (no overflow on either side):
// sigmoid = 1 / (1 + t) for g >= 0, t / (1 + t) below. The reciprocal of d = 1 + t, in [1, 2],
// by Newton's iteration r <- r + r (1 - d r) (fused) from the line 24/17 - 8/17 d (error <= 1/17,
// squared by each step: 3.5e-3, 1.2e-5, 1.4e-10), which leaves the divider (one zmm division
// occupied it longer than the rest of the loop) free. NV <= VN_EXP_NV vectors in place.
VN_INLINE void vn_silu(const int NV, dq_vnf *g) {
    dq_vnf t[VN_EXP_NV], d[VN_EXP_NV], r[VN_EXP_NV];
    VN_EACH(NV) t[j] = (dq_vnf)((dq_vni)g[j] | (dq_vni)vn_set1(-0.0f));  // -|g|
    vn_exp_neg(NV, t);
    VN_EACH(NV) d[j] = 1.0f + t[j];
    VN_EACH(NV) r[j] = vn_fma(d[j], vn_set1(-8.0f / 17.0f), vn_set1(24.0f / 17.0f));
    for (int k = 0; k < 3; k++) VN_EACH(NV) r[j] = vn_fma(r[j], vn_fma(-d[j], r[j], vn_set1(1.0f)), r[j]);
    // NaN in, the same NaN out: which NaN operand an operation passes on differs between ISAs.
    VN_EACH(NV) g[j] = vn_select(g[j] == g[j], g[j] * vn_select(g[j] >= vn_set1(0.0f), r[j], t[j] * r[j]), g[j]);
}

// h[i] = silu(g[i]) * u[i], i < n: DQ_EXP_ILP * 16 values per step (VN_EXP_NV native vectors,
// loaded and stored directly). Returns max |h| (as rmsnorm).
static float swiglu_f32__vec(float *h, const float *g, const float *u, size_t n) {
    enum { W = 16 * DQ_EXP_ILP };
    dq_vnf am[VN_PER16];
    VN_PARTS(k) am[k] = (dq_vnf){0};
    size_t i = 0;
    for (; i + W <= n; i += W) {
        dq_vnf x[VN_EXP_NV];
        VN_EACH(VN_EXP_NV) x[j] = vn_load(g + i + j * VN_LANES);
        vn_silu(VN_EXP_NV, x);
        VN_EACH(VN_EXP_NV) {
            x[j] = x[j] * vn_load(u + i + j * VN_LANES);
            vn_store(h + i + j * VN_LANES, x[j]);
            am[j % VN_PER16] = vn_absmax_acc(am[j % VN_PER16], x[j]);
        }
    }
    for (; i < n; i += 16) {  // by 16; a part vector at the end: lanes past n have g = u = 0, so h = 0
        const int r = n - i < 16 ? (int)(n - i) : 16;
        dq_vnf x[VN_PER16], y[VN_PER16];
        if (r == 16) {
            VN_PARTS(k) x[k] = vn_load(g + i + k * VN_LANES), y[k] = vn_load(u + i + k * VN_LANES);
        } else {
            vn16_load_part(x, g + i, r, 0.0f);
            vn16_load_part(y, u + i, r, 0.0f);
        }
        vn_silu(VN_PER16, x);
        VN_PARTS(k) x[k] = x[k] * y[k], am[k] = vn_absmax_acc(am[k], x[k]);
        if (r == 16) {
            VN_PARTS(k) vn_store(h + i + k * VN_LANES, x[k]);
        } else {
            vn16_store_part(h + i, x, r);
        }
    }
    return vn16_hmax(am);
}

// kb[d * 16 + j] = src[j * lds + d] for j < 16, d < hd: one whole block of the FP32 key cache
// (dq_kt_index, ops.h). Pure data movement, so every version is bit-identical. Here 4 positions x 4
// dimensions at a time, transposed in registers (16-byte vectors whatever the ISA: the ymm/zmm
// ways to transpose are not expressible with generic vectors), then the rest one value at a time.
typedef float dq_v4f __attribute__((vector_size(16)));
static void kblock_f32__vec(float *kb, const float *src, size_t lds, int hd) {
    int d = 0;
    for (; d + 4 <= hd; d += 4)
        for (int j = 0; j < 16; j += 4) {
            const float *x = src + (size_t)j * lds + d;
            dq_v4f r0, r1, r2, r3;
            memcpy(&r0, x, 16), memcpy(&r1, x + lds, 16), memcpy(&r2, x + 2 * lds, 16), memcpy(&r3, x + 3 * lds, 16);
            const dq_v4f a = __builtin_shufflevector(r0, r1, 0, 4, 1, 5), b = __builtin_shufflevector(r0, r1, 2, 6, 3, 7);
            const dq_v4f c = __builtin_shufflevector(r2, r3, 0, 4, 1, 5), e = __builtin_shufflevector(r2, r3, 2, 6, 3, 7);
            const dq_v4f c0 = __builtin_shufflevector(a, c, 0, 1, 4, 5), c1 = __builtin_shufflevector(a, c, 2, 3, 6, 7);
            const dq_v4f c2 = __builtin_shufflevector(b, e, 0, 1, 4, 5), c3 = __builtin_shufflevector(b, e, 2, 3, 6, 7);
            float *o = kb + (size_t)d * 16 + j;
            memcpy(o, &c0, 16), memcpy(o + 16, &c1, 16), memcpy(o + 32, &c2, 16), memcpy(o + 48, &c3, 16);
        }
    for (; d < hd; d++)
        for (int j = 0; j < 16; j++) kb[(size_t)d * 16 + j] = src[(size_t)j * lds + d];
}

#undef VN_LANES
#undef VN_PER16

// The members of a kernel table that come from this file: every ISA's table lists them with this
// one macro, so a kernel added here is added to every table at once.
#define DQ_VEC_F32_MEMBERS                                                                               \
    .attn = attn_kv__vec, .to_f16 = to_f16__vec, .to_f32 = to_f32__vec, .to_q8 = to_q8__vec,              \
    .q8_to_f32 = q8_to_f32__vec, .swiglu = swiglu_f32__vec, .rmsnorm = rmsnorm_f32__vec, .rope = rope_f32__vec, \
    .kblock = kblock_f32__vec

#endif
