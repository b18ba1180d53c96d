#!/usr/bin/env bash
# GPU tests and benchmarks, run from the repository root on a machine with
# an NVIDIA GPU, after building into build/ (cmake -B build && cmake --build build).
#   scripts/gpu_tests.sh tune     fresh `tune --model llama-7b`, then the warm re-run, ctest
#   scripts/gpu_tests.sh check    correctness of tuned winners and defaults (per-channel, g128, in CUDA graphs), threads
#   scripts/gpu_tests.sh bench    bench next to cuBLAS fp16, per-channel and g128, direct and as graph replays
#   scripts/gpu_tests.sh weights  grouped, symmetric and act-order weights: tune, check, bench
#   scripts/gpu_tests.sh sparse   16:32 sparse (q4s): GPU pack/validate, check, tune, bench next to q4
#   scripts/gpu_tests.sh python   the Python binding (tests/test_python.py) with torch on the GPU
#   scripts/gpu_tests.sh noblas   without cuBLAS: single-pass kernels at every M, tuned two-pass winners replaced
#   scripts/gpu_tests.sh longk    act-order x too long for shared memory: defaults and tuned winners checked, benched
#   scripts/gpu_tests.sh all      tune, check, bench and python in turn
# Logs go to $OUT (default /tmp/q4out); the database to $OUT/tuning.db unless
# Q4TUNE_DB is set. Exits non-zero on the first failure. Without a GPU it
# says so and exits 0 (skipped).
set -uo pipefail
OUT=${OUT:-/tmp/q4out}
mkdir -p "$OUT"
export Q4TUNE_DB=${Q4TUNE_DB:-$OUT/tuning.db}
Q=./build/q4tune
LLAMA_M=1,2,3,7,16,17,64,100,255,1024,2048

if ! $Q devices >"$OUT/devices.txt" 2>&1; then
  cat "$OUT/devices.txt"
  echo "gpu_tests: skipped: no usable GPU"
  exit 0
fi
cat "$OUT/devices.txt"

run() {  # run NAME CMD...: tee the output to $OUT/NAME.txt, stop on failure
  local name=$1
  shift
  echo "== $name: $*"
  "$@" 2>&1 | tee "$OUT/$name.txt"
  local rc=${PIPESTATUS[0]}
  if [ "$rc" -ne 0 ]; then
    echo "gpu_tests: $name failed (exit $rc)"
    exit "$rc"
  fi
}

phase_tune() {
  rm -f "$Q4TUNE_DB" "$Q4TUNE_DB-wal" "$Q4TUNE_DB-shm"
  local t0=$SECONDS
  run tune_fresh $Q tune --model llama-7b
  echo "fresh tune: $((SECONDS - t0)) s" | tee -a "$OUT/tune_fresh.txt"
  t0=$SECONDS
  run tune_warm $Q tune --model llama-7b
  echo "warm tune: $((SECONDS - t0)) s" | tee -a "$OUT/tune_warm.txt"
  grep -q " 0 NVRTC runs" "$OUT/tune_warm.txt" || { echo "gpu_tests: the warm re-run compiled"; exit 1; }
  run show $Q show
  # the C tests that touch the driver (ctest's paths are the build machine's)
  run test_cuda_loader ./build/test_cuda_loader
  run test_nvrtc ./build/test_nvrtc
}

phase_check() {
  run check_llama $Q check --model llama-7b --m $LLAMA_M
  # one handle, five threads with shapes and streams of their own
  run threads ./build/test_threads
  run tune_g128 $Q tune --shape 22016,4096 --shape 4096,11008 --group 128 --m 1,16,100,2048
  run check_g128 $Q check --model llama-7b --group 128 --m $LLAMA_M
  run check_g32_g64 bash -c "$Q check --shape 11008,4096 --group 32 --m 1,16,100,2048 &&
                             $Q check --shape 11008,4096 --group 64 --m 1,16,100,2048"
  # 33 to 64 rows: q4_mma's default under 8448 columns on sm_90, q4_wgmma's
  # from there (check runs the default beside whatever q4_matmul picks)
  run check_mid $Q check --shape 3072,8192 --shape 8192,4096 --shape 8448,4096 --shape 5120,13824 \
    --m 33,40,48,63,64
  # the tuned winners and defaults captured into CUDA graphs, as decode loops run them
  run check_graph $Q check --graph --model llama-7b --format all --m 1,16,100,2048
  # every kernel family under the memory checker, tuned winners included
  if command -v compute-sanitizer >/dev/null; then
    run memcheck compute-sanitizer --tool memcheck --error-exitcode 3 \
      $Q check --shape 4096,4096 --shape 4096,11008 --m 1,17,100,300
  fi
}

