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

CORE_SRC := $(wildcard src/core/*.c)
CLI_SRC := $(wildcard src/cli/*.c)
CORE_OBJ := $(CORE_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ := $(CLI_SRC:%.c=$(BUILD)/%.o)

all: $(BUILD)/cordon $(BUILD)/cordon-test-helper

$(BUILD)/%.o: %.c $(wildcard src/core/*.h src/cli/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) $(HARDEN) $(PKG_CFLAGS) $(CFLAGS) -c -o $@ $<

# The default seccomp filter is compiled at build time (tools/gen-filter.c) and embedded.
$(BUILD)/gen-filter: tools/gen-filter.c src/core/filter.c src/core/util.c src/core/filter.h
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -O2 -D_GNU_SOURCE -Isrc -o $@ tools/gen-filter.c src/core/filter.c \
		src/core/util.c $(shell pkg-config --cflags --libs libseccomp)
$(BUILD)/filter-bpf.inc: $(BUILD)/gen-filter
	$< > $@.tmp && mv $@.tmp $@
$(BUILD)/src/core/filter-default.o: $(BUILD)/filter-bpf.inc
$(BUILD)/src/core/filter-default.o: CFLAGS += -I$(BUILD)

$(BUILD)/cordon: $(CORE_OBJ) $(CLI_OBJ)
	$(CC) $(LDFLAGS_BASE) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

# The helper runs inside sandboxes and images with no libc of their own: static, no sanitizer.
$(BUILD)/cordon-test-helper: tests/helper.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -O2 -D_GNU_SOURCE -Wall -Wextra -static -o $@ $<

clean:
	rm -rf build build-san

.PHONY: all clean
