// tests/kernels_simde_x86.h: lets ggml_like/avx2.c and avx512vnni.c compile against SIMDe
// (portable C implementations of the intrinsics), so their exact kernel code runs and is
// checked on any x86-64 host, including one without AVX2 or AVX-512. Test-only.
// The kernel files include this instead of <immintrin.h> when DQ_SIMDE_HEADER names it. We map
// the intrinsic names they use to simde_* ourselves (after the system headers were read),
// instead of SIMDE_ENABLE_NATIVE_ALIASES, whose definitions clash with GCC's own headers.
// SIMDe 0.7.4 lacks a few AVX-512 intrinsics; they are written out below, lane by lane.
#ifndef DYNQ_KERNELS_SIMDE_X86_H
#define DYNQ_KERNELS_SIMDE_X86_H

#include <math.h>
#include <simde/x86/avx2.h>
#include <simde/x86/avx512.h>
#include <simde/x86/fma.h>

// ---------------------------------------------------------------- missing in SIMDe 0.7.4
static inline simde__m512 dqs_cvtepi32_ps(simde__m512i a) {
    int32_t v[16];
    float f[16];
    simde_mm512_storeu_si512(v, a);
    for (int i = 0; i < 16; i++) f[i] = (float)v[i];
    return simde_mm512_loadu_ps(f);
}
static inline simde__m512i dqs_cvtps_epi32(simde__m512 a) {  // current rounding mode: nearest-even
    float f[16];
    int32_t v[16];
    simde_mm512_storeu_ps(f, a);
    for (int i = 0; i < 16; i++) v[i] = (int32_t)lrintf(f[i]);
    return simde_mm512_loadu_si512(v);
}
static inline void dqs_mask_storeu_ps(void *p, simde__mmask16 k, simde__m512 a) {
    float f[16];
    simde_mm512_storeu_ps(f, a);
    for (int i = 0; i < 16; i++)
        if (k >> i & 1) ((float *)p)[i] = f[i];
}
static inline simde__m512 dqs_maskz_loadu_ps(simde__mmask16 k, const void *p) {
    float f[16];
    for (int i = 0; i < 16; i++) f[i] = (k >> i & 1) ? ((const float *)p)[i] : 0.0f;  // masked lanes: no read
    return simde_mm512_loadu_ps(f);
}
static inline void dqs_mask_cvtepi32_storeu_epi8(void *p, simde__mmask16 k, simde__m512i a) {
    int32_t v[16];
    simde_mm512_storeu_si512(v, a);
    for (int i = 0; i < 16; i++)
        if (k >> i & 1) ((int8_t *)p)[i] = (int8_t)v[i];  // truncation, as vpmovdb
}
static inline float dqs_reduce_add_ps(simde__m512 a) {
    float v[16];
    simde_mm512_storeu_ps(v, a);
    for (int w = 8; w >= 1; w /= 2)
        for (int i = 0; i < w; i++) v[i] += v[i + w];
    return v[0];
}
// SIMDe 0.7.4 emulates vmaskmovps with a full load; the instruction never reads masked lanes.
static inline simde__m256 dqs_mm256_maskload_ps(const float *p, simde__m256i mask) {
    int32_t m[8];
    float f[8];
    simde_mm256_storeu_si256(m, mask);
    for (int i = 0; i < 8; i++) f[i] = m[i] < 0 ? p[i] : 0.0f;
    return simde_mm256_loadu_ps(f);
}
// vgatherdps with every lane enabled: lane i loads base + idx[i] * scale bytes
static inline simde__m512 dqs_i32gather_ps(simde__m512i idx, const void *base, int scale) {
    int32_t v[16];
    float f[16];
    simde_mm512_storeu_si512(v, idx);
    for (int i = 0; i < 16; i++) memcpy(&f[i], (const char *)base + (ptrdiff_t)v[i] * scale, 4);
    return simde_mm512_loadu_ps(f);
}
#define _mm512_cvtepi32_ps dqs_cvtepi32_ps
#define _mm512_i32gather_ps dqs_i32gather_ps
#define _mm512_cvtps_epi32 dqs_cvtps_epi32
#define _mm512_mask_storeu_ps dqs_mask_storeu_ps
#define _mm512_maskz_loadu_ps dqs_maskz_loadu_ps
#define _mm512_mask_cvtepi32_storeu_epi8 dqs_mask_cvtepi32_storeu_epi8
#define _mm512_reduce_add_ps dqs_reduce_add_ps

// ---------------------------------------------------------------- types
#define __m128 simde__m128
#define __m128i simde__m128i
#define __m256 simde__m256
#define __m256i simde__m256i
#define __m512 simde__m512
#define __m512i simde__m512i
#define __mmask16 simde__mmask16

