# Two commands on a fresh Debian 12 machine: `make demo` and `make test`.
# Both install what is missing (scripts/setup), configure and build.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all setup configure build demo test bench fuzz format clean

all: build

setup:
	@bash scripts/setup

configure: setup
	@cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS) >/dev/null

build: configure
	@cmake --build $(BUILD) -j $(JOBS)

demo: build
	@$(BUILD)/blindfold demo

test: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS) -LE long

test-long: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS) -L long

bench: build
	@$(BUILD)/bench/blindfold_bench

format:
	@clang-format -i $$(git ls-files '*.h' '*.cc')

clean:
	@rm -rf $(BUILD)
