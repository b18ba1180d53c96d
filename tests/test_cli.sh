#!/usr/bin/env bash
# test_cli.sh -- the q4tune command without a GPU: help and usage errors,
# 'devices' without a driver, 'source' (a kernel's CUDA source and cubin),
# and 'show' on a database filled by hand with the sqlite3 shell (table,
# --json, --csv), plus a corrupt database.
#
# usage: bash tests/test_cli.sh /path/to/q4tune
# Needs sqlite3 and python3. Files go under $Q4TUNE_TEST_TMP (or mktemp -d).
set -u

Q4=${1:?usage: test_cli.sh /path/to/q4tune}
passed=0
failed=0

if [ -n "${Q4TUNE_TEST_TMP:-}" ]; then
  mkdir -p "$Q4TUNE_TEST_TMP"
  T=$(mktemp -d "$Q4TUNE_TEST_TMP/test_cli.XXXXXX")
else
  T=$(mktemp -d)
fi
trap 'rm -rf "$T"' EXIT
# Keep the default database path away from the user's cache.
export XDG_CACHE_HOME="$T/cache"
unset Q4TUNE_DB

ok() { passed=$((passed + 1)); }
bad() { failed=$((failed + 1)); echo "FAIL: $*" >&2; }

# run NAME CMD... : runs CMD, keeping stdout, stderr and the exit status in
# $T/NAME.out, $T/NAME.err and $rc.
run() {
  local name=$1
  shift
  "$@" >"$T/$name.out" 2>"$T/$name.err"
  rc=$?
}

# expect_rc NAME WANT: WANT is a number or "nonzero"; a crash (signal, or a
# sanitizer's exit) never counts as the expected non-zero status.
expect_rc() {
  local name=$1 want=$2
  if [ "$rc" -ge 128 ] || grep -q "Sanitizer" "$T/$name.err"; then
    bad "$name: crashed or sanitizer report (exit $rc)"
    sed 's/^/    /' "$T/$name.err" | head -30 >&2
    return
  fi
  if [ "$want" = nonzero ]; then
    [ "$rc" -ne 0 ] && ok || bad "$name: exit $rc, want non-zero"
  else
    [ "$rc" -eq "$want" ] && ok || { bad "$name: exit $rc, want $want"; head -5 "$T/$name.err" >&2; }
  fi
}

# expect_in NAME FILE(out|err) PATTERN (grep -E)
expect_in() {
  local name=$1 which=$2 pat=$3
  grep -Eq -- "$pat" "$T/$name.$which" && ok || {
    bad "$name: std$which lacks /$pat/"
    sed 's/^/    /' "$T/$name.$which" | head -20 >&2
  }
}

# ---- help and usage ----------------------------------------------------------
run help "$Q4" --help
expect_rc help 0
for c in tune show bench check devices import source; do expect_in help out "^  $c "; done

run help2 "$Q4" help
expect_rc help2 0
run h "$Q4" -h
expect_rc h 0

run noargs "$Q4"
expect_rc noargs 2
expect_in noargs err "usage: q4tune"

run version "$Q4" --version
expect_rc version 0
expect_in version out "^q4tune [0-9]+\.[0-9]+\.[0-9]+"

for c in tune show bench check devices source; do
  run "help_$c" "$Q4" "$c" --help
  expect_rc "help_$c" 0
  expect_in "help_$c" out "usage: q4tune $c"
  run "hshort_$c" "$Q4" "$c" -h
  expect_rc "hshort_$c" 0
done

# the graph timing is an option of bench and check, listed in both
for c in bench check; do expect_in "help_$c" out "^  --graph "; done

run unknown "$Q4" frobnicate
expect_rc unknown 2
expect_in unknown err "unknown command 'frobnicate'"

run badopt "$Q4" show --no-such-option
expect_rc badopt 2
expect_in badopt err "unknown option '--no-such-option'"

# ---- bad arguments: exit 2 before any GPU is needed ---------------------------
run badshape "$Q4" tune --shape 4096
expect_rc badshape 2
expect_in badshape err "--shape wants N,K"

run badshape2 "$Q4" tune --shape 4096,abc
expect_rc badshape2 2
expect_in badshape2 err "--shape wants N,K"

run badshape3 "$Q4" bench --shape 0,4096
expect_rc badshape3 2

# shapes no weights can have are refused before any command builds weights
run badgroup "$Q4" check --shape 1000,2080 --group 128 --m 1
expect_rc badgroup 2
expect_in badgroup err "shape 1000,2080: K=2080 is not a multiple of the group size 128"
run badk "$Q4" tune --shape 4096,4100 --m 1 --db "$T/badk.db"
expect_rc badk 2
expect_in badk err "K=4100 is not a multiple of 32"

