#!/bin/sh
# Installs the Debian 12 packages mart needs to build, test and benchmark (see README).
set -eu
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
PKGS="build-essential cmake pkg-config
  libopenblas-openmp-dev libpcre2-dev libcjson-dev libgmp-dev libmpfr-dev libcairo2-dev
  libcmocka-dev libcurl4-openssl-dev libssl-dev
  python3 python3-torch python3-numpy libblis4-openmp libtcmalloc-minimal4
  clang libclang-rt-14-dev"
# Node.js and npm run the JavaScript reference tokenizer in the tests. A machine that already has
# a Node.js with its own npm (e.g. the NodeSource build, which conflicts with Debian's npm package)
# keeps it; otherwise Debian's are installed.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  PKGS="$PKGS nodejs npm"
fi
$SUDO apt-get update -qq
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $PKGS
