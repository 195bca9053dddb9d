# ntkmem -- build, test, demo, benchmark, install.
#
# Where the libraries come from, first match wins (docs/install.md):
#   1. the make command line          make SCALAPACK_LIBS="-L/opt/sl/lib -lscalapack"
#   2. config.mk (one site's settings; see config.mk.example; untracked)
#   3. the environment                export BLAS_LIBS=...
#   4. pkg-config, when it knows the package
#   5. a plain -lNAME, linked by $(MPICC): found where the MPI wrapper looks
#      (mpicc -showme), in LIBRARY_PATH / CPATH, or in the compiler's defaults.
# Before the first compile, scripts/check-build-env.sh compiles and links one
# small program per library; a missing one stops the build with one line naming
# the variable to set.  On a Cray:  make MPICC=cc BLAS_LIBS= SCALAPACK_LIBS=
CONFIG_MK ?= config.mk
ifneq ($(wildcard $(CONFIG_MK)),)
include $(CONFIG_MK)
else ifneq ($(origin CONFIG_MK),file)
$(error CONFIG_MK=$(CONFIG_MK): no such file)
endif
MPICC          ?= mpicc
PKG_CONFIG     ?= pkg-config
# nm_pc: pkg-config ARGS of the first of PACKAGES pkg-config knows, else FALLBACK
nm_pc = $(shell for p in $(2); do $(PKG_CONFIG) --exists $$p 2>/dev/null && { $(PKG_CONFIG) $(1) $$p; exit; }; done; echo '$(3)')
# VAR (unless set on the command line, in config.mk or the environment) :=
# nm_pc(ARGS, PACKAGES, FALLBACK), evaluated once and only when used: the
# targets that install the packages first (deps) must not read pkg-config
# before the packages are there.
define nm_default
ifeq ($$(origin $(1)),undefined)
$(1) = $$(eval $(1) := $$(call nm_pc,$(2),$(3),$(4)))$$($(1))
endif
endef
$(eval $(call nm_default,BLAS_CFLAGS,--cflags,openblas flexiblas,))
$(eval $(call nm_default,BLAS_LIBS,--libs,openblas flexiblas,-lopenblas))
$(eval $(call nm_default,SCALAPACK_LIBS,--libs,scalapack-openmpi scalapack,-lscalapack))
# ELPA's .pc is elpa (Debian) or elpa-VERSION (upstream); its Libs repeat
# ScaLAPACK and a reference BLAS, so only its -L is taken
nm_elpa_pc = $(shell $(PKG_CONFIG) --list-all 2>/dev/null | sed -n 's/^\(elpa\(-[0-9][0-9.]*\)\{0,1\}\) .*/\1/p' | sort -V | tail -n 1)
$(eval $(call nm_default,ELPA_CFLAGS,--cflags,$$(nm_elpa_pc),))
ifeq ($(origin ELPA_LIBS),undefined)
ELPA_LIBS = $(eval ELPA_LIBS := $(call nm_pc,--libs-only-L,$(nm_elpa_pc),) -lelpa)$(ELPA_LIBS)
endif
$(eval $(call nm_default,PARPACK_LIBS,--libs,parpack,-lparpack))
$(eval $(call nm_default,YAML_CFLAGS,--cflags,yaml-0.1,))
$(eval $(call nm_default,YAML_LIBS,--libs,yaml-0.1,-lyaml))
$(eval $(call nm_default,CHECK_CFLAGS,--cflags,check,))
$(eval $(call nm_default,CHECK_LIBS,--libs,check,-lcheck))
# Random123 is header-only (no .pc): -I its include directory if needed
RANDOM123_CFLAGS ?=
# the Fortran runtime of ScaLAPACK/ARPACK (empty with a compiler wrapper that adds it)
FC_LIBS        ?= -lgfortran
LDFLAGS        ?=
# x86-64-v2: runs on every x86 node of a cluster built in the last decade
ifeq ($(origin CFLAGS),undefined)
CFLAGS         := -O2 -g $(if $(filter x86_64,$(shell uname -m)),-march=x86-64-v2)
endif
WARN           := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wshadow -Wno-unused-parameter -Wno-format-truncation
VERSION        := 0.1.0$(shell git rev-parse --short HEAD >/dev/null 2>&1 && echo -n - && git rev-parse --short HEAD)