phase_bench() {
  run bench $Q bench --model llama-7b --m 1,16,64,256,1024,2048
  run bench_g128 $Q bench --shape 22016,4096 --shape 4096,11008 --group 128 --m 1,16,2048
  # the same products as CUDA-graph replays (no launch gaps from the host)
  run bench_graph $Q bench --graph --model llama-7b --m 1,16,2048
}

phase_weights() {
  local shapes="--shape 11008,4096 --shape 4096,11008" m=1,16,100,2048
  run w_tune_sym $Q tune $shapes --group 128 --symmetric --m $m
  run w_check_sym $Q check $shapes --group 128 --symmetric --m $m
  run w_tune_act $Q tune $shapes --group 128 --act-order --m $m
  run w_check_act $Q check $shapes --group 128 --act-order --m $m
  # from 9 rows act-order x is gathered ahead of the kernel: right after a
  # kernel that writes x, with early launch too (sm_90)
  run w_check_act_mid $Q check $shapes --group 128 --act-order --m 9,16,33,64,65,256 --after-write
  if $Q devices | grep -qE "sm_(9|1[0-9])[0-9]"; then
    run w_check_act_early $Q check $shapes --group 128 --act-order --m 9,16,33,64,65,256 --after-write --early-launch
  fi
  run w_check_g32 $Q check $shapes --group 32 --symmetric --act-order --m $m
  run w_check_sparse bash -c "$Q check --format q4s $shapes --group 128 --symmetric --m $m &&
                              $Q check --format q4s $shapes --group 32 --m $m"
  # the costs of groups and of act-order, same run
  run w_tune_22016 $Q tune --shape 22016,4096 --m 1,2048
  run w_tune_22016_g128 $Q tune --shape 22016,4096 --group 128 --m 1,2048
  run w_tune_22016_act $Q tune --shape 22016,4096 --group 128 --act-order --m 1
  run w_bench bash -c "$Q bench --shape 22016,4096 --m 1,2048 &&
                       $Q bench --shape 22016,4096 --group 128 --m 1,2048 &&
                       $Q bench --shape 22016,4096 --group 128 --act-order --m 1 &&
                       $Q bench $shapes --group 128 --symmetric --m 1,16,2048"
}

phase_sparse() {
  local shapes="--shape 22016,4096 --shape 4096,11008" m=1,2,3,16,17,100,2048
  run s_gpu_pack ./build/test_sparse_gpu
  # a broken mask word gives NaN in its column, through every q4s family
  run s_broken_mask ./build/test_broken_mask
  # the defaults (nothing tuned yet for q4s), random masks, per-channel and
  # g128; K = 4160 ends in a part unit, N = 1000 in a part column tile
  run s_check_defaults bash -c "$Q check --format q4s --shape 4096,4096 $shapes --m $m &&
                                $Q check --format q4s --shape 4096,4096 $shapes --group 128 --m $m &&
                                $Q check --format q4s --shape 1000,4160 --m 1,2,3,17 &&
                                $Q check --format q4s --shape 1000,4160 --symmetric --m 1,2 &&
                                $Q check --format q4s --shape 1024,4160 --group 64 --symmetric --m 1,17,100"
  run s_tune $Q tune --format all $shapes --m 1,2,16,2048
  run s_tune_g128 $Q tune --format q4s $shapes --group 128 --m 1,16,2048
  run s_check_tuned bash -c "$Q check --format q4s $shapes --m $m &&
                             $Q check --format q4s $shapes --group 128 --m $m"
  run s_bench $Q bench --format all $shapes --m 1,16,2048
  if command -v compute-sanitizer >/dev/null; then
    run s_memcheck compute-sanitizer --tool memcheck --error-exitcode 3 \
      $Q check --format q4s --shape 4096,4096 --shape 1000,4160 --m 1,2,17,100,300
  fi
}

