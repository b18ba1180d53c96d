#!/usr/bin/env bash
# A quick look at the bar shapes: tune M = 1, 16, 2048 and bench them.
set -u
OUT=${OUT:-/tmp/q4out}
mkdir -p "$OUT"
export Q4TUNE_DB="$OUT/quick.db"
Q=./build/q4tune
time $Q tune --shape 22016,4096 --shape 4096,11008 --m 1,16,2048 2>&1 | tee "$OUT/tune.txt"
$Q bench --shape 22016,4096 --shape 4096,11008 --m 1,16,2048 2>&1 | tee "$OUT/bench.txt"
