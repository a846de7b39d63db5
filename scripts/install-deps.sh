#!/bin/sh
# Installs the Debian 12 packages mart needs to build, test and benchmark (see README).
set -eu
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
  build-essential cmake pkg-config nodejs npm \
  libopenblas-openmp-dev libpcre2-dev libcjson-dev libgmp-dev libmpfr-dev libcairo2-dev \
  libcmocka-dev \
  python3 python3-torch python3-numpy libblis4-openmp libtcmalloc-minimal4 \
  clang libclang-rt-14-dev
