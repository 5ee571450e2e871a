# ggml_like/ggml_like.mk: kernel sources and their per-file flags. No -march=native: each ISA
# file gets exactly the extensions it uses and is only called after the CPU probe allows it.
# -ffp-contract=off everywhere here: the int8 epilogue must round identically on every ISA.
GGML_COMMON := ggml_like/scalar.c ggml_like/threadpool.c ggml_like/dispatch.c ggml_like/cpu.c
NOCONTRACT := -ffp-contract=off
XFLAGS_ggml_like_scalar := $(NOCONTRACT)
XFLAGS_ggml_like_dispatch := $(NOCONTRACT)
XFLAGS_ggml_like_threadpool := $(NOCONTRACT)
XFLAGS_ggml_like_cpu := $(NOCONTRACT)
ifeq ($(ARCH),aarch64)
GGML_SRCS += $(GGML_COMMON)
else
GGML_SRCS += $(GGML_COMMON)
endif