B    := build
LIB  := $(B)/libntkmem.a
BIN  := $(B)/ntkmem
# src/<layer>/<module>.c: base (errors), par (ranks, grids, random numbers),
# num (numerics), io (settings, sweeps, files), exp (the experiments)
SRCS := $(filter-out src/main.c,$(wildcard src/*.c src/*/*.c))
OBJS := $(SRCS:src/%.c=$(B)/obj/%.o)
LIBS = $(LDFLAGS) $(ELPA_LIBS) $(PARPACK_LIBS) $(SCALAPACK_LIBS) $(BLAS_LIBS) $(YAML_LIBS) $(FC_LIBS) -lm
DEP_CFLAGS = $(BLAS_CFLAGS) $(ELPA_CFLAGS) $(YAML_CFLAGS) $(RANDOM123_CFLAGS)
ALL_CFLAGS = $(WARN) $(CFLAGS) $(DEP_CFLAGS) -Iinclude -DNM_VERSION='"$(VERSION)"'

TESTS := $(patsubst tests/%.c,$(B)/%,$(wildcard tests/test_*.c))
TESTLIB := $(B)/testobj/nm_testlib.o

.PHONY: all deps tests demo check sanitize fuzz bench bench-dense clean plots reproduce reproduce-capacity install uninstall FORCE
all: $(BIN)

# The build environment, probed once per set of flags: $(B)/flags.stamp holds
# the compiler, flags and libraries (rewritten only when they change, so a new
# config.mk rebuilds everything); config.ok is the probe of the libraries of
# ntkmem, check.ok that of `check` (only the tests need it).  Every object
# waits for the probe, so a missing library is one line, not a page of errors.
nm_sq = '$(subst ','\'',$(1))'
NM_ENV = MPICC=$(call nm_sq,$(MPICC)) CFLAGS=$(call nm_sq,$(WARN) $(CFLAGS)) LDFLAGS=$(call nm_sq,$(LDFLAGS)) \
    BLAS_CFLAGS=$(call nm_sq,$(BLAS_CFLAGS)) BLAS_LIBS=$(call nm_sq,$(BLAS_LIBS)) \
    SCALAPACK_LIBS=$(call nm_sq,$(SCALAPACK_LIBS)) ELPA_CFLAGS=$(call nm_sq,$(ELPA_CFLAGS)) \
    ELPA_LIBS=$(call nm_sq,$(ELPA_LIBS)) PARPACK_LIBS=$(call nm_sq,$(PARPACK_LIBS)) \
    YAML_CFLAGS=$(call nm_sq,$(YAML_CFLAGS)) YAML_LIBS=$(call nm_sq,$(YAML_LIBS)) \
    RANDOM123_CFLAGS=$(call nm_sq,$(RANDOM123_CFLAGS)) FC_LIBS=$(call nm_sq,$(FC_LIBS))
NM_ENV_CHECK = $(NM_ENV) CHECK_CFLAGS=$(call nm_sq,$(CHECK_CFLAGS)) CHECK_LIBS=$(call nm_sq,$(CHECK_LIBS))
$(B)/flags.stamp: FORCE
	@mkdir -p $(B); echo $(call nm_sq,$(NM_ENV)) | cmp -s - $@ || echo $(call nm_sq,$(NM_ENV)) > $@
$(B)/check-flags.stamp: FORCE
	@mkdir -p $(B); echo $(call nm_sq,$(NM_ENV_CHECK)) | cmp -s - $@ || echo $(call nm_sq,$(NM_ENV_CHECK)) > $@
$(B)/config.ok: $(B)/flags.stamp scripts/check-build-env.sh
	@env $(NM_ENV) NM_PROBE_DIR=$(B) scripts/check-build-env.sh ntkmem
	@touch $@
$(B)/check.ok: $(B)/check-flags.stamp $(B)/config.ok
	@env $(NM_ENV_CHECK) NM_PROBE_DIR=$(B) scripts/check-build-env.sh check
	@touch $@

