#!/usr/bin/env bash
# Installs, with apt-get, whatever Tandem needs that this Debian 12 machine
# lacks: the build tools and libraries, Fashion-MNIST, Debian's PyTorch and
# h5py (used by the interoperability test and the benchmark), the King James
# Bible (bible-kjv, the text the GPT trains on), Open MPI (data-parallel
# training), clang with its libFuzzer and OpenMP runtimes (the fuzzers in
# tests/fuzz), and for the tangent toolkit OpenBLAS (its OpenMP build, which
# shares libgomp with oneDNN: libopenblas-dev would pull in the pthread build
# and make it the system's libblas), LAPACKE and matplotlib. Needs root when
# something is missing; does nothing otherwise.
set -euo pipefail
packages=(gcc pkg-config meson ninja-build cmake libdnnl-dev libhdf5-dev check zlib1g-dev
          dataset-fashion-mnist python3-torch python3-h5py libopenblas0-openmp bible-kjv
          libopenmpi-dev openmpi-bin clang libclang-rt-14-dev libomp-14-dev
          libopenblas-openmp-dev liblapacke-dev python3-matplotlib)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
