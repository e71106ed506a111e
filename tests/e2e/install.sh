#!/usr/bin/env bash
# `cmake --install` into a fresh prefix gives a library that a program finds both through
# find_package(ferry) and through pkg-config, and the installed ferry command runs.
set -euo pipefail
build=$(dirname "$FERRY")
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# A consumer of the installed library needs the dependencies' development files (the CMake
# package finds them through pkg-config); without them there is nothing to test here.
if ! pkg-config --exists yaml-0.1 lua5.4 liburing 2>/dev/null; then
    echo "install: skipped: libyaml, Lua 5.4 or liburing development files are not installed here"
    exit 77
fi

cmake --install "$build" --prefix "$tmp/prefix" > "$tmp/install.log" 2>&1 || { cat "$tmp/install.log"; fail "install"; }
"$tmp/prefix/bin/ferry" --version | grep -q "^ferry " || fail "installed ferry does not run"
[ -f "$tmp/prefix/include/ferry/ferry.h" ] || fail "headers not installed"
ls "$tmp/prefix/share/ferry/policies/"*.yaml > /dev/null || fail "policies not installed"

# A consumer of a sanitizer build must be built with the same sanitizers.
san_flags=""
[ -n "${FY_SANITIZE:-}" ] && san_flags="-fsanitize=$FY_SANITIZE"

mkdir "$tmp/app"
cat > "$tmp/app/main.c" <<'C'
#include <ferry/ferry.h>
#include <stdio.h>
int main(void)
{
    fy_error err = {0};
    fy_graph *g;
    fy_mlp_params p = {.layers = 3, .hidden = 8, .batch = 2, .dtype = FY_DTYPE_F32};
    if (fy_graph_generate_mlp(&p, &g, &err) < 0)
        return 1;
    printf("ops %zu\n", fy_graph_op_count(g));
    fy_graph_destroy(g);
    return 0;
}
C
cat > "$tmp/app/CMakeLists.txt" <<'C'
cmake_minimum_required(VERSION 3.20)
project(app C)
find_package(ferry REQUIRED)
add_executable(app main.c)
target_link_libraries(app PRIVATE ferry::ferry)
C
cmake -S "$tmp/app" -B "$tmp/app/b" -DCMAKE_PREFIX_PATH="$tmp/prefix" -DCMAKE_C_FLAGS="$san_flags" > "$tmp/cfg.log" 2>&1 || { cat "$tmp/cfg.log"; fail "find_package(ferry)"; }
cmake --build "$tmp/app/b" > "$tmp/bld.log" 2>&1 || { cat "$tmp/bld.log"; fail "building against ferry::ferry"; }
LD_LIBRARY_PATH="$tmp/prefix/lib:${LD_LIBRARY_PATH:-}" "$tmp/app/b/app" | grep -q "ops 3" || fail "cmake consumer"

# A FERRY_STATIC build installs only libferry.a, whose CUDA and archive dependencies the
# CMake package carries; the pkg-config file describes the shared library.
if [ ! -e "$tmp/prefix/lib/libferry.so" ]; then
    echo "install: ok (static build: pkg-config consumer not applicable)"
    exit 0
fi
export PKG_CONFIG_PATH="$tmp/prefix/lib/pkgconfig"
cc $san_flags "$tmp/app/main.c" $(pkg-config --cflags --libs ferry) -o "$tmp/app/pc" || fail "pkg-config consumer build"
LD_LIBRARY_PATH="$tmp/prefix/lib:${LD_LIBRARY_PATH:-}" "$tmp/app/pc" | grep -q "ops 3" || fail "pkg-config consumer"
echo "install: ok"