run badm "$Q4" check --m 0
expect_rc badm 2
expect_in badm err "--m wants"

run badmodel "$Q4" tune --model gpt-17
expect_rc badmodel 2
expect_in badmodel err "unknown model 'gpt-17'"

run badfmt "$Q4" tune --format q8
expect_rc badfmt 2
expect_in badfmt err "--format wants"

run novalue "$Q4" tune --shape
expect_rc novalue 2
expect_in novalue err "needs a value"

# no silent defaults: a value that is not a number, an empty or over-long
# list, an option the command does not take, an option where a value goes
run badseed "$Q4" tune --seed 12abc --shape 4096,4096 --db "$T/unused.db"
expect_rc badseed 2
expect_in badseed err "--seed wants a non-negative integer"
run badthreads "$Q4" tune --threads -1 --shape 4096,4096 --db "$T/unused.db"
expect_rc badthreads 2
expect_in badthreads err "--threads wants"
run emptym "$Q4" check --m 1,,16
expect_rc emptym 2
expect_in emptym err "--m wants a list of positive integers, got '1,,16'"
run manym "$Q4" check --m "$(seq -s, 1 65)"
expect_rc manym 2
expect_in manym err "--m takes at most 64 values"
run signedk "$Q4" tune --shape 4096,+4096
expect_rc signedk 2
expect_in signedk err "--shape wants N,K"
run longk "$Q4" source --arch 90 --shape "4096,$(printf '0%.0s' $(seq 60))40960"
expect_rc longk 0
expect_in longk err "N=4096 K=40960 per-channel"
run notapply "$Q4" show --shape 4096,4096 --db "$T/unused.db"
expect_rc notapply 2
expect_in notapply err "show: --shape does not apply here"
run notapply2 "$Q4" check --samples 30
expect_rc notapply2 2
expect_in notapply2 err "check: --samples does not apply here"
run dbopt "$Q4" show --db --json
expect_rc dbopt 2
expect_in dbopt err "--db needs a value"
[ ! -e ./--json ] && ok || bad "dbopt: made a file named --json"
run actsparse "$Q4" tune --act-order --format all --shape 4096,4096
expect_rc actsparse 2
expect_in actsparse err "--act-order weights are dense \(q4\) only"

run jsoncsv "$Q4" show --json --csv --db "$T/unused.db"
expect_rc jsoncsv 2
expect_in jsoncsv err "choose one of"

# ---- no driver --------------------------------------------------------------------
run devices "$Q4" devices
if [ "$rc" -eq 0 ]; then
  ok  # a machine with a GPU
  expect_in devices out "device\(s\)"
else
  expect_rc devices nonzero
  expect_in devices err "driver"
  expect_in devices out "NVRTC"
fi
expect_in devices out "^cuBLAS: "
# a cuBLAS that is not there: said, and the rest goes on as before
run devices_noblas env Q4TUNE_LIBCUBLAS="$T/no-such-libcublas.so" "$Q4" devices
expect_in devices_noblas out "^cuBLAS: unavailable: cannot load cuBLAS \(Q4TUNE_LIBCUBLAS: "
expect_in devices_noblas out "NVRTC"

# tune without a GPU: a clean failure, no crash
run tune_nogpu "$Q4" tune --shape 4096,4096 --m 1 --db "$T/tune.db"
if [ "$rc" -ne 0 ]; then
  expect_rc tune_nogpu nonzero
  expect_in tune_nogpu err "Q4_ERR_NO_DRIVER|Q4_ERR_NO_DEVICE"
else
  ok
fi

# bench in graph mode without a GPU: the same clean failure
run bench_nogpu "$Q4" bench --graph --shape 4096,4096 --m 1 --db "$T/bench.db"
if [ "$rc" -ne 0 ]; then
  expect_rc bench_nogpu nonzero
  expect_in bench_nogpu err "Q4_ERR_NO_DRIVER|Q4_ERR_NO_DEVICE"
else
  ok
fi

# ---- show on a database built by hand ------------------------------------------------
DB="$T/tuning.db"
run show_empty "$Q4" show --db "$DB"
expect_rc show_empty 0
expect_in show_empty out "no tuned kernels"
[ -f "$DB" ] && ok || bad "show did not create $DB"

run show_empty_json "$Q4" show --db "$DB" --json
expect_rc show_empty_json 0
python3 -c 'import json,sys; d=json.load(sys.stdin); assert d == [], d' <"$T/show_empty_json.out" && ok ||
  bad "empty --json is not []"

