# Crucible — one binary (build/crucible), one test runner (build/crucible_tests).
# Optional parts are detected and reported: CUDA (nvcc; NO_CUDA=1 turns it off),
# MPI (mpicc; NO_MPI=1 turns it off). The CPU path never needs either.

CC       := gcc
BUILD    := build
GEN      := $(BUILD)/gen
OBJ      := $(BUILD)/obj

CFLAGS   := -std=c17 -O2 -g -Wall -Wextra -Werror -Wno-format-truncation -fopenmp -D_GNU_SOURCE -I. -I$(GEN) -MMD -MP
LDLIBS   := -lopenblas -lcjson -lpcre2-8 -lsqlite3 -lseccomp -lgit2 -lz -lm -lpthread
LDFLAGS  := -fopenmp

# Every module is a library folder; the CLI and the trainers join them.
MODULES  := core model model/cpu data sandbox reward rollout sft grpo
LIB_SRC  := $(foreach m,$(MODULES),$(wildcard $(m)/*.c))
CLI_SRC  := $(wildcard cli/*.c)
CMD_NAMES:= $(sort $(patsubst cli/cmd_%.c,%,$(wildcard cli/cmd_*.c)))
TEST_SRC := $(filter-out tests/main.c,$(wildcard tests/*/*.c tests/*.c))
TEST_SRC := $(filter-out tests/fuzz/%,$(TEST_SRC))
BENCH_SRC:= $(wildcard bench/*.c)
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)

FEATURES := cpu openblas openmp

# ---- CUDA (optional) -------------------------------------------------------------
ifneq ($(NO_CUDA),1)
NVCC := $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
endif
CU_SRC := $(wildcard model/cuda/*.cu rollout/cuda/*.cu)
ifneq ($(NVCC),)
ifneq ($(CU_SRC),)
CUDA_HOME  := $(patsubst %/bin/nvcc,%,$(NVCC))
CUDA_ARCH  ?= -gencode=arch=compute_90a,code=sm_90a
NVCCFLAGS  := -O2 -std=c++17 $(CUDA_ARCH) -I. -I$(GEN) -Xcompiler -Wall,-Wextra,-Werror,-fPIC -Werror all-warnings
CFLAGS     += -DCRUCIBLE_CUDA -I$(CUDA_HOME)/include
LDLIBS     += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcudart -lcublas -lcublasLt -lstdc++
FEATURES   += cuda
CU_OBJ     := $(patsubst %.cu,$(OBJ)/%.cu.o,$(CU_SRC))
endif
endif

# ---- MPI (optional) --------------------------------------------------------------
ifneq ($(NO_MPI),1)
MPICC := $(shell command -v mpicc 2>/dev/null)
endif
ifneq ($(MPICC),)
CFLAGS   += -DCRUCIBLE_MPI $(shell $(MPICC) --showme:compile 2>/dev/null)
LDLIBS   += $(shell $(MPICC) --showme:link 2>/dev/null)
FEATURES += mpi
endif

LIB_OBJ   := $(patsubst %.c,$(OBJ)/%.o,$(LIB_SRC)) $(OBJ)/gen/version.o $(CU_OBJ)
CLI_OBJ   := $(patsubst %.c,$(OBJ)/%.o,$(CLI_SRC))
TEST_OBJ  := $(patsubst %.c,$(OBJ)/%.o,$(TEST_SRC)) $(OBJ)/tests/main.o
LIB       := $(BUILD)/libcrucible.a

.PHONY: all deps test check-all demo bench fuzz fuzz-run clean features cuda-check
.DEFAULT_GOAL := all

all: features $(BUILD)/crucible

features:
	@echo "crucible build: $(FEATURES)$(if $(NVCC),, (no nvcc: CUDA off))$(if $(MPICC),, (no mpicc: MPI off))"

$(BUILD)/crucible: $(CLI_OBJ) $(LIB)
	@echo "  LD    $@"
	@$(CC) $(LDFLAGS) -o $@ $(CLI_OBJ) $(LIB) $(LDLIBS)

$(LIB): $(LIB_OBJ)
	@rm -f $@
	@echo "  AR    $@"
	@ar rcs $@ $^

$(OBJ)/%.o: %.c | $(GEN)/commands.h $(GEN)/test_list.h
	@mkdir -p $(dir $@)
	@echo "  CC    $<"
	@$(CC) $(CFLAGS) -c $< -o $@

$(OBJ)/%.cu.o: %.cu
	@mkdir -p $(dir $@)
	@echo "  NVCC  $<"
	@$(NVCC) $(NVCCFLAGS) -c $< -o $@

# The dispatcher's table: one X(name) per cli/cmd_NAME.c.
$(GEN)/commands.h: $(wildcard cli/cmd_*.c) Makefile
	@mkdir -p $(GEN)
	@printf '%s\n' $(foreach c,$(CMD_NAMES),"X($(c))") > $@.tmp && mv $@.tmp $@

# The test runner's table: every TEST(name) in tests/.
$(GEN)/test_list.h: $(TEST_SRC) Makefile
	@mkdir -p $(GEN)
	@cat /dev/null $(TEST_SRC) | sed -n 's/^TEST(\([A-Za-z0-9_]*\)).*/X(\1)/p' > $@.tmp && mv $@.tmp $@

# Source commit and features, rewritten only when they change.
$(GEN)/version.c: FORCE
	@mkdir -p $(GEN)
	@c=$$(git rev-parse --verify -q HEAD 2>/dev/null || echo unknown); \
	 d=$$(git diff --quiet HEAD 2>/dev/null || echo -dirty); \
	 printf 'const char crucible_git_commit[] = "%s%s";\nconst char crucible_build_features[] = "%s";\n' \
	   "$$c" "$$d" "$(FEATURES)" > $@.tmp; \
	 cmp -s $@.tmp $@ && rm -f $@.tmp || mv $@.tmp $@
$(OBJ)/gen/version.o: $(GEN)/version.c
	@mkdir -p $(dir $@)
	@$(CC) $(CFLAGS) -c $< -o $@
FORCE:

$(BUILD)/crucible_tests: $(TEST_OBJ) $(LIB)
	@echo "  LD    $@"
	@$(CC) $(LDFLAGS) -o $@ $(TEST_OBJ) $(LIB) $(LDLIBS)

# ---- what users and CI run -------------------------------------------------------
DEB_PKGS := gcc g++ make git pkg-config python3 python3-numpy libopenblas-dev libcjson-dev libpcre2-dev \
            libsqlite3-dev libseccomp-dev libgit2-dev zlib1g-dev libopenmpi-dev openmpi-bin

deps:
	@missing=$$(for p in $(DEB_PKGS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "make deps: installing" $$missing; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "make deps: missing Debian packages:" $$missing "(run 'make deps' as root)"; exit 1; fi; \
	fi

test: deps
	@$(MAKE) --no-print-directory all $(BUILD)/crucible_tests
	./$(BUILD)/crucible_tests

check-all: deps
	@$(MAKE) --no-print-directory all $(BUILD)/crucible_tests
	CRUCIBLE_CHECK_ALL=1 ./$(BUILD)/crucible_tests
	@$(MAKE) --no-print-directory fuzz-run

demo: deps
	@$(MAKE) --no-print-directory all
	@sh configs/tiny/demo.sh

# ---- benchmarks ------------------------------------------------------------------
BENCH_BIN := $(patsubst bench/%.c,$(BUILD)/bench/%,$(BENCH_SRC))
bench: all $(BENCH_BIN)
$(BUILD)/bench/%: $(OBJ)/bench/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

# ---- CUDA check: op tests against the CPU path, GPU benchmarks (ops, training step, decode),
# compute-sanitizer over the CUDA tests, status table last ----
cuda-check:
	@$(MAKE) --no-print-directory all $(BUILD)/crucible_tests $(BUILD)/bench/cuda_ops_bench $(BUILD)/bench/cuda_train_step \
	  $(BUILD)/bench/cuda_decode
	@sh tests/cuda/cuda_check.sh

# ---- fuzzing (libFuzzer, clang) --------------------------------------------------
# The parsers live in core/, model/ and data/: those are compiled once with ASan/UBSan and
# libFuzzer coverage into a library; each tests/fuzz/fuzz_NAME.c links against it.
FUZZ_CC    := clang
FUZZ_CFLAGS:= -std=c17 -O1 -g -Wno-pass-failed -fsanitize=fuzzer-no-link,address,undefined -fopenmp -D_GNU_SOURCE -I. -I$(GEN) -DCRUCIBLE_FUZZ
FUZZ_LIB_SRC := $(foreach m,core model model/cpu data,$(wildcard $(m)/*.c))
FUZZ_OBJ   := $(patsubst %.c,$(BUILD)/fuzzobj/%.o,$(FUZZ_LIB_SRC)) $(BUILD)/fuzzobj/gen/version.o
FUZZ_BIN   := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRC))
FUZZ_LIBS  := -lopenblas -lcjson -lpcre2-8 -lsqlite3 -lgit2 -lz -lm -lpthread
fuzz: $(FUZZ_BIN)
.SECONDARY: $(FUZZ_OBJ)
$(BUILD)/fuzzobj/%.o: %.c | $(GEN)/commands.h $(GEN)/test_list.h
	@mkdir -p $(dir $@)
	@echo "  FUZZCC $<"
	@$(FUZZ_CC) $(FUZZ_CFLAGS) -c $< -o $@
$(BUILD)/fuzzobj/gen/version.o: $(GEN)/version.c
	@mkdir -p $(dir $@)
	@$(FUZZ_CC) $(FUZZ_CFLAGS) -c $< -o $@
$(BUILD)/fuzz/%: tests/fuzz/%.c $(FUZZ_OBJ)
	@mkdir -p $(dir $@)
	@echo "  FUZZLD $@"
	@$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_OBJ) $(FUZZ_LIBS)
fuzz-run: fuzz
	@for f in $(FUZZ_BIN); do echo "fuzz: $$f (30 s)"; \
	  mkdir -p $(BUILD)/fuzz/corpus-$$(basename $$f); \
	  $$f -max_total_time=30 -timeout=5 -rss_limit_mb=2048 -artifact_prefix=$(BUILD)/fuzz/ \
	    $(BUILD)/fuzz/corpus-$$(basename $$f) \
	    $$( [ -d tests/fuzz/seeds/$$(basename $$f) ] && echo tests/fuzz/seeds/$$(basename $$f) ) || exit 1; done

clean:
	rm -rf $(BUILD)

-include $(shell find $(OBJ) $(BUILD)/fuzz/obj -name '*.d' 2>/dev/null)
