export Q4TUNE_DB=/tmp/act.db
Q=./build/q4tune
S="--shape 22016,4096 --group 128"
$Q tune $S --m 1,16,2048 2>&1 | grep -E "M=[0-9 ]+[0-9.]+ us|done"
$Q tune $S --act-order --m 1,16,2048 2>&1 | grep -E "M=[0-9 ]+[0-9.]+ us|done"
$Q check --shape 11008,4096 --shape 4096,11008 --shape 22016,4096 --group 128 --act-order --m 1,16,100,2048 2>&1 | grep -E "FAIL|check:|rror"
compute-sanitizer --tool memcheck --error-exitcode 3 $Q check --shape 4096,4096 --group 64 --act-order --symmetric --m 1,17,300 2>&1 | grep -E "FAIL|check:|ERROR SUMMARY"
$Q bench $S --m 1,16,2048 2>&1 | grep "^| q4"
$Q bench $S --act-order --m 1,16,2048 2>&1 | grep "^| q4"
