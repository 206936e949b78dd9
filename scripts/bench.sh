#!/usr/bin/env bash
# Benchmarks against the Python baseline (scripts/baseline), measured in one run on
# this machine: only the ratios of one run mean anything on a noisy machine.
#
#   scripts/bench.sh [serve] [render] [trigger] ...   (default: all sections)
#
# `serve` is the headline: `routerctl serve` as users run it, trigger and deliver in one
# process under wrk (scripts/serve_bench.py: serve, sizes, routes, backlog). The other
# sections measure the parts alone (what each Lambda function does).
#
# Prints a Markdown table per section, ready for BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
BASELINE_DIR=${BASELINE_DIR:-scripts/baseline}
VENV=target/baseline-venv
SECTIONS=${*:-serve render trigger deliver coldstart}

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

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

wait_port() {
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "nothing listens on port $1" >&2; return 1
}

# wrk at 32 connections for $2 seconds against $1 with script $3; prints "rps p50 p99".
load() {
  wrk -t1 -c32 -d"$2"s --latency -s "$3" "$1" | python3 -c '
import re, sys
text = sys.stdin.read()
rps = re.search(r"Requests/sec:\s+([0-9.]+)", text).group(1)
def pct(p):
    m = re.search(r"^\s+%s%%\s+([0-9.]+)(us|ms|s)" % p, text, re.M)
    v, unit = float(m.group(1)), m.group(2)
    return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v
errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
if errors:
    sys.exit("non-2xx answers under load: " + errors.group(1))
print(f"{float(rps):.0f} {pct(50):.2f} {pct(99):.2f}")'
}

peak_rss_mb() { awk '/VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }

section_serve() {
  command -v wrk >/dev/null || { echo "section serve needs wrk (apt-get install wrk)" >&2; exit 2; }
  baseline_python >/dev/null
  # Two builds: `--example` would narrow one build to the example alone, and serve_bench.py
  # would then measure whatever routerctl binary was built last.
  cargo build -q --release -p routerctl --bin routerctl >&2
  cargo build -q --release -p deliver --example deliver_bench >&2
  BASELINE_DIR=$BASELINE_DIR python3 scripts/serve_bench.py --seconds "${SERVE_SECONDS:-10}"
}

section_trigger() {
  command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 2; }
  local py; py=$(baseline_python)
  local secs=${TRIGGER_SECONDS:-10}
  echo "== trigger (32 connections, ${secs}s each)" >&2
  cargo build -q --release -p trigger --example bench_server >&2
  local port pid base ours base_rss our_rss
  port=$(free_port)
  "$py" "$BASELINE_DIR/serve_seed.py" "$port" >/dev/null 2>&1 &
  pid=$!
  wait_port "$port"
  base=$(load "http://127.0.0.1:$port/api/v2/webhooks/trigger" "$secs" "$BASELINE_DIR/trigger.lua")
  base_rss=$(peak_rss_mb "$pid")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  port=$(free_port)
  LOG_FORMAT=json target/release/examples/bench_server "$port" >/dev/null 2>&1 &
  pid=$!
  wait_port "$port"
  ours=$(load "http://127.0.0.1:$port/api/v2/webhooks/trigger" "$secs" scripts/trigger.lua)
  our_rss=$(peak_rss_mb "$pid")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  read -r brps bp50 bp99 <<<"$base"
  read -r orps op50 op99 <<<"$ours"
  echo
  echo "| trigger, 32 connections | requests/s | p50 ms | p99 ms | peak RSS MB | vs baseline |"
  echo "|---|---:|---:|---:|---:|---:|"
  echo "| Python baseline (\`serve_seed.py\`, wrk \`trigger.lua\`) | $brps | $bp50 | $bp99 | $base_rss | 1.0x |"
  echo "| trigger router, embedded durable queue (\`--example bench_server\`) | $orps | $op50 | $op99 | $our_rss | $(ratio "$orps" "$brps") |"
}

section_deliver() {
  echo "== deliver (batches of 10 against a local sink)" >&2
  BASELINE_VENV="$VENV" functions/deliver/bench.sh
}

section_coldstart() {
  local py; py=$(baseline_python)
  [ -x .venv/bin/moto_server ] || { echo "run 'make test' once: the trigger's cold start reads its key from moto" >&2; exit 2; }
  echo "== cold start (process start to the first Runtime API poll, median of 10)" >&2
  cargo build -q --release -p trigger -p deliver -p token-refresh --bins >&2
  local port mpid
  port=$(free_port)
  .venv/bin/moto_server -H 127.0.0.1 -p "$port" >/dev/null 2>&1 &
  mpid=$!
  wait_port "$port"
  eval "$(infra/local-stack.sh "http://127.0.0.1:$port")"
  local common=(ROUTES_FILE=infra/config/routes.toml QUEUE_URL="$QUEUE_URL" DEAD_LETTER_QUEUE_URL="$DEAD_LETTER_QUEUE_URL"
    AWS_ENDPOINT_URL="$AWS_ENDPOINT_URL" AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1)
  local t d r b
  t=$(python3 scripts/coldstart.py 10 target/release/trigger "${common[@]}")
  d=$(python3 scripts/coldstart.py 10 target/release/deliver "${common[@]}")
  r=$(python3 scripts/coldstart.py 10 target/release/token-refresh "${common[@]}")
  kill "$mpid"; wait "$mpid" 2>/dev/null || true
  b=$("$py" - "$BASELINE_DIR" <<'PYEOF'
import resource, statistics, subprocess, sys, time
runs = []
for _ in range(10):
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {sys.argv[1]!r}); import webhook_router"], check=True)
    runs.append((time.perf_counter() - start) * 1000)
print(f"{statistics.median(runs):.1f} {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024:.1f}")
PYEOF
)
  read -r tms trss <<<"$t"; read -r dms drss <<<"$d"; read -r rms rrss <<<"$r"; read -r bms brss <<<"$b"
  echo
  echo "| cold start | ms to first poll | peak RSS MB | vs baseline |"
  echo "|---|---:|---:|---:|"
  echo "| Python baseline (\`python -c 'import webhook_router'\`) | $bms | $brss | 1.0x |"
  echo "| trigger (config, routes, SQS + Secrets Manager clients, ingest key read) | $tms | $trss | $(ratio "$bms" "$tms") faster |"
  echo "| deliver (config, routes, clients, HTTP client) | $dms | $drss | $(ratio "$bms" "$dms") faster |"
  echo "| token-refresh (config, routes, Secrets Manager client) | $rms | $rrss | $(ratio "$bms" "$rms") faster |"
}

for s in $SECTIONS; do
  if declare -F "section_$s" >/dev/null; then "section_$s"; else echo "unknown section $s" >&2; exit 2; fi
done
