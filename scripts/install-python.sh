#!/usr/bin/env bash
# Build libstrata.so and install the Python package `strata` (with
# strata.torch) for Debian's /usr/bin/python3, by copying — no pip needed.
# Idempotent: running it again rebuilds what changed and replaces the copy.
#   scripts/install-python.sh
# Environment:
#   PYTHON            interpreter to install for (default /usr/bin/python3)
#   STRATA_BUILD_DIR  CMake build directory (default: build)
#   STRATA_PY_DEST    site-packages directory to install into (default: the
#                     interpreter's first site-packages directory, on Debian
#                     /usr/local/lib/python3.X/dist-packages)
# Result: $STRATA_PY_DEST/strata/{__init__.py,torch.py,libstrata.so}; the
# package loads the libstrata.so beside it unless $STRATA_LIB says otherwise.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-/usr/bin/python3}
BUILD=${STRATA_BUILD_DIR:-$repo/build}
case $BUILD in /*) ;; *) BUILD=$repo/$BUILD ;; esac

if [ ! -x "$PYTHON" ] && ! command -v "$PYTHON" >/dev/null; then
  echo "install-python: no interpreter $PYTHON (set PYTHON)" >&2
  exit 1
fi

# Configure once (keep an existing build directory's generator), then build.
if [ ! -f "$BUILD/CMakeCache.txt" ]; then
  gen=()
  command -v ninja >/dev/null && gen=(-G Ninja)
  cmake -S "$repo" -B "$BUILD" "${gen[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo
fi
cmake --build "$BUILD" --target strata
lib="$BUILD/core/libstrata.so"
[ -e "$lib" ] || { echo "install-python: $lib was not built" >&2; exit 1; }

dest=${STRATA_PY_DEST:-$("$PYTHON" -c 'import site; print(site.getsitepackages()[0])')}
mkdir -p "$dest"
# Assemble beside the target and swap it in, so a failed copy never leaves
# a half-installed package.
tmp=$(mktemp -d "$dest/.strata-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/strata"
cp "$repo"/client/python/strata/*.py "$tmp/strata/"
cp -L "$lib" "$tmp/strata/libstrata.so"   # the real file, not the symlink chain
chmod 0755 "$tmp/strata/libstrata.so"
chmod 0644 "$tmp/strata/"*.py
chmod 0755 "$tmp/strata"
rm -rf "$dest/strata.old"
[ -e "$dest/strata" ] && mv "$dest/strata" "$dest/strata.old"
mv "$tmp/strata" "$dest/strata"
rm -rf "$dest/strata.old"
echo "install-python: installed $dest/strata (libstrata.so from $lib)"

# Check the installed copy imports (from outside the source tree, without
# $STRATA_LIB, so the copy's own libstrata.so is what loads).
check='import strata; print("install-python: strata", strata.version(), "loads", strata.library_path)'
(cd / && env -u STRATA_LIB PYTHONPATH="$dest" "$PYTHON" -c "$check")
