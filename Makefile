# cordon build. `make` builds build/cordon and the static test helper; `make SAN=1` builds an
# ASan+UBSan variant into build-san/.
CC ?= cc
SAN ?= 0
WERROR ?= 0
BUILD := $(if $(filter 1,$(SAN)),build-san,build)

WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 \
	-Wimplicit-fallthrough -Wwrite-strings -fno-common -Wno-unused-parameter
HARDEN := -D_FORTIFY_SOURCE=3 -fstack-protector-strong -fstack-clash-protection -fPIE
CFLAGS_BASE := -std=gnu11 -O2 -g -D_GNU_SOURCE $(WARN) -Isrc
ifeq ($(WERROR),1)
CFLAGS_BASE += -Werror
endif
ifeq ($(SAN),1)
CFLAGS_BASE += -fsanitize=address,undefined -fno-omit-frame-pointer -U_FORTIFY_SOURCE
HARDEN := -fstack-protector-strong -fPIE
LDSAN := -fsanitize=address,undefined
endif
LDFLAGS_BASE := -pie -Wl,-z,relro,-z,now $(LDSAN)

PKGS := libseccomp jansson libarchive
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
PKG_CFLAGS += $(shell pkg-config --cflags sqlite3 2>/dev/null)
# What each program links: `cordon` (run, version) stays light so a launch loads little;
# libarchive's tree (libxml2, ICU, ...) only in cordon-image; libseccomp only in the build-time
# filter generator and the unit tests (the filter itself is embedded).
LIBS_CORDON := -Wl,--as-needed $(shell pkg-config --libs jansson 2>/dev/null)
# `cordon` itself is a static PIE (glibc and jansson from their Debian .a files): a launch then
# maps no shared library and skips the dynamic loader's relocation work (~0.4 ms of every
# `cordon run`, bench/launch). ASan needs its dynamic runtime, so the sanitizer build stays
# dynamic. ASLR is kept (PIE), and RELRO/BIND_NOW apply to the static image too.
ifneq ($(SAN),1)
LDFLAGS_CORDON := -static-pie
endif
LIBS_IMAGE := -Wl,--as-needed $(shell pkg-config --libs libarchive 2>/dev/null)
# cordon-serve, the daemon (`cordon serve` execs it): HTTP, JSON, SQL, libcrypto, libcurl
# (signed callbacks) and libarchive (daiv workspaces, with the CLI's safe extraction).
SERVE_PKGS := libmicrohttpd jansson sqlite3 libcrypto libcurl libarchive
LIBS_SERVE := -Wl,--as-needed $(shell pkg-config --libs $(SERVE_PKGS) 2>/dev/null) -lpthread -lm
SERVE_CFLAGS := $(shell pkg-config --cflags $(SERVE_PKGS) 2>/dev/null)

