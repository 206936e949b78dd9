#!/usr/bin/env bash
# Benchmarks against the Python baseline (../shared/bench-baseline), measured in one run on
# this machine: only the ratios of one run mean anything on a noisy machine.
#
#   scripts/bench.sh [render] [trigger] ...   (default: all sections)
#
# Prints a Markdown table per section, ready for BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
BASELINE_DIR=${BASELINE_DIR:-../shared/bench-baseline}
VENV=target/baseline-venv
SECTIONS=${*:-render trigger}

baseline_python() {
  if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$BASELINE_DIR/requirements.txt"
  fi
  echo "$VENV/bin/python"
}

# Mean time (ns) of a criterion benchmark.
criterion_ns() {
  python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["mean"]["point_estimate"])' \
    "target/criterion/$1/new/estimates.json"
}

ratio() { python3 -c "import sys; print(f'{float(sys.argv[1]) / float(sys.argv[2]):.1f}x')" "$1" "$2"; }

section_render() {
  local py; py=$(baseline_python)
  echo "== render (reference template + context, JSON check included)" >&2
  cargo bench -q -p router-core --bench render --bench matching -- --warm-up-time 2 --measurement-time 5 >&2
  local ns ns_json ns_match base
  ns=$(criterion_ns render/reference_template)
  ns_json=$(criterion_ns render/reference_template_context_from_json)
  ns_match=$(criterion_ns match/one_event_100_routes)
  base=$("$py" "$BASELINE_DIR/bench_seed.py" render 20000 | sed -E 's/.*: ([0-9]+) renders.*/\1/')
  local rs rs_json
  rs=$(python3 -c "print(round(1e9 / $ns))")
  rs_json=$(python3 -c "print(round(1e9 / $ns_json))")
  echo
  echo "| render | renders/s | vs baseline |"
  echo "|---|---:|---:|"
  echo "| Python baseline (\`bench_seed.py render 20000\`) | $base | 1.0x |"
  echo "| router-core, context as template values (\`cargo bench --bench render\`) | $rs | $(ratio "$rs" "$base") |"
  echo "| router-core, context converted from JSON each render | $rs_json | $(ratio "$rs_json" "$base") |"
  echo
  echo "| matching | time per event |"
  echo "|---|---:|"
  echo "| one event against 100 routes (\`cargo bench --bench matching\`) | $(python3 -c "print(f'{$ns_match:.0f} ns')") |"
}

for s in $SECTIONS; do
  if declare -F "section_$s" >/dev/null; then "section_$s"; else echo "unknown section $s" >&2; exit 2; fi
done
