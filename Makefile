# ntkmem -- build, test, demo, benchmark.
# Libraries come from pkg-config; on clusters with environment modules
# override any of these, e.g.  make MPICC=cc BLAS_LIBS="-lsci" SCALAPACK_LIBS=
MPICC          ?= mpicc
PKG_CONFIG     ?= pkg-config
BLAS_CFLAGS    ?= $(shell $(PKG_CONFIG) --cflags openblas 2>/dev/null)
BLAS_LIBS      ?= $(shell $(PKG_CONFIG) --libs openblas 2>/dev/null)
SCALAPACK_LIBS ?= $(shell $(PKG_CONFIG) --libs scalapack-openmpi 2>/dev/null)
YAML_LIBS      ?= $(shell $(PKG_CONFIG) --libs yaml-0.1 2>/dev/null)
# ELPA (dense eigenvalues) and PARPACK (matrix-free Lanczos); Debian's parpack
# has no working .pc (it needs arpack.pc of libarpack2-dev), so link directly
ELPA_CFLAGS    ?= $(shell $(PKG_CONFIG) --cflags elpa 2>/dev/null)
ELPA_LIBS      ?= $(shell $(PKG_CONFIG) --libs-only-L elpa 2>/dev/null) -lelpa
PARPACK_LIBS   ?= -lparpack
CHECK_CFLAGS   ?= $(shell $(PKG_CONFIG) --cflags check 2>/dev/null)
CHECK_LIBS     ?= $(shell $(PKG_CONFIG) --libs check 2>/dev/null)
CFLAGS         ?= -O2 -g -march=x86-64-v2
WARN           := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wshadow -Wno-unused-parameter -Wno-format-truncation
VERSION        := 0.1.0$(shell git rev-parse --short HEAD >/dev/null 2>&1 && echo -n - && git rev-parse --short HEAD)

B    := build
LIB  := $(B)/libntkmem.a
BIN  := $(B)/ntkmem
# src/<layer>/<module>.c: base (errors), par (ranks, grids, random numbers),
# num (numerics), io (settings, sweeps, files), exp (the experiments)
SRCS := $(filter-out src/main.c,$(wildcard src/*.c src/*/*.c))
OBJS := $(SRCS:src/%.c=$(B)/obj/%.o)
LIBS := $(ELPA_LIBS) $(PARPACK_LIBS) $(SCALAPACK_LIBS) $(BLAS_LIBS) $(YAML_LIBS) -lgfortran -lm
ALL_CFLAGS := $(WARN) $(CFLAGS) $(BLAS_CFLAGS) $(ELPA_CFLAGS) -Iinclude -DNM_VERSION='"$(VERSION)"'

TESTS := $(patsubst tests/%.c,$(B)/%,$(wildcard tests/test_*.c))
TESTLIB := $(B)/testobj/nm_testlib.o

.PHONY: all deps tests demo check sanitize fuzz bench clean plots reproduce FORCE
all: $(BIN)

$(B)/obj/%.o: src/%.c $(wildcard include/*.h)
	@mkdir -p $(dir $@)
	$(MPICC) $(ALL_CFLAGS) -c $< -o $@
# The version string lives in one object, rebuilt whenever the commit changes
# (the stamp is rewritten only then), so a binary never mixes two versions.
$(B)/version.stamp: FORCE
	@mkdir -p $(B); echo '$(VERSION)' | cmp -s - $@ || echo '$(VERSION)' > $@
$(B)/obj/base/version.o: $(B)/version.stamp
FORCE:

# rebuilt from scratch: ar would keep members of modules since moved or removed
$(LIB): $(OBJS)
	rm -f $@
	ar rcs $@ $^
$(BIN): src/main.c $(LIB)
	$(MPICC) $(ALL_CFLAGS) $< $(LIB) $(LIBS) -o $@
# test-only references and readers (tests/nm_testlib.c), linked into the
# test and bench programs but not into the library
$(TESTLIB): tests/nm_testlib.c tests/nm_testlib.h $(wildcard include/*.h)
	@mkdir -p $(dir $@)
	$(MPICC) $(ALL_CFLAGS) -Itests -c $< -o $@
$(B)/test_%: tests/test_%.c tests/nm_test.h $(TESTLIB) $(LIB)
	$(MPICC) $(ALL_CFLAGS) $(CHECK_CFLAGS) -Itests $< $(TESTLIB) $(LIB) $(LIBS) $(CHECK_LIBS) -o $@
$(B)/bench: tests/bench.c $(TESTLIB) $(LIB)
	$(MPICC) $(ALL_CFLAGS) -Itests $< $(TESTLIB) $(LIB) $(LIBS) -o $@
$(B)/bench_%: tests/bench_%.c $(TESTLIB) $(LIB)
	$(MPICC) $(ALL_CFLAGS) -Itests $< $(TESTLIB) $(LIB) $(LIBS) -o $@

deps:
	@scripts/install-deps.sh

# The targets a new user runs first install the packages (deps) and then build
# in a second make: this make read pkg-config before deps ran, so on a machine
# that had nothing its LIBS are empty, the second make's are not.
SUBMAKE := $(MAKE) --no-print-directory
tests: $(TESTS)

demo: deps
	@$(SUBMAKE) all
	@scripts/demo.sh

check: deps
	@$(SUBMAKE) all tests
	@tests/run-all.sh

# make sanitize: the library, ntkmem and every test program built with ASan +
# UBSan in build/san, then the whole suite run against that build.
SAN_B      := build/san
SAN_CFLAGS := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
sanitize: deps
	@$(SUBMAKE) B=$(SAN_B) CFLAGS="$(SAN_CFLAGS)" all tests
	@NTKMEM_BUILD=$(SAN_B) tests/run-all.sh

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

bench: deps
	@$(SUBMAKE) all $(B)/bench $(B)/bench_ntk
	@scripts/bench.sh

clean:
	rm -rf $(B)