CORE_SRC := $(wildcard src/core/*.c)
IMAGE_ONLY := src/cli/image-main.c src/cli/image.c src/cli/extract.c
CLI_SRC := $(filter-out $(IMAGE_ONLY),$(wildcard src/cli/*.c))
SERVE_SRC := $(wildcard src/server/*.c)
SERVE_OBJ := $(SERVE_SRC:%.c=$(BUILD)/%.o) $(BUILD)/src/cli/extract.o $(BUILD)/src/cli/rmtree.o
CORE_OBJ := $(CORE_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ := $(CLI_SRC:%.c=$(BUILD)/%.o)
IMAGE_OBJ := $(IMAGE_ONLY:%.c=$(BUILD)/%.o) $(filter-out $(BUILD)/src/cli/main.o \
	$(BUILD)/src/cli/run%.o $(BUILD)/src/cli/result.o $(BUILD)/src/cli/doctor.o \
	$(BUILD)/src/cli/spawn%.o $(BUILD)/src/cli/harness.o,$(CLI_OBJ))
# Unit tests: each tests/unit-NAME.c is one program, $(BUILD)/unit-NAME, linked against the
# core as a static archive (the linker takes only the objects a test uses). They print TAP-like
# lines and a last line "N passed, N failed"; scripts/test runs them.
# The state store (src/store/): its own archive, so only the daemon and unit-store link sqlite3.
STORE_SRC := $(wildcard src/store/*.c)
STORE_OBJ := $(STORE_SRC:%.c=$(BUILD)/%.o)
LIBS_STORE := $(shell pkg-config --libs sqlite3 2>/dev/null) -lpthread
UNIT_SRC := $(wildcard tests/unit-*.c)
UNIT_BIN := $(UNIT_SRC:tests/%.c=$(BUILD)/%)

all: $(BUILD)/cordon $(BUILD)/cordon-image $(BUILD)/cordon-serve $(BUILD)/cordon-test-helper \
	$(BUILD)/libcordon-store.a $(BUILD)/cordon-enosys

$(BUILD)/%.o: %.c $(wildcard src/core/*.h src/cli/*.h src/server/*.h src/store/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) $(HARDEN) $(PKG_CFLAGS) $(SERVE_CFLAGS) $(CFLAGS) -c -o $@ $<

# The default seccomp filter is compiled at build time (tools/gen-filter.c) and embedded.
$(BUILD)/gen-filter: tools/gen-filter.c src/core/filter.c src/core/util.c src/core/filter.h
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -O2 -D_GNU_SOURCE -Isrc -o $@ tools/gen-filter.c src/core/filter.c \
		src/core/util.c $(shell pkg-config --cflags --libs libseccomp)
$(BUILD)/filter-bpf.inc: $(BUILD)/gen-filter
	$< > $@.tmp && mv $@.tmp $@
$(BUILD)/src/core/filter-default.o: $(BUILD)/filter-bpf.inc
$(BUILD)/src/core/filter-default.o: CFLAGS += -I$(BUILD)
# The harness programs are embedded with .incbin (src/cli/harness.c).
$(BUILD)/src/cli/harness.o: $(wildcard src/cli/harness/*)

$(BUILD)/cordon: $(CLI_OBJ) $(BUILD)/libcordon-core.a
	$(CC) $(LDFLAGS_BASE) $(LDFLAGS_CORDON) $(LDFLAGS) -o $@ $^ $(LIBS_CORDON)

$(BUILD)/cordon-image: $(IMAGE_OBJ) $(BUILD)/libcordon-core.a
	$(CC) $(LDFLAGS_BASE) $(LDFLAGS) -o $@ $^ $(LIBS_IMAGE)

$(BUILD)/cordon-serve: $(SERVE_OBJ) $(BUILD)/libcordon-store.a $(BUILD)/libcordon-core.a
	$(CC) $(LDFLAGS_BASE) $(LDFLAGS) -o $@ $^ $(LIBS_SERVE)

# The helper runs inside sandboxes and images with no libc of their own: static, no sanitizer.
$(BUILD)/cordon-test-helper: tests/helper.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -O2 -D_GNU_SOURCE -Wall -Wextra -static -o $@ $<

# Test tool: runs a command with chosen system calls failing ENOSYS (the kernel-fallback lane).
$(BUILD)/cordon-enosys: tests/enosys.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -O2 -D_GNU_SOURCE $(WARN) -static -o $@ $<

$(BUILD)/libcordon-core.a: $(CORE_OBJ)
	$(AR) rcs $@ $^

$(BUILD)/libcordon-store.a: $(STORE_OBJ)
	$(AR) rcs $@ $^

# The daemon's parts without main(), for its unit tests.
$(BUILD)/libcordon-server.a: $(filter-out $(BUILD)/src/server/main.o,$(SERVE_OBJ))
	$(AR) rcs $@ $^

# The daemon's unit tests: tests/unit-server.c (validation, plans, keys), tests/unit-http.c
# (the HTTP core in-process over loopback).
$(BUILD)/unit-server $(BUILD)/unit-http: $(BUILD)/unit-%: tests/unit-%.c $(BUILD)/libcordon-server.a \
		$(BUILD)/libcordon-store.a $(BUILD)/libcordon-core.a $(wildcard src/core/*.h src/server/*.h)
	$(CC) $(CFLAGS_BASE) $(HARDEN) $(PKG_CFLAGS) $(SERVE_CFLAGS) $(CFLAGS) $(LDFLAGS_BASE) \
		$(LDFLAGS) -o $@ $< $(BUILD)/libcordon-server.a $(BUILD)/libcordon-store.a \
		$(BUILD)/libcordon-core.a $(LIBS_SERVE)

# Schema migrations (src/store/migrations/NNNN_name.sql) are embedded at build time.
MIGRATIONS := $(sort $(wildcard src/store/migrations/*.sql))
$(BUILD)/store-migrations.inc: $(MIGRATIONS) tools/embed-sql.sh
	@mkdir -p $(dir $@)
	tools/embed-sql.sh $(MIGRATIONS) > $@.tmp && mv $@.tmp $@
$(BUILD)/src/store/store-sqlite.o: $(BUILD)/store-migrations.inc
$(BUILD)/src/store/store-sqlite.o: CFLAGS += -I$(BUILD)

# unit-store links the store and sqlite3 (and pthreads for its concurrency tests).
$(BUILD)/unit-store: tests/unit-store.c $(BUILD)/libcordon-store.a $(BUILD)/libcordon-core.a \
		$(wildcard src/core/*.h src/store/*.h)
	$(CC) $(CFLAGS_BASE) $(HARDEN) $(PKG_CFLAGS) $(CFLAGS) $(LDFLAGS_BASE) $(LDFLAGS) -o $@ $< \
		$(BUILD)/libcordon-store.a $(BUILD)/libcordon-core.a $(LIBS_STORE)

$(BUILD)/unit-%: tests/unit-%.c $(BUILD)/libcordon-core.a $(wildcard src/core/*.h)
	$(CC) $(CFLAGS_BASE) $(HARDEN) $(PKG_CFLAGS) $(CFLAGS) $(LDFLAGS_BASE) $(LDFLAGS) -o $@ $< \
		$(BUILD)/libcordon-core.a $(PKG_LIBS)

# The runner (src/server/runner*.c: queue, workers, one `cordon __spawn` per execution) with a
# fake spawner: the test program re-executes itself as `unit-runner __spawn`.
RUNNER_SRC := src/server/runner.c src/server/runner-job.c src/server/runner-record.c
$(BUILD)/unit-runner: tests/unit-runner.c $(RUNNER_SRC:%.c=$(BUILD)/%.o) $(BUILD)/libcordon-core.a \
		$(wildcard src/server/runner*.h)
	$(CC) $(CFLAGS_BASE) $(HARDEN) $(PKG_CFLAGS) $(CFLAGS) $(LDFLAGS_BASE) $(LDFLAGS) -o $@ \
		$(filter %.c %.o %.a,$^) $(PKG_LIBS) -lpthread

# Fuzz targets (tests/fuzz/): in normal builds each one is a corpus replay program,
# $(BUILD)/unit-fuzz-NAME, run with the unit tests; `make fuzz` builds them with clang's
# libFuzzer into build-fuzz/ for coverage-guided runs (build-fuzz/fuzz-extract CORPUS_DIR).
FUZZ_EXTRACT_SRC := src/cli/extract.c src/cli/rmtree.c src/core/util.c
$(BUILD)/unit-fuzz-extract: tests/fuzz/fuzz-extract.c tests/fuzz/replay.h \
		$(BUILD)/src/cli/extract.o $(BUILD)/src/cli/rmtree.o $(BUILD)/libcordon-core.a
	$(CC) $(CFLAGS_BASE) $(HARDEN) $(PKG_CFLAGS) $(CFLAGS) \
		-DFUZZ_CORPUS='"tests/fuzz/corpus/extract"' $(LDFLAGS_BASE) $(LDFLAGS) -o $@ $< \
		$(BUILD)/src/cli/extract.o $(BUILD)/src/cli/rmtree.o $(BUILD)/libcordon-core.a \
		$(LIBS_IMAGE)
UNIT_BIN += $(BUILD)/unit-fuzz-extract

# The daemon's request validation (src/server/validate*.c and what they use; main.o and
# ops.o, which needs main.o, aside).
# Linked from the archive: only the objects the validator needs (not the modules, whose
# registration needs main.c).
$(BUILD)/unit-fuzz-exec-request: tests/fuzz/fuzz-exec-request.c tests/fuzz/replay.h \
		$(BUILD)/libcordon-server.a $(BUILD)/libcordon-store.a $(BUILD)/libcordon-core.a
	$(CC) $(CFLAGS_BASE) $(HARDEN) $(SERVE_CFLAGS) $(CFLAGS) \
		-DFUZZ_CORPUS='"tests/fuzz/corpus/exec-request"' $(LDFLAGS_BASE) $(LDFLAGS) -o $@ $< \
		$(BUILD)/libcordon-server.a $(BUILD)/libcordon-store.a $(BUILD)/libcordon-core.a \
		$(LIBS_SERVE)
UNIT_BIN += $(BUILD)/unit-fuzz-exec-request

build-fuzz/fuzz-extract: tests/fuzz/fuzz-extract.c $(FUZZ_EXTRACT_SRC)
	@mkdir -p $(dir $@)
	clang -std=gnu11 -O1 -g -D_GNU_SOURCE -DFUZZ_WITH_LIBFUZZER -Isrc \
		-fsanitize=fuzzer,address,undefined -o $@ $^ $(LIBS_IMAGE)

FUZZ_SPAWN_REQ_SRC := src/cli/spawn-req.c src/cli/cli.c src/cli/state.c src/cli/runtime.c \
	src/core/limits.c src/core/util.c
FUZZ_SPAWN_REQ_OBJ := $(FUZZ_SPAWN_REQ_SRC:src/cli/%.c=$(BUILD)/src/cli/%.o)
FUZZ_SPAWN_REQ_OBJ := $(filter $(BUILD)/src/cli/%,$(FUZZ_SPAWN_REQ_OBJ))
$(BUILD)/unit-fuzz-spawn-req: tests/fuzz/fuzz-spawn-req.c tests/fuzz/replay.h \
		$(FUZZ_SPAWN_REQ_OBJ) $(BUILD)/libcordon-core.a
	$(CC) $(CFLAGS_BASE) $(HARDEN) $(PKG_CFLAGS) $(CFLAGS) \
		-DFUZZ_CORPUS='"tests/fuzz/corpus/spawn-req"' $(LDFLAGS_BASE) $(LDFLAGS) -o $@ $< \
		$(FUZZ_SPAWN_REQ_OBJ) $(BUILD)/libcordon-core.a $(LIBS_CORDON)
UNIT_BIN += $(BUILD)/unit-fuzz-spawn-req

build-fuzz/fuzz-spawn-req: tests/fuzz/fuzz-spawn-req.c $(FUZZ_SPAWN_REQ_SRC)
	@mkdir -p $(dir $@)
	clang -std=gnu11 -O1 -g -D_GNU_SOURCE -DFUZZ_WITH_LIBFUZZER -Isrc $(PKG_CFLAGS) \
		-fsanitize=fuzzer,address,undefined -o $@ $^ $(LIBS_CORDON)


# libFuzzer needs every object built with clang's coverage instrumentation: the validator's
# sources are compiled straight into the target; --gc-sections drops what it never calls.
FUZZ_REQUEST_SRC := src/server/validate.c src/server/validate-exec.c src/server/tenants.c \
	src/server/log.c src/core/util.c src/core/limits.c
build-fuzz/fuzz-exec-request: tests/fuzz/fuzz-exec-request.c $(FUZZ_REQUEST_SRC)
	@mkdir -p $(dir $@)
	clang -std=gnu11 -O1 -g -D_GNU_SOURCE -DFUZZ_WITH_LIBFUZZER -Isrc $(SERVE_CFLAGS) \
		-ffunction-sections -fdata-sections -Wl,--gc-sections \
		-fsanitize=fuzzer,address,undefined -o $@ $^ $(LIBS_SERVE)

FUZZ_STORE_DEPS := $(BUILD)/libcordon-store.a $(BUILD)/libcordon-core.a
$(BUILD)/unit-fuzz-store: tests/fuzz/fuzz-store.c tests/fuzz/replay.h $(FUZZ_STORE_DEPS) \
		$(wildcard src/store/*.h)
	$(CC) $(CFLAGS_BASE) $(HARDEN) $(PKG_CFLAGS) $(CFLAGS) \
		-DFUZZ_CORPUS='"tests/fuzz/corpus/store"' $(LDFLAGS_BASE) $(LDFLAGS) -o $@ $< \
		$(FUZZ_STORE_DEPS) $(LIBS_STORE)
UNIT_BIN += $(BUILD)/unit-fuzz-store

build-fuzz/fuzz-store: tests/fuzz/fuzz-store.c $(STORE_SRC) src/core/util.c build/store-migrations.inc
	@mkdir -p $(dir $@)
	clang -std=gnu11 -O1 -g -D_GNU_SOURCE -DFUZZ_WITH_LIBFUZZER -Isrc -Ibuild \
		-fsanitize=fuzzer,address,undefined -o $@ tests/fuzz/fuzz-store.c $(STORE_SRC) \
		src/core/util.c $(LIBS_STORE)

fuzz: build-fuzz/fuzz-extract build-fuzz/fuzz-exec-request build-fuzz/fuzz-store \
	build-fuzz/fuzz-spawn-req

# Store benchmark (not part of `all`; numbers only): build/bench-store [DIR].
$(BUILD)/bench-store: bench/store.c $(BUILD)/libcordon-store.a $(BUILD)/libcordon-core.a \
		$(wildcard src/core/*.h src/store/*.h)
	$(CC) $(CFLAGS_BASE) $(HARDEN) $(PKG_CFLAGS) $(CFLAGS) $(LDFLAGS_BASE) $(LDFLAGS) -o $@ $< \
		$(BUILD)/libcordon-store.a $(BUILD)/libcordon-core.a $(LIBS_STORE)
bench-store: $(BUILD)/bench-store

$(BUILD)/unit-rmtree: tests/unit-rmtree.c $(BUILD)/src/cli/rmtree.o $(BUILD)/libcordon-core.a
	$(CC) $(CFLAGS_BASE) $(HARDEN) $(CFLAGS) $(LDFLAGS_BASE) $(LDFLAGS) -o $@ $< \
		$(BUILD)/src/cli/rmtree.o $(BUILD)/libcordon-core.a

unit: $(UNIT_BIN)

clean:
	rm -rf build build-san build-fuzz

.PHONY: all unit fuzz clean bench-store