run show_empty_csv "$Q4" show --db "$DB" --csv
expect_rc show_empty_csv 0
[ ! -s "$T/show_empty_csv.out" ] && ok || bad "empty --csv printed something"

command -v sqlite3 >/dev/null || { bad "sqlite3 not installed"; }

P_DEC='WARPS_N=4,WARPS_K=4,SPLIT_K=1,M_TILES=1,UNROLL=2,PIPE=1'
P_DEC16='WARPS_N=2,WARPS_K=8,SPLIT_K=2,M_TILES=2,UNROLL=4,PIPE=0'
P_WMMA='BLOCK_M=64,BLOCK_N=128,BLOCK_K=32,WARPS_M=2,WARPS_N=2,STAGES=3,SPLIT_K=1'
H1=0123456789abcdef0123456789abcdef
H2=fedcba9876543210fedcba9876543210
H3=00112233445566778899aabbccddeeff
sqlite3 "$DB" >"$T/insert.out" 2>&1 <<EOF
PRAGMA foreign_keys = ON;
INSERT INTO devices(id, name, cc_major, cc_minor, sms, driver_version, nvrtc_version)
  VALUES (1, 'NVIDIA H100 80GB HBM3', 9, 0, 132, 13000, '13.0'),
         (2, 'NVIDIA A100-SXM4-80GB', 8, 0, 108, 13000, '13.0');
INSERT INTO variants(id, template, params, source_hash)
  VALUES (1, 'q4_decode', '$P_DEC', '$H1'),
         (2, 'q4_decode', '$P_DEC16', '$H2'),
         (3, 'q4_wmma', '$P_WMMA', '$H3');
INSERT INTO cubins(source_hash, arch, nvrtc_version, cubin, size, regs, smem, spill_bytes, compile_ms)
  VALUES ('$H1', 90, '13.0', x'7f454c46', 4, 64, 0, 0, 180.5),
         ('$H3', 80, '13.0', x'7f454c46', 4, 128, 1024, 0, 400.0);
INSERT INTO measurements(device_id, variant_id, format, n, k, group_size, m, median_us, min_us, max_us, rel_error, ok, note)
  VALUES (1, 1, 'q4', 4096, 4096, 4096, 1, 12.5, 12.0, 14.0, 2e-4, 1, ''),
         (1, 2, 'q4', 4096, 4096, 4096, 16, 15.25, 15.0, 16.0, 3e-4, 1, ''),
         (1, 3, 'q4', 22016, 4096, 128, 256, 80.0, 79.0, 85.0, 5e-4, 1, ''),
         (1, 1, 'q4', 22016, 4096, 128, 256, NULL, NULL, NULL, NULL, 0, 'wrong result'),
         (2, 3, 'q4', 22016, 4096, 128, 256, 140.0, 139.0, 150.0, 5e-4, 1, '');
INSERT INTO winners(device_id, format, n, k, group_size, m_bucket, variant_id, median_us)
  VALUES (1, 'q4', 4096, 4096, 4096, 1, 1, 12.5),
         (1, 'q4', 4096, 4096, 4096, 16, 2, 15.25),
         (1, 'q4', 22016, 4096, 128, 256, 3, 80.0),
         (2, 'q4', 22016, 4096, 128, 256, 3, 140.0);
EOF
[ $? -eq 0 ] && ok || { bad "sqlite3 insert failed"; cat "$T/insert.out" >&2; }

run show "$Q4" show --db "$DB"
expect_rc show 0
expect_in show out "^device +fmt +N +K +group +weights +M"
[ "$(grep -c 'q4_decode\[' "$T/show.out")" -eq 2 ] && ok || bad "show: want 2 q4_decode rows"
[ "$(grep -c 'q4_wmma\[' "$T/show.out")" -eq 2 ] && ok || bad "show: want 2 q4_wmma rows"
[ "$(wc -l <"$T/show.out")" -eq 5 ] && ok || bad "show: want a header and 4 rows, got $(wc -l <"$T/show.out") lines"
expect_in show out "NVIDIA H100 80GB HBM3 +q4 +4096 +4096 +chan +- +1 +12\.50 .*q4_decode\[$P_DEC\]"
expect_in show out "NVIDIA H100 80GB HBM3 +q4 +4096 +4096 +chan +- +16 +15\.25 .*q4_decode\[$P_DEC16\]"
expect_in show out "NVIDIA H100 80GB HBM3 +q4 +22016 +4096 +128 +- +256 +80\.00 .*q4_wmma\["
expect_in show out "NVIDIA A100-SXM4-80GB +q4 +22016 +4096 +128 +- +256 +140\.00 .*q4_wmma\["
if grep -q "no tuned kernels" "$T/show.out"; then bad "show still says no tuned kernels"; else ok; fi

