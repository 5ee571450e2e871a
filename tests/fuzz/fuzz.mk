# tests/fuzz/fuzz.mk: libFuzzer harnesses (clang 14, -fsanitize=fuzzer,address,undefined).
# Included from the top-level Makefile, which provides LIB_SRCS, XFLAGS_* and WARN.
#   make fuzz [FUZZ_SECONDS=60]   build every harness, generate seeds, run each in turn
#   make fuzz-smoke               build, then run each briefly on seeds + tests/regress (tests/test_fuzz_smoke.sh)
#   make fuzz-build               only build build-fuzz/fuzz_*
# One harness runs at a time (the machine is shared). Corpora grow in build-fuzz/corpus/<harness>;
# crashes land in build-fuzz/crash/<harness>/ (copy them to tests/regress/<harness>/ once fixed).
FUZZ_CC      ?= clang-14
FUZZ_BUILD   ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_PY      ?= /usr/bin/python3
# ASan + UBSan, every UB report is fatal; -O1 keeps the harnesses fast enough yet debuggable.
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS  := -std=c11 -D_GNU_SOURCE -O1 -g $(WARN) -pthread -fno-strict-aliasing $(FUZZ_SAN)
FUZZ_SRCS    := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_NAMES   := $(FUZZ_SRCS:tests/fuzz/%.c=%)
FUZZ_BINS    := $(FUZZ_NAMES:%=$(FUZZ_BUILD)/%)
FUZZ_OBJS    := $(LIB_SRCS:%.c=$(FUZZ_BUILD)/obj/%.o)

.PHONY: fuzz fuzz-build fuzz-smoke fuzz-seeds

# Library objects: instrumented for coverage (fuzzer-no-link) with the per-file ISA flags.
# The kernel files get ASan alone and no coverage: UBSan's non-recovering checks in their large
# force-inlined functions (vec_f32.h's attention for every pair of cache types) took clang 14
# 173 s for avx512vnni.c and 63 s for scalar.c (21 s and 6 s with ASan alone), most of the smoke
# test's time; their arithmetic is checked under UBSan by the sanitizer suite (make test-asan),
# and coverage of code that does not branch on the input's structure gives the fuzzer nothing.
FUZZ_OBJ_SAN := $(FUZZ_SAN) -fsanitize=fuzzer-no-link
FUZZ_KERNEL_OBJS := $(patsubst %,$(FUZZ_BUILD)/obj/ggml_like/%.o,scalar avx2 avxvnni avx512vnni amx neon)
$(FUZZ_KERNEL_OBJS): FUZZ_OBJ_SAN := -fsanitize=address -fno-omit-frame-pointer
$(FUZZ_BUILD)/obj/%.o: %.c $(wildcard *.h ggml_like/*.h tokenizer/*.h)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(filter-out $(FUZZ_SAN),$(FUZZ_CFLAGS)) $(FUZZ_OBJ_SAN) $(XFLAGS_$(subst /,_,$*)) -c $< -o $@

# main.c with its main() renamed, for the command-line harness.
$(FUZZ_BUILD)/obj/main_fuzz.o: main.c $(wildcard *.h ggml_like/*.h tokenizer/*.h)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -Dmain=dynq_main -c $< -o $@

# The other command sources (cli_*.c) that main.c's command table names.
FUZZ_CLI_OBJS := $(FUZZ_BUILD)/obj/main_fuzz.o $(patsubst %.c,$(FUZZ_BUILD)/obj/%.o,$(wildcard cli_*.c))
$(FUZZ_BUILD)/fuzz_cli: $(FUZZ_CLI_OBJS)
$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_OBJS) $(wildcard tests/fuzz/*.h)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -I. -o $@ $< $(if $(filter cli,$*),$(FUZZ_CLI_OBJS)) $(FUZZ_OBJS) -lm

# Keep the instrumented objects (make would delete them as intermediates).
.SECONDARY: $(FUZZ_OBJS) $(FUZZ_CLI_OBJS)

fuzz-build: $(FUZZ_BINS)

# Seeds are generated from the repo's and $DYNQ_SHARED's valid files (nothing large is committed).
fuzz-seeds: $(DYNQ)
	$(FUZZ_PY) scripts/make_seeds.py --dynq $(DYNQ) --out $(FUZZ_BUILD)/seeds

fuzz: fuzz-build fuzz-seeds
	@for h in $(FUZZ_NAMES); do \
	  mkdir -p $(FUZZ_BUILD)/corpus/$$h $(FUZZ_BUILD)/crash/$$h $(FUZZ_BUILD)/seeds/$$h tests/regress/$$h; \
	  echo "== $$h ($(FUZZ_SECONDS) s)"; \
	  DYNQ_SHARED=$${DYNQ_SHARED:-$(abspath ../shared)} FUZZ_TOKENIZER=$(abspath models/tok512.bin) \
	  $(FUZZ_BUILD)/$$h -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 -timeout=10 -max_len=1200000 -close_fd_mask=3 \
	    -print_final_stats=1 -artifact_prefix=$(abspath $(FUZZ_BUILD))/crash/$$h/ \
	    $(abspath $(FUZZ_BUILD))/corpus/$$h $(abspath $(FUZZ_BUILD))/seeds/$$h $(abspath tests/regress)/$$h 2>&1 | \
	    grep -E '^(stat::number_of_executed_units|stat::peak_rss)|#[0-9]+[[:space:]]+DONE|ERROR|SUMMARY|artifact' ; \
	done

fuzz-smoke: fuzz-build
	DYNQ=$(DYNQ) FUZZ_BUILD=$(FUZZ_BUILD) bash tests/test_fuzz_smoke.sh
