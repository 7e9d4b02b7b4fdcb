# Makefile - builds every qvgpu artifact into build/ (build-san/ with SAN=1).
#
#   make              libqshim.so, qarbiter, qgpuctl, libqvgpu.so, the simulated driver,
#                     spank_qvgpu.so (when libslurm-dev is installed)
#   make test         builds, then runs the Criterion suite (scripts/run-tests.sh)
#   make test SAN=1   the same under -fsanitize=address,undefined, in build-san/
#   make fuzz         the libFuzzer target of the wire (clang), in BUILD/fuzz/
#   make bench        builds, then runs the benchmarks in bench/ (scripts/run-bench.sh)
#   make install      PREFIX (/usr/local) and DESTDIR honoured; the Python package qvgpu
#                     goes to PYTHONDIR (Debian's dist-packages for PREFIX); the shim
#                     bundle to PREFIX/lib/qvgpu/VERSION, PREFIX/lib/qvgpu/current names it
#   make deb          BUILD/qvgpu_VERSION_ARCH.deb (debian/, docs/install.md)
#
# Sources are found by directory, so a new module needs no edit here:
#   proto/*.c                      the wire, linked into every program that speaks it
#   arbiter/*.c                    qarbiter (arbiter/main.c holds main())
#   arbiter/dashboard/*            the dashboard's files, embedded into qarbiter
#   client/*.c                     libqvgpu.so; client/qgpuctl.c is the qgpuctl program
#   shim/*.c                       libqshim.so
#   container/*.c                  the container pieces that run outside the workload:
#                                  hook.c is qvgpu-container-hook, runtime.c is
#                                  qvgpu-container-runtime
#   sim/cuda*.c, sim/nvml*.c       the simulated libcuda.so.1 / libnvidia-ml.so.1; other
#                                  sim/*.c files are the shared model linked into both
#   tests/test_*.c                 one Criterion binary each; other tests/*.c are support
#   tests/progs/*.c                workload programs the tests run, linked like a real CUDA
#                                  program: against the toolkit's stub libcuda.so
#   tests/progs/*.cu               CUDA C++ workloads, built with nvcc (when the toolkit has it)
#   bench/*.c                      one benchmark program each
#   slurm/*.c                      spank_qvgpu.so (slurm/spank_qvgpu.c holds the SPANK entry
#                                  points; the other files are also linked into the tests)
#   tests/fuzz/*.c                 one libFuzzer target each (make fuzz, clang), linked
#                                  with proto/ but its client connection (conn.c, zmtp.c)

CUDA_HOME ?= /usr/local/cuda
PREFIX    ?= /usr/local
LIBDIR    ?= $(PREFIX)/lib
MANDIR    ?= $(PREFIX)/share/man
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
SLURMPLUGINDIR ?= $(LIBDIR)/slurm
DESTDIR   ?=
SAN       ?= 0
# Where `make install` puts the Python package qvgpu: Debian's dist-packages for the
# prefix (/usr/local/lib/python3.N/dist-packages; /usr/lib/python3/dist-packages).
PYTHON    ?= /usr/bin/python3
PYVER     := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
PYTHONDIR ?= $(if $(filter /usr,$(PREFIX)),$(PREFIX)/lib/python3/dist-packages,$(PREFIX)/lib/python$(PYVER)/dist-packages)

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

# Optional parts of qarbiter, built when their library is installed; HTTP=0 or SYSTEMD=0
# leaves one out. Without libmicrohttpd qarbiter serves no HTTP (--http ADDR is refused,
# the HTTP tests skip); without libsystemd it does not tell systemd it is ready (the
# packaged unit, Type=notify, needs it: make deb refuses to build without).
HTTP    ?= $(if $(shell pkg-config --exists libmicrohttpd 2>/dev/null && echo y),1,0)
SYSTEMD ?= $(if $(shell pkg-config --exists libsystemd 2>/dev/null && echo y),1,0)

