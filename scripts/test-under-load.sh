#!/usr/bin/env bash
# Runs the whole test command (`make test`) RUNS times (default 3) while two CPU-bound
# processes run beside it, as on a busy CI host, and prints one line per run: its number,
# pass or FAIL, how long it took, and the closing count of passed and failed tests. A
# failed run's whole output is kept in target/under-load/run-N.log (every run's is).
#
#   scripts/test-under-load.sh [RUNS]
#
# Exits 0 only if every run passed. A tool for checking that no test depends on an idle
# machine; not part of `make test`.
set -uo pipefail
cd "$(dirname "$0")/.."

RUNS=${1:-3}
case "$RUNS" in '' | *[!0-9]*) echo "usage: $0 [RUNS]" >&2; exit 2 ;; esac
OUT=target/under-load
mkdir -p "$OUT"

HOGS=()
stop_hogs() {
  for pid in "${HOGS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${HOGS[@]}"; do wait "$pid" 2>/dev/null || true; done
  HOGS=()
}
trap stop_hogs EXIT INT TERM

# Two busy loops, one per core of a two-core machine, at normal priority.
for _ in 1 2; do
  (while :; do :; done) &
  HOGS+=($!)
done
echo "under load: ${#HOGS[@]} CPU-bound processes beside make test (pids ${HOGS[*]}); $(nproc) cores"

failed=0
for run in $(seq 1 "$RUNS"); do
  log="$OUT/run-$run.log"
  started=$(date +%s)
  make test >"$log" 2>&1
  status=$?
  took=$(($(date +%s) - started))
  counts=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -1)
  if [ "$status" -eq 0 ]; then
    verdict=pass
  else
    verdict=FAIL
    failed=$((failed + 1))
    counts="${counts:-no test summary}; failing: $(grep -E '^FAILED: ' "$log" | sed 's/^FAILED: //' | sort -u | tr '\n' ' ')(see $log)"
  fi
  printf 'run %d/%d: %s in %dm%02ds (%s)\n' "$run" "$RUNS" "$verdict" $((took / 60)) $((took % 60)) "${counts:-no test summary}"
done
[ "$failed" -eq 0 ]
