// tests/kernels_simde_neon.h: lets ggml_like/neon.c compile against SIMDe's NEON (portable C on
// x86), so all three NEON variants (plain, dotprod, i8mm) run and are checked on any host; the
// real-instruction run is tests/test_neon_qemu.sh. Test-only. Names are mapped here rather than
// with SIMDE_ENABLE_NATIVE_ALIASES; SIMDe 0.7.4 lacks vcvtnq_s32_f32 and vmmlaq_s32, written
// out below from the Arm ARM definitions.
#ifndef DYNQ_KERNELS_SIMDE_NEON_H
#define DYNQ_KERNELS_SIMDE_NEON_H

#include <math.h>
#include <simde/arm/neon.h>

// FCVTNS: to nearest, ties to even (lrintf in the default rounding mode).
static inline simde_int32x4_t dqn_vcvtnq_s32_f32(simde_float32x4_t a) {
    float f[4];
    int32_t v[4];
    simde_vst1q_f32(f, a);
    for (int i = 0; i < 4; i++) v[i] = (int32_t)lrintf(f[i]);
    return simde_vld1q_s32(v);
}
// SMMLA: r (2x2 int32, row-major) += a (2x8 s8) . b (2x8 s8)^T.
static inline simde_int32x4_t dqn_vmmlaq_s32(simde_int32x4_t r, simde_int8x16_t a, simde_int8x16_t b) {
    int32_t acc[4];
    int8_t av[16], bv[16];
    simde_vst1q_s32(acc, r);
    simde_vst1q_s8(av, a);
    simde_vst1q_s8(bv, b);
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++)
            for (int k = 0; k < 8; k++) acc[2 * i + j] += (int32_t)av[8 * i + k] * bv[8 * j + k];
    return simde_vld1q_s32(acc);
}
#define vcvtnq_s32_f32 dqn_vcvtnq_s32_f32
#define vmmlaq_s32 dqn_vmmlaq_s32

#define int8x8_t simde_int8x8_t
#define int8x16_t simde_int8x16_t
#define int16x8_t simde_int16x8_t
#define int32x2_t simde_int32x2_t
#define int32x4_t simde_int32x4_t
#define float32x4_t simde_float32x4_t

#define vabsq_f32 simde_vabsq_f32
#define vaddq_s32 simde_vaddq_s32
#define vaddvq_f32 simde_vaddvq_f32
#define vaddvq_s32 simde_vaddvq_s32
#define vbslq_f32 simde_vbslq_f32
#define vcgtq_f32 simde_vcgtq_f32
#define vcombine_s16 simde_vcombine_s16
#define vcombine_s32 simde_vcombine_s32
#define vcombine_s8 simde_vcombine_s8
#define vcvtq_f32_s32 simde_vcvtq_f32_s32
#define vdotq_laneq_s32 simde_vdotq_laneq_s32
#define vdotq_s32 simde_vdotq_s32
#define vdup_n_s32 simde_vdup_n_s32
#define vdupq_n_f32 simde_vdupq_n_f32
#define vdupq_n_s32 simde_vdupq_n_s32
#define vdupq_n_s8 simde_vdupq_n_s8
#define vfmaq_f32 simde_vfmaq_f32
#define vget_high_s32 simde_vget_high_s32
#define vget_low_s32 simde_vget_low_s32
#define vget_low_s8 simde_vget_low_s8
#define vld1_s8 simde_vld1_s8
#define vld1q_f32 simde_vld1q_f32
#define vld1q_s32 simde_vld1q_s32
#define vld1q_s8 simde_vld1q_s8
#define vmaxq_s32 simde_vmaxq_s32
#define vminq_s32 simde_vminq_s32
#define vmull_high_s8 simde_vmull_high_s8
#define vmull_s8 simde_vmull_s8
#define vmulq_f32 simde_vmulq_f32
#define vmulq_n_f32 simde_vmulq_n_f32
#define vmulq_n_s32 simde_vmulq_n_s32
#define vpadalq_s16 simde_vpadalq_s16
#define vpaddq_s32 simde_vpaddq_s32
#define vqmovn_s16 simde_vqmovn_s16
#define vqmovn_s32 simde_vqmovn_s32
#define vreinterpret_s8_s32 simde_vreinterpret_s8_s32
#define vreinterpretq_s32_s8 simde_vreinterpretq_s32_s8
#define vreinterpretq_s8_s32 simde_vreinterpretq_s8_s32
#define vst1_s8 simde_vst1_s8
#define vst1q_f32 simde_vst1q_f32
#define vsubq_s32 simde_vsubq_s32
#define vzip1q_s32 simde_vzip1q_s32
#define vzip2q_s32 simde_vzip2q_s32

#endif