phase_noblas() {
  # Without cuBLAS (Q4TUNE_LIBCUBLAS names a file that is not there): the
  # single-pass kernels serve every M, a tuned q4_dqgemm winner gives way
  # to the default, tuning leaves the two-pass family out and says so, and
  # bench, which compares with cuBLAS, stops with the reason.
  local db=$OUT/noblas.db shapes="--shape 4096,4096 --shape 4096,11008"
  local none="Q4TUNE_LIBCUBLAS=$OUT/no-such-libcublas.so"
  rm -f "$db" "$db-wal" "$db-shm"
  run nb_tune_blas env Q4TUNE_DB="$db" $Q tune --format all $shapes --m 2048
  run nb_check_blas env Q4TUNE_DB="$db" $Q check --format all $shapes --m 1,2048
  grep -q "tuned .*q4_dqgemm" "$OUT/nb_check_blas.txt" || { echo "gpu_tests: no tuned q4_dqgemm winner to fall back from"; exit 1; }
  run nb_check env Q4TUNE_DB="$db" Q4TUNE_LOG=info $none $Q check --format all $shapes --m 1,100,300,1024,2048,4096
  if grep -E "^q4s? .* q4_dqgemm\[" "$OUT/nb_check.txt"; then echo "gpu_tests: q4_dqgemm chosen without cuBLAS"; exit 1; fi
  grep -q "needs cuBLAS; using the default" "$OUT/nb_check.txt" || { echo "gpu_tests: no fallback logged"; exit 1; }
  rm -f "$db" "$db-wal" "$db-shm"
  run nb_tune env Q4TUNE_DB="$db" $none $Q tune --format all --shape 4096,4096 --m 2048
  grep -q "two-pass kernels (q4_dqgemm) left out" "$OUT/nb_tune.txt" || { echo "gpu_tests: tune did not say"; exit 1; }
  if grep "q4_dqgemm\[" "$OUT/nb_tune.txt"; then echo "gpu_tests: tune ran q4_dqgemm without cuBLAS"; exit 1; fi
  run nb_show env Q4TUNE_DB="$db" $Q show
  echo "== nb_bench: $Q bench without cuBLAS (must fail, naming cuBLAS)"
  if env Q4TUNE_DB="$db" $none $Q bench --shape 4096,4096 --m 1 >"$OUT/nb_bench.txt" 2>&1; then
    echo "gpu_tests: bench ran without cuBLAS"; exit 1
  fi
  cat "$OUT/nb_bench.txt"
  grep -q "cuBLAS" "$OUT/nb_bench.txt" || { echo "gpu_tests: bench did not name cuBLAS"; exit 1; }
}

phase_longk() {
  # Act-order weights whose x no block's shared memory holds (K = 65536 on
  # sm_90; K = 131072 from M = 1): untuned, x gathered ahead of the kernel
  # (q4_decode's XG=3 up to 32 rows on sm_90); then the tuned winners (the
  # tuner also times q4_decode gathering x in its loop, XG=2) beside them,
  # checked and benched.
  local shape="--shape 4096,65536 --group 128 --act-order" db=$OUT/longk.db
  rm -f "$db" "$db-wal" "$db-shm"
  run lk_untuned env Q4TUNE_DB="$db" $Q check $shape --shape 1000,65536 --m 9,16,33,64
  grep -q "default .*XG=3" "$OUT/lk_untuned.txt" || { echo "gpu_tests: no XG=3 default"; exit 1; }
  run lk_untuned_k131072 env Q4TUNE_DB="$db" $Q check --shape 4096,131072 --group 128 --act-order --m 1,4,8,16
  run lk_bench_untuned env Q4TUNE_DB="$db" $Q bench $shape --m 16,64
  run lk_tune env Q4TUNE_DB="$db" $Q tune $shape --m 16,64
  run lk_check env Q4TUNE_DB="$db" $Q check $shape --m 9,16,33,64
  grep -q "tuned " "$OUT/lk_check.txt" || { echo "gpu_tests: no tuned winner checked"; exit 1; }
  run lk_bench env Q4TUNE_DB="$db" $Q bench $shape --m 16,64
}

phase_python() {
  # build/libq4tune.so links the shared Lua, SQLite and jansson: their
  # packages (liblua5.4-0, libsqlite3-0, libjansson4) must be installed
  run python env Q4TUNE_LIBRARY=./build/libq4tune.so PYTHONPATH=python Q4TUNE_TEST_GPU=1 \
    python3 tests/test_python.py
}

case "${1:-all}" in
  tune) phase_tune ;;
  check) phase_check ;;
  bench) phase_bench ;;
  weights) phase_weights ;;
  sparse) phase_sparse ;;
  python) phase_python ;;
  noblas) phase_noblas ;;
  longk) phase_longk ;;
  all) phase_tune && phase_check && phase_bench && phase_python ;;
  *) echo "usage: $0 [tune|check|bench|weights|sparse|python|noblas|longk|all]"; exit 2 ;;
esac
echo "gpu_tests: ${1:-all} passed"
