#!/usr/bin/env bash
# First contact with a GPU: devices, correctness of the defaults, a small
# tune and bench. Run from the repository root with the build in build/.
set -u
OUT=${OUT:-/tmp/q4out}
mkdir -p "$OUT"
export Q4TUNE_DB="$OUT/smoke.db"
Q=./build/q4tune
$Q devices 2>&1 | tee "$OUT/devices.txt"
$Q check --shape 4096,4096 --shape 22016,4096 --m 1,3,16,17,100,2048 2>&1 | tee "$OUT/check.txt"
$Q check --shape 4096,4096 --group 128 --m 1,17,2048 2>&1 | tee -a "$OUT/check.txt"
time $Q tune --shape 22016,4096 --shape 4096,11008 --m 1,16,2048 2>&1 | tee "$OUT/tune.txt"
$Q bench --shape 22016,4096 --shape 4096,11008 --m 1,16,2048 2>&1 | tee "$OUT/bench.txt"
$Q show 2>&1 | tee "$OUT/show.txt"
