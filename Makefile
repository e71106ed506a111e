# Convenience front end over CMake. `make demo` and `make test` install what is missing,
# configure, build and run; the real build is CMake's (see CMakeLists.txt).
BUILD ?= build
CMAKE_FLAGS ?=
JOBS ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: all deps configure build test demo install clean

all: build

deps:
	@./scripts/setup-deps.sh

$(BUILD)/CMakeCache.txt:
	@$(MAKE) --no-print-directory deps
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)

configure: $(BUILD)/CMakeCache.txt

build: configure
	cmake --build $(BUILD) -j $(JOBS)

test: build
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

demo: build
	$(BUILD)/ferry demo

install: build
	cmake --install $(BUILD)

clean:
	rm -rf $(BUILD)
