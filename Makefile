# Makefile - builds every qvgpu artifact into build/ (build-san/ with SAN=1).
#
#   make              libqshim.so, qarbiter, qgpuctl, libqvgpu.so, the simulated driver
#   make test         builds, then runs the Criterion suite (scripts/run-tests.sh)
#   make test SAN=1   the same under -fsanitize=address,undefined, in build-san/
#   make fuzz         the libFuzzer target of the wire (clang), in BUILD/fuzz/
#   make bench        builds, then runs the benchmarks in bench/ (scripts/run-bench.sh)
#   make install      PREFIX (/usr/local) and DESTDIR honoured
#
# Sources are found by directory, so a new module needs no edit here:
#   proto/*.c                      the wire, linked into every program that speaks it
#   arbiter/*.c                    qarbiter (arbiter/main.c holds main())
#   client/*.c                     libqvgpu.so; client/qgpuctl.c is the qgpuctl program
#   shim/*.c                       libqshim.so
#   sim/cuda*.c, sim/nvml*.c       the simulated libcuda.so.1 / libnvidia-ml.so.1; other
#                                  sim/*.c files are the shared model linked into both
#   tests/test_*.c                 one Criterion binary each; other tests/*.c are support
#   tests/progs/*.c                workload programs the tests run, linked like a real CUDA
#                                  program: against the toolkit's stub libcuda.so
#   bench/*.c                      one benchmark program each
#   tests/fuzz/*.c                 one libFuzzer target each (make fuzz, clang), linked
#                                  with proto/ but its ZeroMQ client (conn.c)

CUDA_HOME ?= /usr/local/cuda
PREFIX    ?= /usr/local
DESTDIR   ?=
SAN       ?= 0

ifeq ($(SAN),1)
BUILD := build-san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
SANDEFS := -DQV_SAN=1
else
BUILD := build
SANFLAGS :=
SANDEFS :=
endif

PKGS      := libzmq msgpack jansson inih
TEST_PKGS := criterion

# Stop early, in one line, when something the build needs is missing; but let
# `make clean` and `make help` work on any machine.
ifneq ($(filter-out clean help,$(or $(MAKECMDGOALS),all)),)
ifeq ($(wildcard $(CUDA_HOME)/include/cuda.h),)
$(error CUDA headers not found in $(CUDA_HOME)/include: install the CUDA toolkit or set CUDA_HOME)
endif
ifneq ($(shell pkg-config --exists $(PKGS) && echo ok),ok)
$(error missing libraries (pkg-config $(PKGS)): run scripts/install-deps.sh)
endif
endif

CFLAGS ?= -O2 -g
override CFLAGS += -std=gnu11 -Wall -Wextra -Werror -fPIC -fvisibility=hidden $(SANFLAGS)
override CPPFLAGS += -D_GNU_SOURCE $(SANDEFS) -Iinclude -I. -I$(BUILD)/gen \
                     -isystem $(CUDA_HOME)/include -MMD -MP
override LDFLAGS += $(SANFLAGS)

PKG_CFLAGS  := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LIBS_WIRE   := $(shell pkg-config --libs libzmq msgpack 2>/dev/null)
LIBS_JSON   := $(shell pkg-config --libs jansson 2>/dev/null)
LIBS_INI    := $(shell pkg-config --libs inih 2>/dev/null)
CUDA_STUB   := -L$(CUDA_HOME)/lib64/stubs -lcuda

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

