# tracc — one Makefile. `make` builds build/tracc and build/libtracc.a; `make test` runs
# every test; `make SANITIZE=address,undefined test` does the same under ASan/UBSan
# (in its own build folder). Any variable can be overridden on the command line.

CC       ?= cc
# -O3, not -O2: the trainer's element-wise loops (ReLU and its backward, bias rows) are scalar
# and branchy at -O2 and vectorised at -O3: a 3-block fine-tuning step takes 17% less
# (bench/step_cost.sh, docs/benchmarks.md). Neither
# level reassociates float arithmetic (no -ffast-math; -std=c11 keeps FMA contraction off), so a
# model trained at either is the same to the bit (checked on the paper's three models).
OPT      ?= -O3
SANITIZE ?=
ifeq ($(SANITIZE),)
BUILD    ?= build
SANFLAGS :=
else
BUILD    ?= build/san
SANFLAGS := -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
endif

WARN     := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes
CSTD     := -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE
CFLAGS   ?= $(OPT) -g
ALL_CFLAGS = $(CSTD) $(CFLAGS) $(SANFLAGS) -I. -I$(BUILD)/gen -MMD -MP
LDLIBS   := -lopenblas -ljansson -lm
TEST_LDLIBS := -lcmocka

LIB_DIRS := common compiler/front compiler/interp compiler/back runtime train analysis sweep cli
LIB_SRCS := $(filter-out cli/tracc.c,$(foreach d,$(LIB_DIRS),$(wildcard $(d)/*.c)))
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/gen/parser.o $(BUILD)/obj/gen/lexer.o
# The paper's numbers `tracc report` compares with, built in from paper/*.tsv (one copy of the data).
LIB_OBJS += $(BUILD)/obj/gen/paper_table3.o
LIB      := $(BUILD)/libtracc.a
TRACC    := $(BUILD)/tracc

TEST_SRCS := $(wildcard tests/unit/test_*.c)
TEST_BINS := $(TEST_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
BENCH_SRCS := $(wildcard bench/bench_*.c)
BENCH_BINS := $(BENCH_SRCS:bench/%.c=$(BUILD)/bench/%)

.PHONY: FORCE all test bench check-compile finetune-grid clean test-slurm bench-sweep demo docs-examples docs-check paper paper-quick paper-results
all: $(TRACC) $(LIB)

$(BUILD)/gen/parser.c $(BUILD)/gen/parser.h: compiler/front/parser.y
	@mkdir -p $(BUILD)/gen
	bison -Wall -Werror --defines=$(BUILD)/gen/parser.h -o $(BUILD)/gen/parser.c $<

$(BUILD)/gen/lexer.c $(BUILD)/gen/lexer.h: compiler/front/lexer.l $(BUILD)/gen/parser.h
	@mkdir -p $(BUILD)/gen
	flex --header-file=$(BUILD)/gen/lexer.h -o $(BUILD)/gen/lexer.c $<

$(BUILD)/gen/paper_table3.c: paper/jain2023_table3.tsv
	@mkdir -p $(BUILD)/gen
	{ echo '/* generated from $< by the Makefile: the text of the file as one string */'; \
	  echo 'extern const char srep_paper_table3[];'; echo 'const char srep_paper_table3[] ='; \
	  sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/"/' -e 's/$$/\\n"/' $<; echo ';'; } >$@.tmp && mv $@.tmp $@

# The compiler flags, rewritten only when they change: every object depends on it, so changing
# OPT or CFLAGS (here or on the command line) rebuilds instead of mixing old and new objects.
FLAGS_LINE = $(CC) $(ALL_CFLAGS) $(WARN) | $(LDLIBS)
$(BUILD)/flags: FORCE
	@mkdir -p $(BUILD)
	@echo '$(FLAGS_LINE)' | cmp -s - $@ || echo '$(FLAGS_LINE)' >$@
FORCE:

# Generated code is compiled without our extra warnings.
$(BUILD)/obj/gen/%.o: $(BUILD)/gen/%.c $(BUILD)/gen/parser.h $(BUILD)/gen/lexer.h $(BUILD)/flags
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Wno-unused-function -Wno-sign-compare -c $< -o $@

$(BUILD)/obj/%.o: %.c $(BUILD)/flags | $(BUILD)/gen/parser.h $(BUILD)/gen/lexer.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(WARN) -c $< -o $@

$(LIB): $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(TRACC): $(BUILD)/obj/cli/tracc.o $(LIB)
	$(CC) $(CFLAGS) $(SANFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: tests/unit/%.c $(LIB) $(BUILD)/flags
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(WARN) -o $@ $< $(LIB) $(LDLIBS) $(TEST_LDLIBS)

$(BUILD)/bench/%: bench/%.c $(LIB) $(BUILD)/flags
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(WARN) -o $@ $< $(LIB) $(LDLIBS)

# Every test: cmocka drivers, then the CLI transcript and corpus tests.
# tests/run.sh prints one closing line "N passed, N failed".
test: $(TRACC) $(TEST_BINS)
	@BUILD=$(BUILD) sh tests/run.sh $(TEST_BINS)

# A real single-node Slurm (Debian slurm-wlm + munge, started by the script) runs a sweep's
# slurm.sh; skips with a message when the packages are absent. Not part of `make test`.
test-slurm: $(TRACC)
	@BUILD=$(BUILD) TRACC=$(TRACC) sh tests/slurm/run.sh

# `tracc sweep` scaling (-j 1 vs -j 2) and plan/status on 1,000 jobs: docs/benchmarks.md.
bench-sweep: $(TRACC)
	flock /tmp/tracc-bench.lock sh bench/sweep.sh $(TRACC)

bench: $(TRACC) $(BENCH_BINS)
	@BUILD=$(BUILD) sh bench/run.sh $(BENCH_BINS)

# The long compiler sweep (every example on 10^4 samples at max_len 16 and 64, the Counter at
# 46, length/hist at 256): minutes, so not part of `make test`.
check-compile: $(TRACC)
	sh bench/compile_sweep.sh $(TRACC)

# Issue 7's fine-tuning measurements on the paper's Counter (docs/training.md, "Conditioning and
# the paper's protocol"): both conditionings; unclipped with the paper's init noise and without,
# and clipped with it. 6 x 55 short runs, about 40 minutes on 2 cores.
GRID_JOBS ?= 2
# The paper's Tracr experiments (paper/README.md, docs/reproduction.md): plan, run here with
# PAPER_JOBS jobs at a time, one report. OUT=DIR puts the sweeps under DIR and the report at
# DIR/report.{md,html,json}. PAPER_SWEEPS="jain2023-max ..." runs only the sweeps named;
# PAPER_FROM_RESULTS=1 (make paper) takes the jobs done in paper/results instead of running them.
PAPER_JOBS ?= 2
paper: $(TRACC)
	PAPER_SWEEPS="$(PAPER_SWEEPS)" PAPER_FROM_RESULTS="$(PAPER_FROM_RESULTS)" sh paper/run.sh full $(or $(OUT),runs/paper) $(PAPER_JOBS)

paper-quick: $(TRACC)
	PAPER_SWEEPS="$(PAPER_SWEEPS)" sh paper/run.sh quick $(or $(OUT),runs/paper-quick) $(PAPER_JOBS)

# The report of the results committed in paper/results (sweeps packed without their models,
# paper/results/README.md): seconds, where the sweeps took CPU-hours. OUT=DIR as above.
paper-results: $(TRACC)
	TRACC=$(TRACC) sh paper/results.sh $(or $(OUT),runs/paper-results)

finetune-grid: $(TRACC)
	for c in tracr balanced; do for nk in 1e-3:0 0:0 1e-3:1; do n=$${nk%:*}; k=$${nk#*:}; \
	    TRACC=$(TRACC) bash bench/finetune_grid.sh -c $$c -n $$n -k $$k -j $(GRID_JOBS) \
	        $(BUILD)/grid/$${c}_$${n}_clip$$k || exit 1; done; done

# Coverage-guided fuzzing (libFuzzer; needs clang): every harness in tests/fuzz/ against the
# whole library built with ASan/UBSan in build/fuzz. `make fuzz FUZZ_SECONDS=N` runs each for N
# seconds from its seed corpus (tests/fuzz/corpus/NAME, grown in build/fuzz/corpus/NAME); a crash
# is written to build/fuzz/crash-NAME-* and fails the target. docs/reliability.md.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_NAMES   := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BINS    := $(FUZZ_NAMES:%=build/fuzz/fuzz_%)
.PHONY: fuzz fuzz-build
fuzz-build:
	$(MAKE) --no-print-directory CC=$(FUZZ_CC) BUILD=build/fuzz \
	    SANITIZE=fuzzer-no-link,address,undefined build/fuzz/libtracc.a
	$(MAKE) --no-print-directory $(FUZZ_BINS)
build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c build/fuzz/libtracc.a
	$(FUZZ_CC) $(CSTD) -g -O1 -I. -Ibuild/fuzz/gen -fsanitize=fuzzer,address,undefined \
	    -fno-sanitize-recover=all -o $@ $< build/fuzz/libtracc.a $(LDLIBS)
fuzz: fuzz-build
	sh tests/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_NAMES)

# The README's quick start: the paper's wrapper effect on the Counter in a few seconds.
demo: $(TRACC)
	@TRACC=$(TRACC) sh demo/quickstart.sh

# The example transcripts of README.md and docs/*.md (tests/docs/README.md): docs-check runs
# every one, the slow pages included (docs/analysis.md: minutes); `make test` runs all but the
# slow pages. docs-examples rewrites their outputs with what this build prints (review with
# git diff).
docs-check: $(TRACC)
	TRACC=$(TRACC) python3 tests/docs/check_examples.py --slow

docs-examples: $(TRACC)
	TRACC=$(TRACC) python3 tests/docs/check_examples.py --regen

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
