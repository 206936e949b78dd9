#!/usr/bin/env bash
# Delivery benchmark (BENCHMARKS.md, "Delivery"): the Python baseline's delivery engine
# and the deliver function's Deliverer against the same fast local sink, in one run.
#
#   functions/deliver/bench.sh [N_RUST] [N_PYTHON] [REPEAT]    (defaults 50000 3000 3)
#
# Every figure is the best of REPEAT runs, the baseline's too (the machine is shared and
# noisy; the best run is the least disturbed one). Needs python3 with venv; the baseline's
# packages go into $BASELINE_VENV (default target/baseline-venv, as scripts/bench.sh). The baseline is read from
# scripts/baseline (a copy of the brief's baseline).
set -euo pipefail
cd "$(dirname "$0")/../.."

N_RUST=${1:-50000}
N_PY=${2:-3000}
REPEAT=${3:-3}
BASELINE=${BASELINE_DIR:-scripts/baseline}
VENV=${BASELINE_VENV:-target/baseline-venv}

if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import httpx, jinja2, fastapi, structlog' 2>/dev/null; then
  echo "==> installing the baseline's packages into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$BASELINE/requirements.txt"
fi

echo "==> cargo build --release -p deliver --example deliver_bench"
cargo build --release --quiet -p deliver --example deliver_bench
BIN=target/release/examples/deliver_bench

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$BIN" sink "$PORT" >/dev/null &
SINK_PID=$!
cleanup() { kill "$SINK_PID" 2>/dev/null || true; wait "$SINK_PID" 2>/dev/null || true; }
trap cleanup EXIT INT TERM
for _ in $(seq 1 100); do
  if python3 -c "import socket; socket.create_connection(('127.0.0.1', $PORT), 0.2)" 2>/dev/null; then break; fi
  sleep 0.05
done
URL="http://127.0.0.1:$PORT/hook"
echo "==> sink on $URL; $(nproc) cores; best of $REPEAT runs each"

# best_of PATTERN CMD...: runs CMD $REPEAT times, prints each line, sets BEST/BEST_LINE.
best_of() {
  local pattern=$1; shift
  BEST=0; BEST_LINE=""
  for _ in $(seq 1 "$REPEAT"); do
    local out rate
    out=$("$@")
    echo "   $out"
    rate=$(echo "$out" | sed -n "s/^$pattern: \([0-9]*\) deliveries.*/\1/p")
    if [ "$rate" -gt "$BEST" ]; then BEST=$rate; BEST_LINE=$out; fi
  done
}

best_of "seed deliver" "$VENV/bin/python" "$BASELINE/bench_seed.py" deliver "$URL" "$N_PY"
PY_RATE=$BEST; PY_LINE=$BEST_LINE

SUMMARY=()
# "1 1" is what the deliver Lambda runs: one batch at a time on one runtime thread.
for setting in "1 1" "1 2" "4 2"; do
  set -- $setting
  best_of "rust deliver" "$BIN" run "$URL" "$N_RUST" "$1" "$2"
  SUMMARY+=("$BEST_LINE|$BEST")
done

echo
echo "==> best runs"
echo "   $PY_LINE"
for s in "${SUMMARY[@]}"; do
  line=${s%|*}; rate=${s##*|}
  python3 -c "import sys; print(f'   {sys.argv[1]}  => {int(sys.argv[2]) / int(sys.argv[3]):.1f}x the baseline')" "$line" "$rate" "$PY_RATE"
done
