#!/usr/bin/env bash
# Install the Debian 12 packages Strata's build, tests and benchmarks need.
# Idempotent: installs only what is missing, and runs apt-get update at most
# once per call (and only when something is missing). Needs root (or sudo).
set -euo pipefail

PKGS=(
  build-essential cmake ninja-build pkg-config git
  libjemalloc-dev   # allocator (core/alloc.c)
  liburcu-dev       # RCU for lock-free readers during index growth
  libxxhash-dev     # row and snapshot checksums (XXH3-64)
  libabsl-dev       # benchmark peer only (perf/bench_core)
  clang             # fuzz targets and the sanitizer runtime
  libucx-dev ucx-utils  # transport (rdma/): shared memory, TCP, verbs
  libssl-dev        # HMAC-SHA256 for the session handshake (server/, client/)
  iproute2          # network namespaces for the multi-host test
  redis-server libhiredis-dev          # benchmark peer (perf/bench_remote)
  memcached libmemcached-dev           # benchmark peer (perf/bench_remote)
  librocksdb-dev    # benchmark peer (perf/strata-perf --peers rocksdb)
  gnuplot-nox       # strata-perf's PNG plots
  libopenmpi-dev openmpi-bin          # strata-perf over mpirun; trainer ranks
  liburing-dev      # NVMe tier (hierarchy/)
  fio               # benchmark peer (perf/bench_tier)
  python3-numpy python3-torch         # Python package and PyTorch modules
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PKGS[@]} packages present"
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