$(B)/obj/%.o: src/%.c $(wildcard include/*.h) $(B)/config.ok
	@mkdir -p $(dir $@)
	$(MPICC) $(ALL_CFLAGS) -c $< -o $@
# The version string lives in one object, rebuilt whenever the commit changes
# (the stamp is rewritten only then), so a binary never mixes two versions.
$(B)/version.stamp: FORCE
	@mkdir -p $(B); echo '$(VERSION)' | cmp -s - $@ || echo '$(VERSION)' > $@
$(B)/obj/base/version.o: $(B)/version.stamp
$(B)/obj/num/eig.o: src/num/eig_model.inc
FORCE:

# rebuilt from scratch: ar would keep members of modules since moved or removed
$(LIB): $(OBJS)
	rm -f $@
	ar rcs $@ $^
$(BIN): src/main.c $(LIB)
	$(MPICC) $(ALL_CFLAGS) $< $(LIB) $(LIBS) -o $@
# ntkmem whose experiment ids run backwards (its own copy of the catalog;
# the library's is then not linked): tests/t_resume_keys.sh checks that no
# key, and so no CSV, depends on the order of the experiments
$(B)/ntkmem_reordered: src/main.c src/io/catalog.c $(LIB)
	$(MPICC) $(ALL_CFLAGS) -DNM_EXP_REVERSED src/main.c src/io/catalog.c $(LIB) $(LIBS) -o $@
# test-only references and readers (tests/nm_testlib.c), linked into the
# test and bench programs but not into the library
$(TESTLIB): tests/nm_testlib.c tests/nm_testlib.h $(wildcard include/*.h) $(B)/config.ok
	@mkdir -p $(dir $@)
	$(MPICC) $(ALL_CFLAGS) -Itests -c $< -o $@
$(B)/test_%: tests/test_%.c tests/nm_test.h $(TESTLIB) $(LIB) $(B)/check.ok
	$(MPICC) $(ALL_CFLAGS) $(CHECK_CFLAGS) -Itests $< $(TESTLIB) $(LIB) $(LIBS) $(CHECK_LIBS) -o $@
$(B)/bench: tests/bench.c $(TESTLIB) $(LIB)
	$(MPICC) $(ALL_CFLAGS) -Itests $< $(TESTLIB) $(LIB) $(LIBS) -o $@
$(B)/bench_%: tests/bench_%.c $(TESTLIB) $(LIB)
	$(MPICC) $(ALL_CFLAGS) -Itests $< $(TESTLIB) $(LIB) $(LIBS) -o $@

# The Debian packages, where that applies (Debian, and root or sudo); DEPS=no
# skips the step everywhere
DEPS ?= auto
deps:
	@$(if $(filter no,$(DEPS)),:,scripts/install-deps.sh --auto)

# The targets a new user runs first install the packages (deps) and then build
# in a second make: this make read pkg-config before deps ran, so on a machine
# that had nothing its LIBS are empty, the second make's are not.
SUBMAKE := $(MAKE) --no-print-directory
tests: $(TESTS) $(B)/ntkmem_reordered

demo: deps
	@$(SUBMAKE) all
	@scripts/demo.sh

check: deps
	@$(SUBMAKE) all tests
	@tests/run-all.sh

# make sanitize: the library, ntkmem and every test program built with ASan +
# UBSan in build/san, then the whole suite run against that build (the MPI
# unit tests at 3 ranks and the scripts that compare P = 2..4 with P = 1 at
# 1 and 3: make check runs them at 1..4).
SAN_B      := build/san
SAN_CFLAGS := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
sanitize: deps
	@$(SUBMAKE) B=$(SAN_B) CFLAGS="$(SAN_CFLAGS)" all tests
	@NTKMEM_BUILD=$(SAN_B) NTKMEM_TEST_NPS="1 3" NTKMEM_UNIT_NPS=3 tests/run-all.sh

# make fuzz: libFuzzer (clang) on the sweep parser and expansion, seeded with
# tests/fuzz/corpus, and on the CSV reader of --resume and merge, seeded with
# tests/fuzz/corpus_csv; FUZZ_SECONDS bounds each run (make check runs them
# briefly).
FUZZ_B       := build/fuzz
FUZZ_SECONDS ?= 60
fuzz: deps
	@$(SUBMAKE) B=$(FUZZ_B) MPICC="env OMPI_CC=clang mpicc" WARN="-std=c11 -D_GNU_SOURCE -w" \
	    CFLAGS="-O1 -g -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined" \
	    $(FUZZ_B)/fuzz_config $(FUZZ_B)/fuzz_csv
	@tests/fuzz/run.sh $(FUZZ_B)/fuzz_config $(FUZZ_SECONDS)
	@tests/fuzz/run.sh $(FUZZ_B)/fuzz_csv $(FUZZ_SECONDS) tests/fuzz/corpus_csv tests/fuzz/crashes_csv 16384
$(B)/fuzz_%: tests/fuzz/fuzz_%.c $(LIB)
	$(MPICC) $(ALL_CFLAGS) -fsanitize=fuzzer $< $(LIB) $(LIBS) -o $@

# figures of analysis/ (Debian python3 + numpy + matplotlib) from every CSV in results/
plots:
	/usr/bin/python3 analysis/plot.py all $(wildcard results/*.csv) -o results/figures

reproduce: deps
	@$(SUBMAKE) all
	@scripts/reproduce.sh
# the q*(m, d) table of docs/capacity.md (hours on 2 cores: docs/capacity.md "Reproduce")
reproduce-capacity: deps
	@$(SUBMAKE) all
	@scripts/reproduce-capacity.sh

bench: deps
	@$(SUBMAKE) all $(B)/bench $(B)/bench_ntk $(B)/bench_dense $(B)/bench_nystrom
	@scripts/bench.sh
# the dense NTK path at sweep sizes alone (Gram phases, eigen-solvers and the
# cost model build/eig-model.txt, numpy comparison, small-m runs/s): ~3 min
bench-dense: deps
	@$(SUBMAKE) all $(B)/bench_dense
	@scripts/bench-dense.sh

# make install PREFIX=DIR [DESTDIR=STAGE] [MODULEFILES=DIR]: bin/ntkmem,
# bin/ntkmem-plot, share/ntkmem/ and the Lmod modulefile
# MODULEFILES/ntkmem/MODULE_VERSION.lua, by default beside the prefix
# (PREFIX=$HOME/sw/ntkmem -> $HOME/sw/modulefiles; /usr/local ->
# /usr/local/share/modulefiles).  The modulefile loads the modules loaded now
# (MODULE_DEPS, colon-separated; Lmod's LOADEDMODULES).  make uninstall with
# the same PREFIX removes what install listed.  See docs/install.md.
PREFIX         ?= /usr/local
nm_up           = $(patsubst %/,%,$(dir $(patsubst %/,%,$(1))))
MODULEFILES    ?= $(if $(filter /usr /usr/local,$(PREFIX)),$(PREFIX)/share/modulefiles,$(call nm_up,$(PREFIX))/modulefiles)
MODULE_VERSION ?= $(firstword $(subst -, ,$(VERSION)))
MODULE_DEPS    ?= $(LOADEDMODULES)
NM_INSTALL_ENV  = PREFIX=$(call nm_sq,$(PREFIX)) DESTDIR=$(call nm_sq,$(DESTDIR)) \
    MODULEFILES=$(call nm_sq,$(MODULEFILES)) VERSION=$(call nm_sq,$(VERSION)) \
    MODULE_VERSION=$(call nm_sq,$(MODULE_VERSION)) MODULE_DEPS=$(call nm_sq,$(MODULE_DEPS)) \
    PYTHON=$(call nm_sq,$(PYTHON)) NTKMEM_BIN=$(call nm_sq,$(BIN))
install: all
	@env $(NM_INSTALL_ENV) scripts/install.sh install
uninstall:
	@env $(NM_INSTALL_ENV) scripts/install.sh uninstall

clean:
	rm -rf $(B)
