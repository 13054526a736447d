#!/usr/bin/env bash
# examples/dlrm/run.sh — train the DLRM example on 2 local MPI ranks.
#
#   examples/dlrm/run.sh [dlrm.py options]      e.g. examples/dlrm/run.sh --steps 300
#
# Checks the prerequisites (Open MPI's mpirun, Debian's /usr/bin/python3
# with numpy and torch, cmake and ninja), builds libstrata.so and
# strata-server when they are missing or out of date
# (cmake -S . -B build -G Ninja && ninja -C build strata strata-server),
# then runs
#
#   mpirun -np 2 --mca pml ob1 --mca btl self,vader,tcp \
#          /usr/bin/python3 examples/dlrm/dlrm.py --local "$@"
#
# with PYTHONPATH=client/python and STRATA_LIB=build/core/libstrata.so.
# --local (rank 0 starts 2 strata-servers on 127.0.0.1 and stops them at
# exit) is added unless the options name --servers.
#
# Open MPI and Strata both speak UCX. The Strata client opens its own UCX
# context in each rank; Open MPI's UCX pml/osc must not be picked as
# well, so mpirun is told to use ob1 with the self, vader (shared memory)
# and tcp BTLs. (The ranks here do not even load MPI, torch.distributed
# uses gloo; the flags keep it that way when mpirun's defaults differ.)
#
# Environment: NP (ranks, default 2), PYTHON (default /usr/bin/python3),
# STRATA_BUILD_DIR (default build), MPIRUN (default mpirun).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
NP=${NP:-2}
PYTHON=${PYTHON:-/usr/bin/python3}
MPIRUN=${MPIRUN:-mpirun}
BUILD=${STRATA_BUILD_DIR:-$repo/build}
case $BUILD in /*) ;; *) BUILD=$repo/$BUILD ;; esac

die() { echo "run.sh: $*" >&2; exit 1; }

# --- prerequisites ---------------------------------------------------------
command -v "$MPIRUN" >/dev/null ||
  die "no $MPIRUN: install Open MPI (apt-get install openmpi-bin libopenmpi-dev)"
"$MPIRUN" --version 2>/dev/null | grep -q "Open MPI" ||
  die "$MPIRUN is not Open MPI's (the flags below are Open MPI's); set MPIRUN"
[ -x "$PYTHON" ] || die "no interpreter $PYTHON (set PYTHON)"
"$PYTHON" -c 'import numpy, torch, torch.distributed as d; assert d.is_gloo_available()' \
  2>/dev/null ||
  die "$PYTHON lacks numpy or torch (with gloo): apt-get install python3-numpy python3-torch"
command -v cmake >/dev/null || die "no cmake (apt-get install cmake)"
command -v ninja >/dev/null || die "no ninja (apt-get install ninja-build)"

# --- build what is missing or stale ----------------------------------------
if [ ! -f "$BUILD/build.ninja" ]; then
  [ -e "$BUILD/CMakeCache.txt" ] &&
    die "$BUILD is a CMake build for another generator: set STRATA_BUILD_DIR"
  echo "run.sh: configuring $BUILD" >&2
  cmake -S "$repo" -B "$BUILD" -G Ninja >&2
fi
ninja -C "$BUILD" strata strata-server >&2 || die "building strata and strata-server failed"
lib=$BUILD/core/libstrata.so
server=$BUILD/server/strata-server
if [ ! -e "$lib" ] || [ ! -x "$server" ]; then die "$lib or $server was not built"; fi
grep -q '^#define STRATA_HAVE_UCX 1' "$BUILD/generated/strata_config.h" ||
  die "$BUILD was configured without UCX: the client cannot reach servers (install libucx-dev, reconfigure)"

# --- run --------------------------------------------------------------------
where=(--local)
for a in "$@"; do
  case $a in --servers|--servers=*|--local) where=() ;; esac
done
mpiflags=(--oversubscribe --mca pml ob1 --mca btl "self,vader,tcp")
[ "$(id -u)" = 0 ] && mpiflags+=(--allow-run-as-root)

cd "$repo"
export PYTHONPATH=$repo/client/python${PYTHONPATH:+:$PYTHONPATH}
export STRATA_LIB=$lib STRATA_SERVER_BIN=$server
set -x
exec "$MPIRUN" "${mpiflags[@]}" -np "$NP" "$PYTHON" "$repo/examples/dlrm/dlrm.py" \
  "${where[@]}" "$@"
