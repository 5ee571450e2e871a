// ggml_like/cpu.c: what the CPU and the OS support. x86-64: CPUID leaves 1 and 7 plus XGETBV
// (an ISA is usable only if the OS saves its register state), and the Linux AMX permission
// request; aarch64: getauxval hardware capabilities.
#include <stdio.h>
#include <string.h>

#include "kernels.h"

#if defined(__x86_64__)
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18

static uint64_t xgetbv0(void) {
    uint32_t lo, hi;
    __asm__ __volatile__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

void dq_cpu_probe(dq_cpu *c) {
    memset(c, 0, sizeof *c);
    unsigned a = 0, b = 0, cx = 0, d = 0;
    if (__get_cpuid(0, &a, &b, &cx, &d)) {
        memcpy(c->vendor, &b, 4);
        memcpy(c->vendor + 4, &d, 4);
        memcpy(c->vendor + 8, &cx, 4);
    }
    unsigned maxleaf = a;
    a = 0;
    if (__get_cpuid(0x80000000u, &a, &b, &cx, &d) && a >= 0x80000004u) {
        unsigned r[12];
        for (unsigned i = 0; i < 3; i++) __get_cpuid(0x80000002u + i, &r[4 * i], &r[4 * i + 1], &r[4 * i + 2], &r[4 * i + 3]);
        memcpy(c->brand, r, 48);
        c->brand[48] = 0;
    }
    if (maxleaf < 1) return;
    __cpuid(1, a, b, cx, d);
    const int base = (int)(a >> 8) & 0xf;  // display family and model, as /proc/cpuinfo shows them
    c->family = base == 0xf ? base + (int)((a >> 20) & 0xff) : base;
    c->model = (int)((a >> 4) & 0xf) | (base == 0x6 || base == 0xf ? (int)((a >> 16) & 0xf) << 4 : 0);
    c->fma = (cx >> 12) & 1;
    c->f16c = (cx >> 29) & 1;
    int osxsave = (cx >> 27) & 1, avx = (cx >> 28) & 1;
    uint64_t xcr0 = osxsave ? xgetbv0() : 0;
    c->os_ymm = avx && (xcr0 & 0x6) == 0x6;                    // SSE + AVX state
    c->os_zmm = c->os_ymm && (xcr0 & 0xe0) == 0xe0;            // opmask, ZMM_Hi256, Hi16_ZMM
    c->os_amx = c->os_zmm && (xcr0 & 0x60000) == 0x60000;     // XTILECFG, XTILEDATA
    if (maxleaf < 7) return;
    __cpuid_count(7, 0, a, b, cx, d);
    unsigned sub = a;
    c->avx2 = (b >> 5) & 1;
    c->avx512f = (b >> 16) & 1;
    c->avx512bw = (b >> 30) & 1;
    c->avx512vl = (b >> 31) & 1;
    c->avx512vnni = (cx >> 11) & 1;
    c->amx_tile = (d >> 24) & 1;
    c->amx_int8 = (d >> 25) & 1;
    if (sub >= 1) {
        __cpuid_count(7, 1, a, b, cx, d);
        c->avxvnni = (a >> 4) & 1;
    }
}

int dq_cpu_request_amx(void) {
    // Linux keeps the 8 KB tile state off until the process asks (kernel >= 5.16).
    return syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
}

#elif defined(__aarch64__)
#include <asm/hwcap.h>
#include <sys/auxv.h>

void dq_cpu_probe(dq_cpu *c) {
    memset(c, 0, sizeof *c);
    snprintf(c->vendor, sizeof c->vendor, "aarch64");
    unsigned long hw = getauxval(AT_HWCAP), hw2 = getauxval(AT_HWCAP2);
    c->neon = (hw & HWCAP_ASIMD) != 0;
    c->asimddp = (hw & HWCAP_ASIMDDP) != 0;
#ifdef HWCAP2_I8MM
    c->i8mm = (hw2 & HWCAP2_I8MM) != 0;
#else
    c->i8mm = (hw2 & (1UL << 13)) != 0;
#endif
}

int dq_cpu_request_amx(void) { return 0; }

#else
void dq_cpu_probe(dq_cpu *c) { memset(c, 0, sizeof *c); }
int dq_cpu_request_amx(void) { return 0; }
#endif

int dq_isa_supported(const dq_cpu *c, dq_isa isa) {
    switch (isa) {
    case DQ_ISA_SCALAR: return 1;
    case DQ_ISA_AVX2: return c->avx2 && c->fma && c->f16c && c->os_ymm;
    case DQ_ISA_AVX512VNNI: return c->avx512f && c->avx512bw && c->avx512vl && c->avx512vnni && c->os_zmm;
    case DQ_ISA_AMX:
        return c->amx_tile && c->amx_int8 && c->os_amx && dq_isa_supported(c, DQ_ISA_AVX512VNNI);
    case DQ_ISA_NEON: return c->neon;
    }
    return 0;
}