# Stop early, in one line, when something the build needs is missing; but let
# `make clean` and `make help` work on any machine.
ifneq ($(filter-out clean help,$(or $(MAKECMDGOALS),all)),)
ifeq ($(wildcard $(CUDA_HOME)/include/cuda.h),)
$(error CUDA headers not found in $(CUDA_HOME)/include: install the CUDA toolkit or set CUDA_HOME)
endif
ifneq ($(shell pkg-config --exists $(PKGS) && echo ok),ok)
$(error missing libraries (pkg-config $(PKGS)): run scripts/install-deps.sh)
endif
ifeq ($(HTTP),0)
$(info qarbiter is built without HTTP (no libmicrohttpd-dev, or HTTP=0): no dashboard, /metrics or /api/v1)
endif
ifeq ($(SYSTEMD),0)
$(info qarbiter is built without libsystemd (no libsystemd-dev, or SYSTEMD=0): it will not notify systemd)
endif
endif

CFLAGS ?= -O2 -g
override CFLAGS += -std=gnu11 -Wall -Wextra -Werror -fPIC -fvisibility=hidden $(SANFLAGS)
override CPPFLAGS += -D_GNU_SOURCE $(SANDEFS) -Iinclude -I. -I$(BUILD)/gen \
                     -isystem $(CUDA_HOME)/include -MMD -MP
override LDFLAGS += $(SANFLAGS)

PKG_CFLAGS  := $(shell pkg-config --cflags $(PKGS) $(if $(filter 1,$(HTTP)),libmicrohttpd) \
                 2>/dev/null)
LIBS_WIRE   := $(shell pkg-config --libs libzmq msgpack 2>/dev/null)
LIBS_JSON   := $(shell pkg-config --libs jansson 2>/dev/null)
LIBS_INI    := $(shell pkg-config --libs inih 2>/dev/null)
LIBS_HTTP   := $(if $(filter 1,$(HTTP)),$(shell pkg-config --libs libmicrohttpd 2>/dev/null))
LIBS_SYSTEMD := $(if $(filter 1,$(SYSTEMD)),$(shell pkg-config --libs libsystemd 2>/dev/null))
CUDA_STUB   := -L$(CUDA_HOME)/lib64/stubs -lcuda

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

