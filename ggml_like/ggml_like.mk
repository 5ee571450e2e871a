# ggml_like/ggml_like.mk: kernel sources and their per-file flags. Never built for the host CPU only: each ISA
# file gets exactly the extensions it uses and runs only after the CPU probe allows it.
# -ffp-contract=off everywhere here: the int8 epilogue must round identically on every ISA.
GGML_COMMON := ggml_like/scalar.c ggml_like/threadpool.c ggml_like/dispatch.c ggml_like/cpu.c ggml_like/roofline.c
NOCONTRACT := -ffp-contract=off
XFLAGS_ggml_like_scalar := $(NOCONTRACT)
XFLAGS_ggml_like_threadpool := $(NOCONTRACT)
XFLAGS_ggml_like_cpu := $(NOCONTRACT)
ifeq ($(ARCH),aarch64)
# aarch64: NEON is baseline; dotprod / i8mm functions carry their own target attributes.
GGML_SRCS += $(GGML_COMMON) ggml_like/neon.c
XFLAGS_ggml_like_dispatch := $(NOCONTRACT) -DDQ_WITH_NEON
XFLAGS_ggml_like_neon := $(NOCONTRACT)
else
# x86-64: every x86 kernel file is built; dispatch.c learns which through DQ_WITH_*.
GGML_SRCS += $(GGML_COMMON) ggml_like/avx2.c ggml_like/avxvnni.c ggml_like/avx512vnni.c ggml_like/amx.c
XFLAGS_ggml_like_dispatch := $(NOCONTRACT) -DDQ_WITH_AVX2 -DDQ_WITH_AVX512VNNI -DDQ_WITH_AMX
XFLAGS_ggml_like_avx2 := $(NOCONTRACT) -mavx2 -mfma -mf16c
XFLAGS_ggml_like_avxvnni := $(NOCONTRACT) -mavx2 -mfma -mf16c -mavxvnni
XFLAGS_ggml_like_avx512vnni := $(NOCONTRACT) -mavx512f -mavx512bw -mavx512vl -mavx512vnni
XFLAGS_ggml_like_amx := $(NOCONTRACT) -mavx512f -mavx512bw -mavx512vl -mavx512vnni -mamx-tile -mamx-int8
endif

# Kernel tests that build the x86 kernel sources against SIMDe (test-only, header-only). -O1: GCC
# 12 took ~105 s at -O2 for each of the two that include avx512vnni.c (SIMDe's portable AVX-512
# inlined into every attention variant), ~40 s at -O1, and the tests run about as fast (3.8
# against 3 s); the optimisation level does not change their arithmetic (-std=c11: no contraction).
XFLAGS_tests_test_kernels_simde_avx2 := -Wno-psabi -O1
XFLAGS_tests_test_kernels_simde_avx512vnni := -Wno-psabi -O1
XFLAGS_tests_test_kernels_amx := -Wno-psabi -O1
XFLAGS_tests_test_kernels_simde_avxvnni := -Wno-psabi -O1
XFLAGS_tests_test_kernels_simde_neon := -Wno-psabi -O1
