#!/usr/bin/env bash
# tests/test_strata_perf.sh — strata-perf end to end on a local cluster
# (shared memory): serve and train, batches 16 and 256, 1 and 2 client
# processes, 1 s windows; results.json must hold one line per point, each
# with keys_per_s > 0.
#   test_strata_perf.sh STRATA_PERF_BIN
set -u
BIN=$1
DIR=$(mktemp -d /tmp/strata-perf-test-XXXXXX)
trap 'rm -rf "$DIR"' EXIT
"$BIN" --local sm --quick --no-plots --seconds 1 --warmup 0.2 --batches 16,256 --clients 1,2 \
    --out "$DIR" >"$DIR/stdout" 2>"$DIR/stderr"
rc=$?
if [ $rc -ne 0 ]; then
  echo "strata-perf exited $rc; its stderr:"; tail -30 "$DIR/stderr"
  exit 1
fi
want=8 # 2 workloads x 2 batches x 2 client counts
got=$(wc -l <"$DIR/results.json")
if [ "$got" -ne $want ]; then
  echo "results.json: $got lines, want $want"; cat "$DIR/results.json"; exit 1
fi
bad=$(grep -c -v -E '"keys_per_s":[0-9.e+]*[1-9]' "$DIR/results.json")
if [ "$bad" -ne 0 ]; then
  echo "results.json: $bad lines without keys_per_s > 0:"; cat "$DIR/results.json"; exit 1
fi
for w in serve train; do
  n=$(grep -c "\"workload\":\"$w\"" "$DIR/results.json")
  if [ "$n" -ne 4 ]; then echo "results.json: $n $w points, want 4"; exit 1; fi
done
if [ "$(wc -l <"$DIR/stdout")" -ne $want ] || [ ! -s "$DIR/results.csv" ]; then
  echo "stdout lines or results.csv missing"; exit 1
fi
echo "strata-perf --local sm: $got points, all with keys_per_s > 0: pass"
