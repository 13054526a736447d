#!/usr/bin/env bash
# The main job of the README's quick start: installs what it needs, builds
# an optimized Strata (strata-server and perf/strata_demo) and runs the
# demo: a local cluster of 2 strata-server processes on 127.0.0.1 (UCX
# shared memory, loopback TCP), a trainer (batches of 4096 Zipf(0.99) keys
# over 2M: lookup creating missing rows, then an Adagrad gradient push)
# and a read-only inference reader (batches of 512 Zipf keys) running
# against it at the same time for 20 s — with a progress line on stderr
# each second and one JSON line per role plus a summary line on stdout.
# Exits 0 only when both roles finished without errors and the servers
# shut down cleanly. Extra arguments go to strata_demo (e.g. --quick for
# 5 s, --transport tcp, --seconds S; --help lists them).
# Not run here any more: the local store benchmark: build-release/perf/bench_core
# (`cmake --build build-release --target bench_core` builds it).
set -euo pipefail
cd "$(dirname "$0")/.."
# build output goes to stderr: stdout carries only the JSON lines
scripts/install-deps.sh >&2
BUILD=${STRATA_BUILD_DIR:-build-release}
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target strata-server strata_demo >&2
exec "$BUILD/perf/strata_demo" "$@"
