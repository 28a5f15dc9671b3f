# dino.c build. `make` builds build/libdino.a and build/dino; `make test` installs
# what the tests need (scripts/setup.sh), builds, and runs every test binary.
# Dependencies are probed below and reported by `make config`.

CC      ?= cc
BUILD   ?= build
OPT     ?= -O3
CFLAGS  ?=
LDFLAGS ?=

# -march=native only where the compiler accepts it (never -Ofast: it breaks erf GELU).
# Our kernels vectorise differently per instruction set: `make
# NATIVE=-march=x86-64-v3 BUILD=build-v3` builds what an AVX2-only CPU runs.
NATIVE := $(shell $(CC) -march=native -E -x c /dev/null >/dev/null 2>&1 && echo -march=native)

# OpenBLAS: prefer the OpenMP build so BLAS and our kernels share one thread pool.
BLAS_DIR := $(firstword $(wildcard /usr/lib/x86_64-linux-gnu/openblas-openmp /usr/lib/aarch64-linux-gnu/openblas-openmp))
BLAS_INC := $(firstword $(wildcard /usr/include/x86_64-linux-gnu/openblas-openmp /usr/include/aarch64-linux-gnu/openblas-openmp /usr/include/openblas))
ifneq ($(BLAS_DIR),)
  BLAS_LIBS := -L$(BLAS_DIR) -Wl,-rpath,$(BLAS_DIR) -lopenblas
else
  BLAS_LIBS := -lopenblas
endif

PKGS := libpng libzip libcjson zlib
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
PLPLOT_CFLAGS := $(shell pkg-config --cflags plplot 2>/dev/null)
PLPLOT_LIBS   := $(shell pkg-config --libs plplot 2>/dev/null)

# MPI for data-parallel training (docs/DISTRIBUTED.md): on when mpicc is
# found, off with MPI=0 (then use another BUILD folder). The flags come from
# mpicc itself (what `mpicc` would add), so any $(CC) still works.
MPI ?= $(if $(shell command -v mpicc 2>/dev/null),1,0)
ifeq ($(MPI),1)
  MPI_CFLAGS := -DDINO_MPI $(shell mpicc --showme:compile 2>/dev/null)
  MPI_LIBS   := $(shell mpicc --showme:link 2>/dev/null)
endif

WARN   := -Wall -Wextra -Wno-unused-parameter -Wshadow -Wstrict-prototypes
DEFS   := -D_GNU_SOURCE
INCS   := -Isrc $(if $(BLAS_INC),-I$(BLAS_INC)) $(PKG_CFLAGS) $(PLPLOT_CFLAGS) $(MPI_CFLAGS)
# -fno-math-errno: sqrtf and friends need not set errno, so loops that call them
# (AdamW's update) vectorise; every value stays the same (IEEE sqrt is exact).
ALL_CFLAGS := -std=c11 $(OPT) $(NATIVE) -fno-math-errno -fopenmp -g $(WARN) $(DEFS) $(INCS) $(CFLAGS)
# oneDNN (libdnnl-dev): the matmul primitive behind src/gemm.h (fp32 on
# AVX-512 CPUs, bf16 on AVX512-BF16/AMX; docs/ENGINE.md "GEMM backends").
DNNL_LIBS := -ldnnl
LIBS   := $(BLAS_LIBS) $(DNNL_LIBS) $(PKG_LIBS) $(PLPLOT_LIBS) $(MPI_LIBS) -ljpeg -lm -fopenmp $(LDFLAGS)

