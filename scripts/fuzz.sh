#!/usr/bin/env bash
# Runs each fuzz target (fuzz/fuzz_targets) for SECONDS (default 60) and prints one line per
# target: executions and crashes. Not part of `make test`.
#
#   cargo install cargo-fuzz      # once
#   scripts/fuzz.sh 300
#
# cargo-fuzz needs nightly flags; with only a stable toolchain, RUSTC_BOOTSTRAP=1 allows them.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
SECONDS_EACH=${1:-60}
export RUSTC_BOOTSTRAP=1
for target in trigger_body routes_loader renderer; do
  mkdir -p "corpus/$target"
  log=$(mktemp)
  status=0
  cargo fuzz run "$target" "corpus/$target" -- -max_total_time="$SECONDS_EACH" -print_final_stats=1 -rss_limit_mb=1024 -timeout=10 >"$log" 2>&1 || status=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  crashes=$(find artifacts/"$target" -type f 2>/dev/null | wc -l)
  echo "$target: ${runs:-0} executions in ${SECONDS_EACH}s, $crashes crash artifacts, exit $status"
  if [ "$status" -ne 0 ]; then tail -30 "$log"; fi
  rm -f "$log"
done