run show_json "$Q4" show --db "$DB" --json
expect_rc show_json 0
python3 - "$T/show_json.out" <<'EOF' && ok || bad "show --json content"
import json, sys
d = json.load(open(sys.argv[1]))
assert isinstance(d, list) and len(d) == 4, d
fields = {"device", "cc", "format", "n", "k", "group_size", "m", "template", "params",
          "median_us", "gbs", "regs", "weights"}
for r in d:
    assert set(r) == fields, sorted(r)
# ordered by device name, then format, n, k, group size, m
a100 = [r for r in d if r["device"].startswith("NVIDIA A100")]
h100 = [r for r in d if r["device"] == "NVIDIA H100 80GB HBM3"]
assert len(a100) == 1 and len(h100) == 3, d
assert d[0] is a100[0] or d[0] == a100[0], "A100 sorts first"
assert [r["m"] for r in h100] == [1, 16, 256], [r["m"] for r in h100]
r1 = h100[0]
assert r1["cc"] == "9.0" and r1["format"] == "q4" and r1["n"] == 4096 and r1["k"] == 4096
assert r1["group_size"] == 0, r1          # per-channel shows as 0
assert r1["template"] == "q4_decode" and r1["params"] == "WARPS_N=4,WARPS_K=4,SPLIT_K=1,M_TILES=1,UNROLL=2,PIPE=1"
assert abs(r1["median_us"] - 12.5) < 1e-9
# (4096*4096/2 + 4096*4 + 2*1*4096 + 2*1*4096) bytes / 12.5 us = 673.7 GB/s
assert abs(r1["gbs"] - 673.7) < 0.051, r1["gbs"]
assert r1["regs"] == 64, r1               # from the sm_90 cubin
assert h100[1]["template"] == "q4_decode" and h100[1]["regs"] == -1, h100[1]  # no cubin
w = h100[2]
assert w["template"] == "q4_wmma" and w["group_size"] == 128 and w["n"] == 22016 and w["m"] == 256
assert w["regs"] == 128, w                # no sm_90 cubin: falls back to the sm_80 one
assert a100[0]["cc"] == "8.0" and a100[0]["regs"] == 128 and abs(a100[0]["median_us"] - 140) < 1e-9
EOF

run show_csv "$Q4" show --db "$DB" --csv
expect_rc show_csv 0
[ "$(wc -l <"$T/show_csv.out")" -eq 5 ] && ok || bad "show --csv: want header + 4 lines"
[ "$(head -1 "$T/show_csv.out")" = "device,cc,format,n,k,group_size,m,template,params,median_us,gbs,regs,weights" ] && ok ||
  bad "show --csv header: $(head -1 "$T/show_csv.out")"
python3 - "$T/show_csv.out" <<'EOF' && ok || bad "show --csv does not parse as CSV"
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1], newline="")))
assert len(rows) == 4, rows
for r in rows:
    assert None not in r and all(v is not None for v in r.values()), r
ms = sorted(int(r["m"]) for r in rows)
assert ms == [1, 16, 256, 256], ms
assert {r["template"] for r in rows} == {"q4_decode", "q4_wmma"}
assert any(r["params"].startswith("BLOCK_M=64,") for r in rows)
EOF

run best sqlite3 "$DB" 'select * from best'
expect_rc best 0
[ "$(wc -l <"$T/best.out")" -eq 4 ] && ok || bad "best: want 4 rows, got $(wc -l <"$T/best.out")"
expect_in best out "^NVIDIA H100 80GB HBM3\|9\.0\|q4\|4096\|4096\|4096\|\|1\|q4_decode\|$P_DEC\|12\.5\|64\|673\.7$"
expect_in best out "\|q4_wmma\|"
run runs sqlite3 "$DB" 'select count(*) from runs where ok = 0'
[ "$(cat "$T/runs.out")" = 1 ] && ok || bad "runs view: want 1 rejected run"

# show does not modify a filled database (still 4 winners afterwards)
[ "$(sqlite3 "$DB" 'select count(*) from winners')" = 4 ] && ok || bad "winners changed"

# $Q4TUNE_DB is the default path
Q4TUNE_DB="$DB" run show_env "$Q4" show
expect_rc show_env 0
[ "$(grep -c 'q4_' "$T/show_env.out")" -eq 4 ] && ok || bad "show with Q4TUNE_DB: want 4 rows"