PROTO_OBJ    := $(call obj,$(wildcard proto/*.c))
# http.c (libmicrohttpd) or http_off.c (none) serves HTTP; notify.c is built with or
# without libsystemd. minimal/qarbiter, for the tests, has neither.
ARBITER_ALL  := $(call obj,$(filter-out arbiter/main.c arbiter/http.c arbiter/http_off.c \
                  arbiter/notify.c,$(wildcard arbiter/*.c))) $(BUILD)/obj/gen/dashboard_assets.o
ARBITER_OBJ  := $(ARBITER_ALL) $(BUILD)/obj/arbiter/notify.o \
                $(BUILD)/obj/arbiter/$(if $(filter 1,$(HTTP)),http,http_off).o
ARBITER_MIN  := $(ARBITER_ALL) $(BUILD)/obj/arbiter/notify_off.o $(BUILD)/obj/arbiter/http_off.o
DASHBOARD    := $(sort $(wildcard arbiter/dashboard/*))
ARBITER_MAIN := $(call obj,$(wildcard arbiter/main.c))
CLIENT_OBJ   := $(call obj,$(filter-out client/qgpuctl.c,$(wildcard client/*.c)))
QGPUCTL_OBJ  := $(call obj,$(wildcard client/qgpuctl.c))
SHIM_OBJ     := $(call obj,$(wildcard shim/*.c))
CONTAINER_MAINS := container/hook.c container/runtime.c
CONTAINER_OBJ := $(call obj,$(filter-out $(CONTAINER_MAINS),$(wildcard container/*.c)))
SIM_CUDA_OBJ := $(call obj,$(wildcard sim/cuda*.c))
SIM_NVML_OBJ := $(call obj,$(wildcard sim/nvml*.c))
SIM_CORE_OBJ := $(call obj,$(filter-out $(wildcard sim/cuda*.c sim/nvml*.c),$(wildcard sim/*.c)))
SIM_STUB_OBJ := $(BUILD)/obj/gen/sim_stubs.o
SLURM_OBJ    := $(call obj,$(filter-out slurm/spank_qvgpu.c,$(wildcard slurm/*.c)))

TEST_BIN     := $(patsubst tests/%.c,$(BUILD)/tests/%,$(wildcard tests/test_*.c))
TEST_SUP_OBJ := $(call obj,$(filter-out $(wildcard tests/test_*.c),$(wildcard tests/*.c)))
TEST_PROGS   := $(patsubst tests/progs/%.c,$(BUILD)/tests/progs/%,$(wildcard tests/progs/*.c))
BENCH_BIN    := $(patsubst bench/%.c,$(BUILD)/bench/%,$(wildcard bench/*.c))

GEN := $(BUILD)/gen/cuda_procaddr.h $(BUILD)/gen/glibc_compat.h

# What runs inside workloads (the shim, the wire it speaks, the simulated driver) binds
# to glibc symbol versions no newer than GLIBC_FLOOR, so that it loads in older images
# than the build machine's (Debian 11, Ubuntu 20.04, RHEL 9); test_bundle checks it.
# Older glibc keeps some of those symbols in libpthread, libdl and librt, which newer
# glibc keeps as empty stubs: the links name them.
GLIBC_FLOOR := 2.31
FLOOR_OBJ := $(SHIM_OBJ) $(PROTO_OBJ) $(SIM_CUDA_OBJ) $(SIM_NVML_OBJ) $(SIM_CORE_OBJ) \
             $(SIM_STUB_OBJ)
FLOOR_CPPFLAGS := -include $(BUILD)/gen/glibc_compat.h
$(FLOOR_OBJ): CPPFLAGS += $(FLOOR_CPPFLAGS)
# route.c defines dlsym and dlvsym: they are the shim's own, not glibc's.
ROUTE_CPPFLAGS := -DQV_GLIBC_OWN_dlsym -DQV_GLIBC_OWN_dlvsym
$(BUILD)/obj/shim/route.o: CPPFLAGS += $(ROUTE_CPPFLAGS)
LIBS_GLIBC_FLOOR := -Wl,--push-state,--no-as-needed -l:libpthread.so.0 -l:libdl.so.2 \
                    -l:librt.so.1 -Wl,--pop-state

# The shim bundle: what a container mounts read-only, and the hook its CDI spec runs.
VERSION := $(shell sed -n 's/^\#define QA_VERSION "\(.*\)"/\1/p' arbiter/version.h)
BUNDLE := $(BUILD)/bundle/libqshim.so $(BUILD)/bundle/qvgpu-container-hook \
          $(BUILD)/bundle/ld.so.preload

# The Debian package (make deb, below). make test builds it where it can: test_package
# skips otherwise, saying why.
DEB_ARCH := $(shell dpkg --print-architecture 2>/dev/null)
DEB      := $(BUILD)/qvgpu_$(VERSION)_$(DEB_ARCH).deb
DEB_WORK := debian/qvgpu debian/.debhelper debian/files debian/qvgpu.substvars \
            debian/debhelper-build-stamp debian/qvgpu.debhelper.log debian/qvgpu.*.debhelper
HAVE_DEB := $(and $(filter 0,$(SAN)),$(filter 1,$(SYSTEMD)),$(shell command -v dh >/dev/null \
              2>&1 && command -v fakeroot >/dev/null 2>&1 && echo y))

ARTIFACTS := $(BUILD)/libqshim.so $(BUILD)/qarbiter $(BUILD)/qgpuctl $(BUILD)/libqvgpu.so \
             $(BUILD)/sim/libcuda.so.1 $(BUILD)/sim/libnvidia-ml.so.1 $(BUILD)/qvgpu.pc \
             $(BUILD)/qarbiter.conf \
             $(BUILD)/qvgpu-container-runtime $(BUILD)/qvgpu-container-hook $(BUNDLE)

# The Slurm plugin is built where Slurm's headers are (libslurm-dev).
SLURM_INCLUDE ?= /usr/include
HAVE_SLURM := $(wildcard $(SLURM_INCLUDE)/slurm/spank.h)
ifneq ($(HAVE_SLURM),)
ARTIFACTS += $(BUILD)/spank_qvgpu.so
endif

.PHONY: all test build-tests bench fuzz install deb clean help
all: $(ARTIFACTS)

help:
	@sed -n '3,12p' Makefile

# ---- generated ----------------------------------------------------------------------
$(BUILD)/gen/cuda_procaddr.h: scripts/gen-procaddr.sh $(BUILD)/flags.stamp
	@mkdir -p $(@D)
	scripts/gen-procaddr.sh $(CUDA_HOME) $@

$(BUILD)/gen/glibc_compat.h: scripts/gen-glibc-compat.sh $(BUILD)/flags.stamp
	@mkdir -p $(@D)
	scripts/gen-glibc-compat.sh $(CC) $(GLIBC_FLOOR) $@

$(BUILD)/gen/sim_stubs.c: scripts/gen-sim-stubs.sh $(BUILD)/flags.stamp
	@mkdir -p $(@D)
	scripts/gen-sim-stubs.sh $(CUDA_HOME) $@

$(BUILD)/gen/dashboard_assets.c: scripts/gen-assets.sh $(DASHBOARD)
	@mkdir -p $(@D)
	scripts/gen-assets.sh $@ $(DASHBOARD)

# ---- objects ------------------------------------------------------------------------
# Every object depends on flags.stamp, which holds the compiler and every flag an object
# may be built with (the target-specific ones included): it is rewritten, and so every
# object made again, only when one of them changes (CFLAGS=..., a new -include, HTTP or
# SYSTEMD found or lost). A header an object includes, generated ones and -include'd ones
# alike, is in its .d file (-MMD), so a header made again rebuilds what includes it; the
# generated files depend on the stamp too (CC decides glibc_compat.h, CUDA_HOME the
# others), and a new -include names its header in the flags, which changes the stamp.
# The text is taken at the end of this file (FLAGS_TEXT), from the global values: a
# target-specific flag would leak into the stamp's recipe through the target that asked
# for it.
TEST_CFLAGS := $(shell pkg-config --cflags $(TEST_PKGS) 2>/dev/null)
$(BUILD)/flags.stamp: FORCE
	@mkdir -p $(@D)
	@printf '%s\n' $(FLAGS_QUOTED) | cmp -s - $@ || printf '%s\n' $(FLAGS_QUOTED) > $@

$(BUILD)/obj/%.o: %.c $(BUILD)/flags.stamp | $(GEN)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(PKG_CFLAGS) -c $< -o $@

$(BUILD)/obj/gen/%.o: $(BUILD)/gen/%.c $(BUILD)/flags.stamp | $(GEN)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(PKG_CFLAGS) -c $< -o $@

# Tests and benches see the sim's and everyone's internals but export nothing.
$(BUILD)/obj/tests/%.o $(BUILD)/obj/bench/%.o: CFLAGS += $(TEST_CFLAGS)

# ---- artifacts ----------------------------------------------------------------------
# The shim must not depend on libcuda: it finds the driver at run time, so that a
# program that never touches CUDA loads no driver, and pass-through stays exact. Nor on
# anything but glibc: it is loaded into workloads of any image, next to whatever
# libraries the application brings (docs/containers.md). proto/zmtp.c stands in for
# libzmq, and msgpack-c is used through its header only; a library it ever needs goes
# in as a static archive behind -Wl,--exclude-libs,ALL.
$(BUILD)/libqshim.so: $(SHIM_OBJ) $(PROTO_OBJ)
	@mkdir -p $(@D)
	$(CC) -shared -Wl,-soname,libqshim.so -Wl,--no-undefined $(LDFLAGS) -o $@ $^ \
	    $(LIBS_GLIBC_FLOOR)

$(BUILD)/libqvgpu.so: $(CLIENT_OBJ) $(PROTO_OBJ)
	@mkdir -p $(@D)
	$(CC) -shared -Wl,-soname,libqvgpu.so -Wl,--no-undefined $(LDFLAGS) -o $@ $^ -lpthread

$(BUILD)/qgpuctl: $(QGPUCTL_OBJ) $(BUILD)/libqvgpu.so
	$(CC) $(LDFLAGS) -o $@ $(QGPUCTL_OBJ) -L$(BUILD) -lqvgpu \
	    -Wl,-rpath,'$$ORIGIN:$$ORIGIN/../lib' $(LIBS_JSON)

# The arbiter speaks ZMTP itself too (proto/router.c): no libzmq.
$(BUILD)/qarbiter: $(ARBITER_MAIN) $(ARBITER_OBJ) $(PROTO_OBJ)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS_JSON) $(LIBS_INI) $(LIBS_HTTP) $(LIBS_SYSTEMD) \
	    -ldl -lpthread -lm

# The build options are in notify.o: it is made again when SYSTEMD changes (flags.stamp).
$(BUILD)/obj/arbiter/notify.o: CPPFLAGS += $(if $(filter 1,$(SYSTEMD)),-DQA_HAVE_SYSTEMD)
$(BUILD)/obj/arbiter/notify_off.o: arbiter/notify.c $(BUILD)/flags.stamp | $(GEN)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

# qarbiter as a machine without libmicrohttpd and libsystemd builds it (test_arbiter_notify).
$(BUILD)/minimal/qarbiter: $(ARBITER_MAIN) $(ARBITER_MIN) $(PROTO_OBJ)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS_JSON) $(LIBS_INI) -ldl -lpthread -lm

$(BUILD)/qvgpu-container-hook: $(call obj,container/hook.c) $(CONTAINER_OBJ) $(PROTO_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS_JSON)

$(BUILD)/qvgpu-container-runtime: $(call obj,container/runtime.c) $(CONTAINER_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS_JSON)

# Copied under a temporary name and renamed: a container running may map the old file,
# which must never change under it.
$(BUILD)/bundle/libqshim.so $(BUILD)/bundle/qvgpu-container-hook: $(BUILD)/bundle/%: $(BUILD)/%
	@mkdir -p $(@D)
	cp $< $@.tmp && mv -f $@.tmp $@

$(BUILD)/bundle/ld.so.preload: proto/container.h
	@mkdir -p $(@D)
	sed -n 's/^#define QP_CTR_BUNDLE_DIR "\(.*\)"/\1\/libqshim.so/p' $< > $@.tmp && mv -f $@.tmp $@

$(BUILD)/sim/libcuda.so.1: $(SIM_CUDA_OBJ) $(SIM_CORE_OBJ) $(SIM_STUB_OBJ)
	@mkdir -p $(@D)
	$(CC) -shared -Wl,-soname,libcuda.so.1 -Wl,--no-undefined $(LDFLAGS) -o $@ $^ \
	    $(LIBS_GLIBC_FLOOR) -lm
	ln -sf libcuda.so.1 $(@D)/libcuda.so

$(BUILD)/sim/libnvidia-ml.so.1: $(SIM_NVML_OBJ) $(SIM_CORE_OBJ)
	@mkdir -p $(@D)
	$(CC) -shared -Wl,-soname,libnvidia-ml.so.1 -Wl,--no-undefined $(LDFLAGS) -o $@ $^ \
	    $(LIBS_GLIBC_FLOOR) -lm
	ln -sf libnvidia-ml.so.1 $(@D)/libnvidia-ml.so

# The .pc names PREFIX and LIBDIR, so it is made again whenever they are not the ones it
# was made with (prefix.stamp holds those): `make install PREFIX=...` after a build with
# another PREFIX installs a .pc that names where it is installed. '&', '|' and '\' are
# escaped for sed.
sed_escape = $(subst |,\|,$(subst &,\&,$(subst \,\\,$(1))))
$(BUILD)/qvgpu.pc: scripts/qvgpu.pc.in $(BUILD)/prefix.stamp
	sed -e 's|@PREFIX@|$(call sed_escape,$(PREFIX))|' \
	    -e 's|@LIBDIR@|$(call sed_escape,$(LIBDIR))|' $< > $@

$(BUILD)/prefix.stamp: FORCE
	@mkdir -p $(@D)
	@printf '%s\n' '$(PREFIX) $(LIBDIR)' | cmp -s - $@ || printf '%s\n' '$(PREFIX) $(LIBDIR)' > $@

# The packaged /etc/qvgpu/qarbiter.conf: every key at its default, from qarbiter itself.
$(BUILD)/qarbiter.conf: $(BUILD)/qarbiter scripts/gen-conffile.sh
	scripts/gen-conffile.sh $(BUILD)/qarbiter $@

.PHONY: FORCE
FORCE:

# slurmd and slurmstepd load spank_qvgpu.so: it is built without sanitizers even under
# SAN=1 (their runtime would have to be loaded first into Slurm's uninstrumented
# programs), and links nothing: no ZeroMQ in Slurm's processes (it runs qgpuctl), and the
# spank_* and slurm_* functions come from the process that loads it. Its default qgpuctl
# is PREFIX's, so it is rebuilt when PREFIX changes.
SPANK_SRC    := $(wildcard slurm/*.c) proto/units.c
SPANK_OBJ    := $(patsubst %.c,$(BUILD)/obj-spank/%.o,$(SPANK_SRC))
SPANK_CFLAGS := -O2 -g -std=gnu11 -Wall -Wextra -Werror -fPIC -fvisibility=hidden

$(BUILD)/obj-spank/%.o: %.c $(BUILD)/prefix.stamp $(BUILD)/flags.stamp
	@mkdir -p $(@D)
	$(CC) -D_GNU_SOURCE -Iinclude -I. -isystem $(SLURM_INCLUDE) -MMD -MP \
	    -DQSL_DEFAULT_QGPUCTL='"$(PREFIX)/bin/qgpuctl"' $(SPANK_CFLAGS) -c $< -o $@

$(BUILD)/spank_qvgpu.so: $(SPANK_OBJ)
	$(CC) -shared -Wl,-soname,spank_qvgpu.so -o $@ $(SPANK_OBJ)

# ---- tests and benches --------------------------------------------------------------
# Test binaries link the arbiter's and client's modules (not their main()) and the wire;
# --as-needed keeps libcuda/libnvidia-ml out of those that never call the driver. At run
# time LD_LIBRARY_PATH=$(BUILD)/sim makes them bind to the simulated driver.
TEST_LINK := $(TEST_SUP_OBJ) $(ARBITER_OBJ) $(CLIENT_OBJ) $(CONTAINER_OBJ) $(SLURM_OBJ) \
             $(PROTO_OBJ)
TEST_LIBS := -Wl,--as-needed $(CUDA_STUB) -L$(BUILD)/sim -lnvidia-ml -Wl,--no-as-needed \
             $(shell pkg-config --libs $(TEST_PKGS) 2>/dev/null) $(LIBS_WIRE) $(LIBS_JSON) \
             $(LIBS_INI) $(LIBS_HTTP) $(LIBS_SYSTEMD) -ldl -lpthread -lrt -lm

$(BUILD)/tests/%: $(BUILD)/obj/tests/%.o $(TEST_LINK) | $(BUILD)/sim/libnvidia-ml.so.1
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $< $(TEST_LINK) $(TEST_LIBS)

# What a build without libmicrohttpd or libsystemd links (http_off.c; notify.c without
# QA_HAVE_SYSTEMD) is tested in every build: these tests link the arbiter as
# minimal/qarbiter has it.
OFF_TESTS := $(BUILD)/tests/test_arbiter_http_off $(BUILD)/tests/test_arbiter_notify_off
OFF_LINK  := $(TEST_SUP_OBJ) $(ARBITER_MIN) $(CLIENT_OBJ) $(CONTAINER_OBJ) $(SLURM_OBJ) \
             $(PROTO_OBJ)
$(OFF_TESTS): $(BUILD)/tests/%: $(BUILD)/obj/tests/%.o $(OFF_LINK) | $(BUILD)/sim/libnvidia-ml.so.1
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $< $(OFF_LINK) $(TEST_LIBS)

$(BUILD)/tests/progs/%: $(BUILD)/obj/tests/progs/%.o
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $< -Wl,--as-needed $(CUDA_STUB) -Wl,--no-as-needed $(PROG_LIBS) \
	    -ldl -lpthread -lm

# The workload built to run on the glibc floor too, for the Debian 11 container tests:
# bound to old symbol versions, started by tests/floor/start.c (docs there).
FLOOR_PROGS := $(BUILD)/tests/floor/shim_work
$(BUILD)/obj/tests/floor/%.o: tests/progs/%.c $(BUILD)/flags.stamp | $(GEN)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(FLOOR_CPPFLAGS) $(CFLAGS) -c $< -o $@
$(BUILD)/obj/tests/floor/start.o: tests/floor/start.c $(BUILD)/flags.stamp | $(GEN)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(FLOOR_CPPFLAGS) $(CFLAGS) -c $< -o $@
$(BUILD)/tests/floor/%: $(BUILD)/obj/tests/floor/%.o $(BUILD)/obj/tests/floor/start.o
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -nostartfiles -o $@ $^ -Wl,--as-needed $(CUDA_STUB) -Wl,--no-as-needed \
	    $(LIBS_GLIBC_FLOOR)

# An application with its own libzmq, and so libstdc++, next to the shim (test_bundle).
$(BUILD)/tests/progs/own_zmq: PROG_LIBS = $(shell pkg-config --libs libzmq 2>/dev/null)

# CUDA C++ workloads (tests/progs/*.cu), built with the toolkit's nvcc as users build
# theirs (the runtime linked statically, nvcc's default); none when it has no nvcc.
NVCC     ?= $(CUDA_HOME)/bin/nvcc
CU_PROGS := $(if $(wildcard $(NVCC)),$(patsubst tests/progs/%.cu,$(BUILD)/tests/progs/%,$(wildcard tests/progs/*.cu)))

$(BUILD)/tests/progs/%: tests/progs/%.cu
	@mkdir -p $(@D)
	$(NVCC) -O2 -o $@ $<

$(BUILD)/bench/%: $(BUILD)/obj/bench/%.o $(TEST_LINK) | $(BUILD)/sim/libnvidia-ml.so.1
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $< $(TEST_LINK) $(TEST_LIBS)

# build-tests: everything `make test` runs, without running it (scripts/gpu-check.sh).
build-tests: all $(TEST_BIN) $(TEST_PROGS) $(CU_PROGS) $(FLOOR_PROGS) $(BENCH_BIN) \
             $(BUILD)/minimal/qarbiter $(if $(HAVE_DEB),$(DEB))

# make test also runs the fuzz target for FUZZ_SECONDS (20) where clang can link a
# libFuzzer program (Debian: clang and libclang-rt-dev, which clang only recommends).
test: build-tests
	@if printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }\n' | \
	    $(FUZZ_CC) -fsanitize=fuzzer,address,undefined -x c -o /dev/null - >/dev/null 2>&1; \
	 then $(MAKE) --no-print-directory fuzz; \
	 else echo "make test: $(FUZZ_CC) cannot link libFuzzer programs here: the fuzz target is not built"; fi
	@scripts/run-tests.sh $(BUILD)

bench: all $(TEST_PROGS) $(BENCH_BIN)
	@scripts/run-bench.sh $(BUILD)

# ---- fuzzing ------------------------------------------------------------------------
# libFuzzer needs clang. The proto/ sources are built again with its instrumentation;
# the client's connection (conn.c, zmtp.c) is not reachable from a peer's bytes and
# stays out.
FUZZ_CC   ?= clang
FUZZ_BIN  := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(wildcard tests/fuzz/*.c))
FUZZ_SRC  := $(filter-out proto/conn.c proto/zmtp.c,$(wildcard proto/*.c))
FUZZ_FLAGS := -g -O1 -std=gnu11 -Wall -Wextra -Werror -fsanitize=fuzzer,address,undefined \
              -fno-sanitize-recover=undefined -D_GNU_SOURCE -Iinclude -I.

fuzz: $(FUZZ_BIN)

$(BUILD)/fuzz/%: tests/fuzz/%.c $(FUZZ_SRC) $(wildcard proto/*.h) $(BUILD)/flags.stamp
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_FLAGS) $(PKG_CFLAGS) -o $@ $< $(FUZZ_SRC)

# ---- install ------------------------------------------------------------------------
# LIBDIR (PREFIX/lib; the package's is multiarch) gets libqvgpu.so, the .pc and
# libqshim.so as a link into the bundle's current version, for LD_PRELOAD=libqshim.so;
# qgpuctl run preloads the versioned file itself.
SHIM_LINK = $(shell realpath -sm --relative-to=$(LIBDIR) $(PREFIX)/lib/qvgpu/current/libqshim.so)
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(LIBDIR)/pkgconfig \
	    $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man3 \
	    $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(BASHCOMPDIR)
	install -m 0755 $(BUILD)/qarbiter $(BUILD)/qgpuctl $(BUILD)/qvgpu-container-runtime \
	    $(DESTDIR)$(PREFIX)/bin/
	scripts/install-bundle.sh $(DESTDIR)$(PREFIX)/lib $(VERSION) $(BUNDLE)
	install -m 0755 $(BUILD)/libqvgpu.so $(DESTDIR)$(LIBDIR)/
	ln -sfn $(SHIM_LINK) $(DESTDIR)$(LIBDIR)/.libqshim.so.tmp
	mv -fT $(DESTDIR)$(LIBDIR)/.libqshim.so.tmp $(DESTDIR)$(LIBDIR)/libqshim.so
	install -m 0644 include/qvgpu.h $(DESTDIR)$(PREFIX)/include/
	install -m 0644 $(BUILD)/qvgpu.pc $(DESTDIR)$(LIBDIR)/pkgconfig/
	install -m 0644 man/qgpuctl.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 0644 man/libqvgpu.3 $(DESTDIR)$(MANDIR)/man3/
	install -m 0644 man/qarbiter.8 $(DESTDIR)$(MANDIR)/man8/
	install -m 0644 dist/qgpuctl.bash-completion $(DESTDIR)$(BASHCOMPDIR)/qgpuctl
	install -d $(DESTDIR)$(PYTHONDIR)/qvgpu
	install -m 0644 python/qvgpu/*.py $(DESTDIR)$(PYTHONDIR)/qvgpu/
	printf '"""Written by make install: where libqvgpu.so is."""\nLIBDIR = "%s"\n' \
	    '$(LIBDIR)' > $(DESTDIR)$(PYTHONDIR)/qvgpu/_installed.py
ifneq ($(HAVE_SLURM),)
	install -d $(DESTDIR)$(SLURMPLUGINDIR)
	install -m 0755 $(BUILD)/spank_qvgpu.so $(DESTDIR)$(SLURMPLUGINDIR)/
endif

# ---- the Debian package -------------------------------------------------------------
# From the build make test ran (debian/rules: `make install` into debian/qvgpu), never
# a sanitizer build, and with libsystemd (the unit is Type=notify). dh's work files in
# debian/ are removed first and after.
deb: $(DEB)

# Not on the .pc and the Slurm plugin, which name PREFIX: debian/rules makes them again
# for /usr (from their sources), and make for PREFIX after it, which must not make the
# package again.
$(DEB): $(filter-out $(BUILD)/qvgpu.pc $(BUILD)/spank_qvgpu.so,$(ARTIFACTS)) \
        $(wildcard debian/* debian/source/* dist/* man/* python/qvgpu/*.py slurm/*.[ch]) \
        scripts/qvgpu.pc.in include/qvgpu.h scripts/install-bundle.sh scripts/gen-conffile.sh \
        README.md $(wildcard docs/*.md)
	@[ "$(SAN)" = 0 ] || \
	    { echo "make deb: not from a sanitizer build (make deb, no SAN=1)" >&2; exit 1; }
	@[ "$(SYSTEMD)" = 1 ] || { echo "make deb: qarbiter.service is Type=notify: qarbiter" \
	    "needs libsystemd (apt-get install libsystemd-dev)" >&2; exit 1; }
	@command -v dh >/dev/null && command -v fakeroot >/dev/null || \
	    { echo "make deb: needs debhelper and fakeroot (scripts/install-deps.sh)" >&2; exit 1; }
	rm -rf $(DEB_WORK)
	@echo "fakeroot debian/rules binary > $(BUILD)/deb.log"
	@fakeroot debian/rules binary > $(BUILD)/deb.log 2>&1 || \
	    { cat $(BUILD)/deb.log; echo "make deb: dh failed (above)" >&2; exit 1; }
	rm -rf $(DEB_WORK)
	@test -f $@ || { echo "make deb: dh made no $@" >&2; exit 1; }

clean:
	rm -rf build build-san $(DEB_WORK)

# What flags.stamp holds (see "objects"): every definition above is in.
FLAGS_TEXT := $(CC) | $(CPPFLAGS) | $(CFLAGS) | $(PKG_CFLAGS) | $(FLOOR_CPPFLAGS) | \
              $(ROUTE_CPPFLAGS) | $(TEST_CFLAGS) | HTTP=$(HTTP) SYSTEMD=$(SYSTEMD) | \
              GLIBC_FLOOR=$(GLIBC_FLOOR) CUDA_HOME=$(CUDA_HOME) | \
              $(FUZZ_CC) $(FUZZ_FLAGS) | $(SPANK_CFLAGS)
FLAGS_QUOTED := '$(subst ','\'',$(FLAGS_TEXT))'

.SECONDARY:
-include $(shell find $(BUILD)/obj $(BUILD)/obj-spank -name '*.d' 2>/dev/null)
