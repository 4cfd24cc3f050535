#!/usr/bin/env bash
# Installs the Debian 12 packages natgrad builds and tests with. Uses sudo when not root.
# The OpenMP build of OpenBLAS is chosen on purpose: BLAS threads then come from the same
# OpenMP runtime as natgrad's, and never multiply with them.
set -euo pipefail
pkgs=(
  build-essential cmake pkg-config
  python3                      # test scripts compare JSON outputs
  openmpi-bin libopenmpi-dev
  libopenblas-openmp-dev
  libboost-program-options-dev # also brings Boost's headers: Boost.CRC (checkpoint checksum)
  catch2 nlohmann-json3-dev libcairo2-dev
  libhdf5-openmpi-dev          # parallel HDF5 input (optional: NATGRAD_HDF5=AUTO)
  clang libclang-rt-14-dev     # libFuzzer targets (fuzz/run_fuzz.sh, ctest -L fuzz)
  liblinear-tools              # the LIBLINEAR parity test (tests/peers/liblinear_parity.sh)
)
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${pkgs[@]}"