# read-only, as a SQLite URI: the same rows, nothing written
run show_ro "$Q4" show --db "file:$DB?mode=ro"
expect_rc show_ro 0
[ "$(grep -c 'q4_' "$T/show_ro.out")" -eq 4 ] && ok || bad "show read-only: want 4 rows"

# ---- source: a kernel's CUDA source, no GPU needed ------------------------------------
run source "$Q4" source --shape 22016,4096 --group 128 --format q4s --arch 90 --m 3
expect_rc source 0
expect_in source out "^// Generated by q4tune from template q4_decode for sm_90\."
expect_in source out "q4tune_kernel\("
expect_in source err "the default for q4s N=22016 K=4096 g128, M=3, sm_90"
# a variant by name, compiled: its cubin written, its registers said
V='q4_decode[WARPS_N=1,CW=1,WARPS_K=4,SPLIT_K=1,M_TILES=1,UNROLL=1,PIPE=1,ORDER=0,XG=0,XT=1,PF=0,FOLD=1]'
run source_cubin "$Q4" source --shape 22016,4096 --group 128 --format q4s --arch 80 --variant "$V" --cubin "$T/k.cubin"
expect_rc source_cubin 0
expect_in source_cubin out "ukeep"
expect_in source_cubin err "[0-9]+ registers, [0-9]+ bytes spilled; [0-9]+ bytes of cubin in "
[ "$(head -c 4 "$T/k.cubin" 2>/dev/null | od -An -c | tr -d ' ')" = '177ELF' ] && ok || bad "source_cubin: $T/k.cubin is not an ELF file"
run source_noarch "$Q4" source --shape 4096,4096 --m 1
expect_rc source_noarch 2
expect_in source_noarch err "--arch wants a compute capability"
run source_badshape "$Q4" source --shape 100,4096 --arch 90
expect_rc source_badshape 2
expect_in source_badshape err "N=100 is not a multiple of 8"
run source_badvariant "$Q4" source --shape 4096,4096 --arch 90 --variant 'q4_decode[X=1]'
expect_rc source_badvariant nonzero
expect_in source_badvariant err "unknown parameter 'X'"
run source_novariant "$Q4" source --shape 4096,4096 --arch 90 --variant q4_decode
expect_rc source_novariant 2
expect_in source_novariant err "--variant wants TEMPLATE\[PARAMS\]"
run source_two "$Q4" source --shape 4096,4096 --arch 90 --m 1,16
expect_rc source_two 2
expect_in source_two err "one kernel at a time"
# the GPU's multiprocessors size q4s_imma's one-block-a-strip default
run source_sms132 "$Q4" source --shape 4096,11008 --format q4s --arch 80
expect_rc source_sms132 0
expect_in source_sms132 err "q4s_imma\[WARPS_N=1,CW=1,WARPS_K=16,"
run source_sms108 "$Q4" source --shape 4096,11008 --format q4s --arch 80 --sms 108
expect_rc source_sms108 0
expect_in source_sms108 err "q4s_imma\[WARPS_N=1,CW=1,WARPS_K=4,SPLIT_K=2,"
run source_sms0 "$Q4" source --shape 4096,11008 --format q4s --arch 80 --sms 0
expect_rc source_sms0 2
expect_in source_sms0 err "--sms wants the GPU's multiprocessor count"
run source_nocubin "$Q4" source --shape 4096,4096 --arch 90 --cubin "$T/no/such/dir/k.cubin"
expect_rc source_nocubin 1
expect_in source_nocubin err "cannot write"

# ---- a corrupt database --------------------------------------------------------------------
BAD="$T/corrupt.db"
head -c 16384 /dev/urandom >"$BAD"
run corrupt "$Q4" show --db "$BAD"
expect_rc corrupt nonzero
expect_in corrupt err "Q4_ERR_DB"
expect_in corrupt err "corrupt\.db"

# a database header followed by garbage
{ printf 'SQLite format 3\0'; head -c 8176 /dev/urandom; } >"$BAD"
run corrupt2 "$Q4" show --db "$BAD" --json
expect_rc corrupt2 nonzero
expect_in corrupt2 err "Q4_ERR_DB"

# a directory where the database should be
mkdir -p "$T/dir.db"
run dirdb "$Q4" show --db "$T/dir.db"
expect_rc dirdb nonzero
expect_in dirdb err "Q4_ERR_DB"

# a database of a newer schema version
NEWER="$T/newer.db"
sqlite3 "$NEWER" 'create table t(x); pragma user_version = 99;'
run newer "$Q4" show --db "$NEWER"
expect_rc newer nonzero
expect_in newer err "Q4_ERR_DB.*newer"

echo "test_cli: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