# Files whose arithmetic must match Pillow bit for bit: no FMA contraction.
EXACT_SRCS := $(wildcard src/image/*.c)

# CUDA backend (src/cuda/, off by default): `make CUDA=1` compiles
# src/cuda/*.cu with nvcc into the library, links cudart and cuBLASLt, defines
# DINO_CUDA, and builds in build-cuda/ unless BUILD is given. The CPU build
# does not change. CUDA_ARCH picks the targets (H100: sm_90 code + PTX).
CUDA ?= 0
ifeq ($(CUDA),1)
  ifeq ($(origin BUILD),file)
    BUILD := build-cuda
  endif
  CUDA_HOME ?= /usr/local/cuda
  NVCC ?= $(CUDA_HOME)/bin/nvcc
  CUDA_ARCH ?= -gencode arch=compute_90,code=[sm_90,compute_90]
  # NVCC_WERROR= keeps warnings warnings (scripts/gpu_check.sh retries with it
  # when another toolkit's nvcc warns where ours does not).
  NVCC_WERROR ?= -Werror all-warnings
  NVCC_FLAGS := -std=c++17 -O3 -lineinfo $(CUDA_ARCH) -Xcompiler -Wall,-Wextra,-Wno-unused-parameter \
                $(NVCC_WERROR) -D_GNU_SOURCE -DDINO_CUDA $(INCS)
  ALL_CFLAGS += -DDINO_CUDA -I$(CUDA_HOME)/include
  LIBS += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublasLt -lcudart -lstdc++
  # NCCL for multi-GPU data parallelism (src/cuda/train_cuda.cu), when installed.
  NCCL ?= $(if $(wildcard $(CUDA_HOME)/include/nccl.h /usr/include/nccl.h),1,0)
  ifeq ($(NCCL),1)
    NVCC_FLAGS += -DDINO_NCCL
    LIBS += -lnccl
  endif
  CU_SRCS := $(wildcard src/cuda/*.cu)
  CU_OBJS := $(CU_SRCS:%.cu=$(BUILD)/%.o)
endif

LIB_SRCS := $(filter-out src/cli/%,$(wildcard src/*.c src/*/*.c))
CLI_SRCS := $(wildcard src/cli/*.c)
TEST_SRCS := $(wildcard tests/test_*.c)
TEST_COMMON := $(filter-out $(TEST_SRCS),$(wildcard tests/*.c))

LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/%.o) $(CU_OBJS)
CLI_OBJS := $(CLI_SRCS:%.c=$(BUILD)/%.o)
TEST_COMMON_OBJS := $(TEST_COMMON:%.c=$(BUILD)/%.o)
TEST_BINS := $(TEST_SRCS:tests/%.c=$(BUILD)/tests/%)

LIB := $(BUILD)/libdino.a
BIN := $(BUILD)/dino

.PHONY: all test check config clean setup asan fuzz bench
.SECONDARY:
all: $(BIN) $(TEST_BINS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(if $(filter $<,$(EXACT_SRCS)),-ffp-contract=off) -MMD -MP -c $< -o $@

$(LIB): $(LIB_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BIN): $(CLI_OBJS) $(LIB)
	$(CC) $(ALL_CFLAGS) $(CLI_OBJS) $(LIB) $(LIBS) -o $@

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(TEST_COMMON_OBJS) $(LIB)
	$(CC) $(ALL_CFLAGS) $< $(TEST_COMMON_OBJS) $(LIB) $(LIBS) -o $@

# CUDA=1 only: nvcc objects, and `make CUDA=1 cuda-test`, which builds and runs
# tests/cuda/test_*.c (test_cuda_ops: every twin against the CPU op;
# test_cuda_train: a training step against the CPU engine; test_cuda_features:
# inference; exit 77 = no device).
ifeq ($(CUDA),1)
$(BUILD)/%.o: %.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCC_FLAGS) -MMD -MP -c $< -o $@

CUDA_TEST_BINS := $(patsubst tests/cuda/%.c,$(BUILD)/tests/cuda/%,$(wildcard tests/cuda/test_*.c))
$(BUILD)/tests/cuda/%: tests/cuda/%.c $(TEST_COMMON_OBJS) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP $< $(TEST_COMMON_OBJS) $(LIB) $(LIBS) -o $@

# Every tests/cuda/test_*.c; exit 77 (no device) counts as skipped.
.PHONY: cuda-test
cuda-test: $(CUDA_TEST_BINS)
	@fail=0; for t in $(CUDA_TEST_BINS); do echo "== $$t"; $$t; rc=$$?; \
	  if [ $$rc -eq 77 ]; then echo "   skipped: no CUDA device"; \
	  elif [ $$rc -ne 0 ]; then echo "   FAILED (exit $$rc)"; fail=1; fi; done; exit $$fail
-include $(CU_OBJS:.o=.d) $(CUDA_TEST_BINS:=.d)
endif

# The test command (same as scripts/test.sh): installs what is missing, builds, runs every test.
test:
	@scripts/test.sh

# Run the tests without the set-up step (for a machine that is already set up).
check: all
	@scripts/run_tests.sh $(BUILD)

setup:
	@scripts/setup.sh

# The whole suite under AddressSanitizer + UndefinedBehaviorSanitizer, in its own build folder.
asan:
	@$(MAKE) --no-print-directory BUILD=build-asan OPT="-O1 -fno-omit-frame-pointer -fsanitize=address,undefined,float-cast-overflow -fno-sanitize-recover=undefined,float-cast-overflow" LDFLAGS="-fsanitize=address,undefined,float-cast-overflow" all
	@ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 LSAN_OPTIONS=suppressions=$(CURDIR)/scripts/lsan.supp:print_suppressions=0 scripts/run_tests.sh build-asan

# libFuzzer targets, one per reader of untrusted input (fuzz/fuzz_*.c): built
# with clang under ASan+UBSan into build-fuzz/ and run FUZZ_SECONDS each by
# scripts/fuzz.sh (FUZZ_TARGETS="image idx" picks some). The wraps turn
# dino_die into a clean refusal and internal errors into crashes (fuzz/fuzz_main.h).
FUZZ_SECONDS ?= 60
fuzz:
	@FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/fuzz.sh
$(BUILD)/fuzz/%: fuzz/%.c fuzz/fuzz_entries.h fuzz/fuzz_main.h $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -fsanitize=fuzzer $< $(LIB) $(LIBS) -Wl,--wrap=dino_die,--wrap=dino_fatal_at -o $@

# dino.c against PyTorch + timm on this machine (bench/run.sh; knobs in its header).
bench: $(BIN)
	@bench/run.sh

config:
	@echo "cc:       $(CC) $(NATIVE)"
	@echo "openblas: $(if $(BLAS_DIR),$(BLAS_DIR) (OpenMP build),system default)"
	@echo "onednn:   $(if $(wildcard /usr/include/dnnl.h),$(DNNL_LIBS),MISSING: run scripts/setup.sh (libdnnl-dev))"
	@echo "packages: $(if $(PKG_LIBS),$(PKG_LIBS),MISSING: run scripts/setup.sh)"
	@echo "plplot:   $(if $(PLPLOT_LIBS),$(PLPLOT_LIBS),missing)"
	@echo "mpi:      $(if $(filter 1,$(MPI)),$(MPI_LIBS) (data-parallel training),off (single process))"
	@echo "cuda:     $(if $(filter 1,$(CUDA)),$(NVCC) $(CUDA_ARCH) (build in $(BUILD)),off (make CUDA=1 builds src/cuda/*.cu))"

clean:
	rm -rf $(BUILD)

-include $(LIB_OBJS:.o=.d) $(CLI_OBJS:.o=.d) $(TEST_COMMON_OBJS:.o=.d) $(TEST_BINS:=.d)
