# dynq Makefile. One portable binary, never built for the host CPU only; SIMD kernels get their own
# per-file flags (ggml_like/ggml_like.mk) and are chosen at run time.
#   make            build ./dynq
#   make run        build, convert the shipped stories260K model to INT8, generate a story
#   make test       every test (tests/run.sh prints "N passed, N failed, N skipped")
#   make test-asan  the same suite with AddressSanitizer + UndefinedBehaviorSanitizer
#   make bench      benchmark script (scripts/bench.sh)
CC      ?= cc
BUILD   ?= build
# Target architecture of the build: x86_64 or aarch64 (cross: make ARCH=aarch64 CC=aarch64-linux-gnu-gcc)
ARCH    ?= $(shell $(CC) -dumpmachine | sed 's/-.*//')
OPT     ?= -O2
# Warnings are errors on gcc and clang alike.
WARN    = -Wall -Wextra -Werror -Wno-unused-parameter
CFLAGS_ALL = -std=c11 -D_GNU_SOURCE $(OPT) -g $(WARN) -pthread -fno-strict-aliasing $(SAN) $(EXTRA_CFLAGS)
LDLIBS  = -lm -pthread $(SAN)

GGML_SRCS :=
include ggml_like/ggml_like.mk
TOK_SRCS := $(wildcard tokenizer/*.c)
LIB_SRCS := common.c model.c quant.c convert.c sample.c perplexity.c $(TOK_SRCS) $(GGML_SRCS)
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/%.o)
TEST_SRCS := $(wildcard tests/test_*.c)
TEST_BINS := $(TEST_SRCS:tests/%.c=$(BUILD)/tests/%)
DYNQ    ?= ./dynq
ifneq ($(BUILD),build)
DYNQ    = $(BUILD)/dynq
endif

.PHONY: all run test test-asan bench clean tests-bin
all: $(DYNQ)

# Per-file extra flags: XFLAGS_<path with / as _> (set by ggml_like.mk for the ISA files).
$(BUILD)/%.o: %.c $(wildcard *.h ggml_like/*.h tokenizer/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(XFLAGS_$(subst /,_,$*)) -c $< -o $@

$(BUILD)/libdynq.a: $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

# Command-line code (prints, exits) stays out of the library the tests link against.
CLI_OBJS := $(BUILD)/main.o $(BUILD)/cli_tokenize.o $(BUILD)/cli_chat.o
$(DYNQ): $(CLI_OBJS) $(BUILD)/libdynq.a
	$(CC) $(CFLAGS_ALL) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: tests/%.c $(BUILD)/libdynq.a $(wildcard tests/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(XFLAGS_tests_$*) -I. -o $@ $< $(BUILD)/libdynq.a $(LDLIBS) $(XLIBS_tests_$*)

# The pty harness needs forkpty from libutil.
XLIBS_tests_test_chat = -lutil

tests-bin: $(TEST_BINS)

models/stories260K.dynq: $(DYNQ) models/stories260K.bin models/tok512.bin
	$(DYNQ) convert models/stories260K.bin --tokenizer models/tok512.bin -o $@

run: models/stories260K.dynq
	$(DYNQ) run -m models/stories260K.dynq -p "Once upon a time" -n 200 --seed 42 --echo

# The test binaries are built with one job per CPU whatever -j the caller gave (`make test` alone
# built them one at a time: in CI on a 2-CPU Zen 3, 21 minutes of which the tests themselves ran
# about 11).
NPROC := $(shell nproc 2>/dev/null || echo 2)
test:
	$(MAKE) -j$(NPROC) $(DYNQ) tests-bin
	DYNQ=$(DYNQ) BUILD=$(BUILD) bash tests/run.sh

test-asan:
	DYNQ_SANITIZED=1 $(MAKE) BUILD=build-asan SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" OPT=-O1 test

bench: $(DYNQ)
	bash scripts/bench.sh

clean:
	rm -rf build build-* dynq models/*.dynq
include tests/fuzz/fuzz.mk
