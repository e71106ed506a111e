#!/usr/bin/env bash
# Installs what ferry needs to build and test, only what is missing. Debian/Ubuntu packages
# through apt-get; as root it installs, otherwise it says what to run and fails.
set -euo pipefail

need_cmds=(cmake pkg-config cc make)
need_pc=(yaml-0.1 lua5.4 liburing cmocka)
declare -A pkg_of=([cmake]=cmake [pkg-config]=pkg-config [cc]=gcc [make]=make
                  [yaml-0.1]=libyaml-dev [lua5.4]=liblua5.4-dev [liburing]=liburing-dev
                  [cmocka]=libcmocka-dev)

missing=()
for c in "${need_cmds[@]}"; do
  command -v "$c" >/dev/null 2>&1 || missing+=("${pkg_of[$c]}")
done
for p in "${need_pc[@]}"; do
  if ! command -v pkg-config >/dev/null 2>&1 || ! pkg-config --exists "$p"; then
    missing+=("${pkg_of[$p]}")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "ferry: installing missing packages: ${missing[*]}" >&2
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=sudo
  else
    echo "ferry: not root; install them first: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
else
  SUDO=
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "ferry: no apt-get here; install these (or your system's equivalents): ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