// ---------------------------------------------------------------- names
#define _mm256_maskload_ps dqs_mm256_maskload_ps
#define _mm256_abs_epi8 simde_mm256_abs_epi8
#define _mm256_add_epi64 simde_mm256_add_epi64
#define _mm256_sad_epu8 simde_mm256_sad_epu8
#define _mm256_srai_epi32 simde_mm256_srai_epi32
#define _mm256_slli_epi32 simde_mm256_slli_epi32
#define _mm256_add_epi32 simde_mm256_add_epi32
#define _mm256_and_ps simde_mm256_and_ps
#define _mm256_castps256_ps128 simde_mm256_castps256_ps128
#define _mm256_castsi256_ps simde_mm256_castsi256_ps
#define _mm256_castsi256_si128 simde_mm256_castsi256_si128
#define _mm256_cmpgt_epi32 simde_mm256_cmpgt_epi32
#define _mm256_cmpgt_epi8 simde_mm256_cmpgt_epi8
#define _mm256_cvtepi32_ps simde_mm256_cvtepi32_ps
#define _mm256_cvtps_epi32 simde_mm256_cvtps_epi32
#define _mm256_extractf128_ps simde_mm256_extractf128_ps
#define _mm256_extracti128_si256 simde_mm256_extracti128_si256
#define _mm256_fmadd_ps simde_mm256_fmadd_ps
#define _mm256_load_si256 simde_mm256_load_si256
#define _mm256_loadu_ps simde_mm256_loadu_ps
#define _mm256_loadu_si256 simde_mm256_loadu_si256
#define _mm256_madd_epi16 simde_mm256_madd_epi16
#define _mm256_maddubs_epi16 simde_mm256_maddubs_epi16
#define _mm256_max_epi32 simde_mm256_max_epi32
#define _mm256_max_ps simde_mm256_max_ps
#define _mm256_min_epi32 simde_mm256_min_epi32
#define _mm256_min_epi8 simde_mm256_min_epi8
#define _mm256_mul_ps simde_mm256_mul_ps
#define _mm256_mullo_epi32 simde_mm256_mullo_epi32
#define _mm256_set1_epi16 simde_mm256_set1_epi16
#define _mm256_set1_epi8 simde_mm256_set1_epi8
#define _mm256_set1_epi32 simde_mm256_set1_epi32
#define _mm256_set1_ps simde_mm256_set1_ps
#define _mm256_setr_epi32 simde_mm256_setr_epi32
#define _mm256_setzero_ps simde_mm256_setzero_ps
#define _mm256_setzero_si256 simde_mm256_setzero_si256
#define _mm256_sign_epi8 simde_mm256_sign_epi8
#define _mm256_store_si256 simde_mm256_store_si256
#define _mm256_storeu_ps simde_mm256_storeu_ps
#define _mm256_storeu_si256 simde_mm256_storeu_si256
#define _mm256_sub_epi32 simde_mm256_sub_epi32
#define _mm256_xor_si256 simde_mm256_xor_si256
#define _mm512_add_epi32 simde_mm512_add_epi32
#define _mm512_and_si512 simde_mm512_and_si512
#define _mm512_castps_si512 simde_mm512_castps_si512
#define _mm512_castsi512_ps simde_mm512_castsi512_ps
#define _mm512_dpbusd_epi32 simde_mm512_dpbusd_epi32
#define _mm512_fmadd_ps simde_mm512_fmadd_ps
#define _mm512_loadu_ps simde_mm512_loadu_ps
#define _mm512_loadu_si512 simde_mm512_loadu_si512
#define _mm512_storeu_si512 simde_mm512_storeu_si512
#define _mm512_max_epi32 simde_mm512_max_epi32
#define _mm512_max_ps simde_mm512_max_ps
#define _mm512_min_epi32 simde_mm512_min_epi32
#define _mm512_mul_ps simde_mm512_mul_ps
#define _mm512_mullo_epi32 simde_mm512_mullo_epi32
#define _mm512_set1_epi32 simde_mm512_set1_epi32
#define _mm512_set1_ps simde_mm512_set1_ps
#define _mm512_setzero_ps simde_mm512_setzero_ps
#define _mm512_setzero_si512 simde_mm512_setzero_si512
#define _mm512_storeu_ps simde_mm512_storeu_ps
#define _mm512_sub_epi32 simde_mm512_sub_epi32
#define _mm_add_ps simde_mm_add_ps
#define _mm_add_ss simde_mm_add_ss
#define _mm_cvtsi128_si64 simde_mm_cvtsi128_si64
#define _mm_cvtss_f32 simde_mm_cvtss_f32
#define _mm_cvtss_si32 simde_mm_cvtss_si32
#define _mm_movehdup_ps simde_mm_movehdup_ps
#define _mm_movehl_ps simde_mm_movehl_ps
#define _mm_mul_ss simde_mm_mul_ss
#define _mm_packs_epi16 simde_mm_packs_epi16
#define _mm_packs_epi32 simde_mm_packs_epi32
#define _mm_set1_epi8 simde_mm_set1_epi8
#define _mm_set_ss simde_mm_set_ss
#define _mm_xor_si128 simde_mm_xor_si128

#endif
