#!/usr/bin/env bash
# Runs every libFuzzer target of fuzz/ for FUZZ_SECS seconds each (nightly, cargo-fuzz) and
# prints one summary line per target: executions, executions per second, corpus size, crashes.
# The committed seeds (fuzz/corpus/<target>) are read, never written: new inputs go to
# fuzz/target/corpus/<target>. A crash is kept in fuzz/artifacts/<target>/ and fails the run.
# Usage: tools/fuzz/run.sh [target...]   (default: every target in fuzz/Cargo.toml)
set -euo pipefail
cd "$(dirname "$0")/../../fuzz"
secs="${FUZZ_SECS:-30}"
cargo="${CARGO:-cargo}"
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <($cargo +nightly fuzz list)
fi
$cargo +nightly fuzz build -O
mkdir -p target/fuzz-logs
failed=0
printf '%-16s %12s %10s %8s %8s\n' target execs exec/s corpus crashes
for t in "${targets[@]}"; do
  mkdir -p "target/corpus/$t" "artifacts/$t"
  before=$(find "artifacts/$t" -type f | wc -l)
  log="target/fuzz-logs/$t.log"
  status=0
  $cargo +nightly fuzz run -O "$t" "target/corpus/$t" "corpus/$t" -- \
    -max_total_time="$secs" -print_final_stats=1 -timeout=10 -rss_limit_mb=4096 >"$log" 2>&1 || status=$?
  after=$(find "artifacts/$t" -type f | wc -l)
  stat() { grep -m1 "^stat::$1:" "$log" | awk '{print $2}'; }
  execs=$(stat number_of_executed_units || true)
  rate=$(stat average_exec_per_sec || true)
  corpus=$(find "target/corpus/$t" "corpus/$t" -type f | wc -l)
  crashes=$((after - before))
  printf '%-16s %12s %10s %8s %8s\n' "$t" "${execs:-?}" "${rate:-?}" "$corpus" "$crashes"
  if [ "$status" -ne 0 ] || [ "$crashes" -gt 0 ]; then
    failed=1
    echo "  $t failed (exit $status); log: fuzz/$log; inputs: fuzz/artifacts/$t/" >&2
    grep -m5 -E 'panicked|ERROR|SUMMARY' "$log" >&2 || true
  fi
done
exit "$failed"