PROTO_OBJ    := $(call obj,$(wildcard proto/*.c))
ARBITER_OBJ  := $(call obj,$(filter-out arbiter/main.c,$(wildcard arbiter/*.c)))
ARBITER_MAIN := $(call obj,$(wildcard arbiter/main.c))
CLIENT_OBJ   := $(call obj,$(filter-out client/qgpuctl.c,$(wildcard client/*.c)))
QGPUCTL_OBJ  := $(call obj,$(wildcard client/qgpuctl.c))
SHIM_OBJ     := $(call obj,$(wildcard shim/*.c))
SIM_CUDA_OBJ := $(call obj,$(wildcard sim/cuda*.c))
SIM_NVML_OBJ := $(call obj,$(wildcard sim/nvml*.c))
SIM_CORE_OBJ := $(call obj,$(filter-out $(wildcard sim/cuda*.c sim/nvml*.c),$(wildcard sim/*.c)))
SIM_STUB_OBJ := $(BUILD)/obj/gen/sim_stubs.o

TEST_BIN     := $(patsubst tests/%.c,$(BUILD)/tests/%,$(wildcard tests/test_*.c))
TEST_SUP_OBJ := $(call obj,$(filter-out $(wildcard tests/test_*.c),$(wildcard tests/*.c)))
TEST_PROGS   := $(patsubst tests/progs/%.c,$(BUILD)/tests/progs/%,$(wildcard tests/progs/*.c))
BENCH_BIN    := $(patsubst bench/%.c,$(BUILD)/bench/%,$(wildcard bench/*.c))

GEN := $(BUILD)/gen/cuda_procaddr.h

ARTIFACTS := $(BUILD)/libqshim.so $(BUILD)/qarbiter $(BUILD)/qgpuctl $(BUILD)/libqvgpu.so \
             $(BUILD)/sim/libcuda.so.1 $(BUILD)/sim/libnvidia-ml.so.1 $(BUILD)/qvgpu.pc

.PHONY: all test bench fuzz install clean help
all: $(ARTIFACTS)

help:
	@sed -n '3,9p' Makefile

# ---- generated ----------------------------------------------------------------------
$(BUILD)/gen/cuda_procaddr.h: scripts/gen-procaddr.sh
	@mkdir -p $(@D)
	scripts/gen-procaddr.sh $(CUDA_HOME) $@

$(BUILD)/gen/sim_stubs.c: scripts/gen-sim-stubs.sh
	@mkdir -p $(@D)
	scripts/gen-sim-stubs.sh $(CUDA_HOME) $@

# ---- objects ------------------------------------------------------------------------
$(BUILD)/obj/%.o: %.c | $(GEN)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(PKG_CFLAGS) -c $< -o $@

$(BUILD)/obj/gen/%.o: $(BUILD)/gen/%.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

# Tests and benches see the sim's and everyone's internals but export nothing.
$(BUILD)/obj/tests/%.o $(BUILD)/obj/bench/%.o: CFLAGS += $(shell pkg-config --cflags $(TEST_PKGS) 2>/dev/null)

# ---- artifacts ----------------------------------------------------------------------
# The shim must not depend on libcuda: it finds the driver at run time, so that a
# program that never touches CUDA loads no driver, and pass-through stays exact.
$(BUILD)/libqshim.so: $(SHIM_OBJ) $(PROTO_OBJ)
	@mkdir -p $(@D)
	$(CC) -shared -Wl,-soname,libqshim.so -Wl,--no-undefined $(LDFLAGS) -o $@ $^ \
	    $(LIBS_WIRE) -ldl -lpthread

$(BUILD)/libqvgpu.so: $(CLIENT_OBJ) $(PROTO_OBJ)
	@mkdir -p $(@D)
	$(CC) -shared -Wl,-soname,libqvgpu.so -Wl,--no-undefined $(LDFLAGS) -o $@ $^ \
	    $(LIBS_WIRE) -lpthread

$(BUILD)/qgpuctl: $(QGPUCTL_OBJ) $(BUILD)/libqvgpu.so
	$(CC) $(LDFLAGS) -o $@ $(QGPUCTL_OBJ) -L$(BUILD) -lqvgpu \
	    -Wl,-rpath,'$$ORIGIN:$$ORIGIN/../lib' $(LIBS_JSON)

$(BUILD)/qarbiter: $(ARBITER_MAIN) $(ARBITER_OBJ) $(PROTO_OBJ)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS_WIRE) $(LIBS_JSON) $(LIBS_INI) -ldl -lpthread -lm

$(BUILD)/sim/libcuda.so.1: $(SIM_CUDA_OBJ) $(SIM_CORE_OBJ) $(SIM_STUB_OBJ)
	@mkdir -p $(@D)
	$(CC) -shared -Wl,-soname,libcuda.so.1 -Wl,--no-undefined $(LDFLAGS) -o $@ $^ \
	    -lpthread -lrt -lm
	ln -sf libcuda.so.1 $(@D)/libcuda.so

$(BUILD)/sim/libnvidia-ml.so.1: $(SIM_NVML_OBJ) $(SIM_CORE_OBJ)
	@mkdir -p $(@D)
	$(CC) -shared -Wl,-soname,libnvidia-ml.so.1 -Wl,--no-undefined $(LDFLAGS) -o $@ $^ \
	    -lpthread -lrt -lm
	ln -sf libnvidia-ml.so.1 $(@D)/libnvidia-ml.so

# The .pc names PREFIX, so it is made again whenever PREFIX is not the one it was made
# with (prefix.stamp holds that one): `make install PREFIX=...` after a build with another
# PREFIX installs a .pc that names where it is installed. '&', '|' and '\' are escaped
# for sed.
PC_PREFIX := $(subst |,\|,$(subst &,\&,$(subst \,\\,$(PREFIX))))
$(BUILD)/qvgpu.pc: scripts/qvgpu.pc.in $(BUILD)/prefix.stamp
	sed -e 's|@PREFIX@|$(PC_PREFIX)|' $< > $@

$(BUILD)/prefix.stamp: FORCE
	@mkdir -p $(@D)
	@printf '%s\n' '$(PREFIX)' | cmp -s - $@ || printf '%s\n' '$(PREFIX)' > $@

.PHONY: FORCE
FORCE:

# ---- tests and benches --------------------------------------------------------------
# Test binaries link the arbiter's and client's modules (not their main()) and the wire;
# --as-needed keeps libcuda/libnvidia-ml out of those that never call the driver. At run
# time LD_LIBRARY_PATH=$(BUILD)/sim makes them bind to the simulated driver.
TEST_LINK := $(TEST_SUP_OBJ) $(ARBITER_OBJ) $(CLIENT_OBJ) $(PROTO_OBJ)
TEST_LIBS := -Wl,--as-needed $(CUDA_STUB) -L$(BUILD)/sim -lnvidia-ml -Wl,--no-as-needed \
             $(shell pkg-config --libs $(TEST_PKGS) 2>/dev/null) $(LIBS_WIRE) $(LIBS_JSON) \
             $(LIBS_INI) -ldl -lpthread -lrt -lm

$(BUILD)/tests/%: $(BUILD)/obj/tests/%.o $(TEST_LINK) | $(BUILD)/sim/libnvidia-ml.so.1
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $< $(TEST_LINK) $(TEST_LIBS)

$(BUILD)/tests/progs/%: $(BUILD)/obj/tests/progs/%.o
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $< $(CUDA_STUB) -ldl -lpthread -lm

$(BUILD)/bench/%: $(BUILD)/obj/bench/%.o $(TEST_LINK) | $(BUILD)/sim/libnvidia-ml.so.1
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $< $(TEST_LINK) $(TEST_LIBS)

# make test also runs the fuzz target for FUZZ_SECONDS (20) when clang is there.
test: all $(TEST_BIN) $(TEST_PROGS) $(BENCH_BIN)
	@if command -v $(FUZZ_CC) >/dev/null 2>&1; then $(MAKE) --no-print-directory fuzz; \
	 else echo "make test: no $(FUZZ_CC): the fuzz target is not built or run"; fi
	@scripts/run-tests.sh $(BUILD)

bench: all $(TEST_PROGS) $(BENCH_BIN)
	@scripts/run-bench.sh $(BUILD)

# ---- fuzzing ------------------------------------------------------------------------
# libFuzzer needs clang. The proto/ sources are built again with its instrumentation;
# conn.c (the ZeroMQ client) is not reachable from a peer's bytes and stays out.
FUZZ_CC   ?= clang
FUZZ_BIN  := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(wildcard tests/fuzz/*.c))
FUZZ_SRC  := $(filter-out proto/conn.c,$(wildcard proto/*.c))
FUZZ_FLAGS := -g -O1 -std=gnu11 -Wall -Wextra -Werror -fsanitize=fuzzer,address,undefined \
              -fno-sanitize-recover=undefined -D_GNU_SOURCE -Iinclude -I.

fuzz: $(FUZZ_BIN)

$(BUILD)/fuzz/%: tests/fuzz/%.c $(FUZZ_SRC) $(wildcard proto/*.h)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_FLAGS) $(PKG_CFLAGS) -o $@ $< $(FUZZ_SRC) $(shell pkg-config --libs msgpack)

# ---- install ------------------------------------------------------------------------
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib \
	    $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 0755 $(BUILD)/qarbiter $(BUILD)/qgpuctl $(DESTDIR)$(PREFIX)/bin/
	install -m 0755 $(BUILD)/libqvgpu.so $(BUILD)/libqshim.so $(DESTDIR)$(PREFIX)/lib/
	install -m 0644 include/qvgpu.h $(DESTDIR)$(PREFIX)/include/
	install -m 0644 $(BUILD)/qvgpu.pc $(DESTDIR)$(PREFIX)/lib/pkgconfig/

clean:
	rm -rf build build-san

.SECONDARY:
-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
