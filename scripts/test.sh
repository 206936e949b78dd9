#!/usr/bin/env bash
# Runs every test: the template checks (cfn-lint, sam validate, invariants), the source
# checks (Markdown paths, one-way module imports, function length), fmt, clippy
# and the workspace's tests. Installs the Python test tools into .venv (pinned in
# requirements-dev.txt), starts moto_server on a free 127.0.0.1 port for the SQS and
# Secrets Manager tests, and stops it on exit, whether the tests pass or fail.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv
if [ ! -x "$VENV/bin/moto_server" ] || ! cmp -s requirements-dev.txt "$VENV/.installed-requirements"; then
  echo "==> installing test tools into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r requirements-dev.txt
  cp requirements-dev.txt "$VENV/.installed-requirements"
fi

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p target
"$VENV/bin/moto_server" -H 127.0.0.1 -p "$PORT" >target/moto.log 2>&1 &
MOTO_PID=$!
cleanup() {
  kill "$MOTO_PID" 2>/dev/null || true
  wait "$MOTO_PID" 2>/dev/null || true
}
trap cleanup EXIT INT TERM

for _ in $(seq 1 150); do
  if curl -fs "http://127.0.0.1:$PORT/moto-api/" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$MOTO_PID" 2>/dev/null; then echo "moto_server died; see target/moto.log" >&2; exit 1; fi
  sleep 0.1
done
curl -fs "http://127.0.0.1:$PORT/moto-api/" >/dev/null || { echo "moto_server did not start; see target/moto.log" >&2; exit 1; }
echo "==> moto_server on 127.0.0.1:$PORT"

export MOTO_ENDPOINT="http://127.0.0.1:$PORT"
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true

echo "==> template.yaml: cfn-lint, sam validate --lint, invariants"
"$VENV/bin/cfn-lint" template.yaml
SAM_CLI_TELEMETRY=0 "$VENV/bin/sam" validate --lint --template template.yaml --region us-east-1 >/dev/null
"$VENV/bin/python" -m unittest discover -s infra/tests

echo "==> Markdown: every repository path named exists"
python3 scripts/doc_paths.py
echo "==> module imports: one way (scripts/module_graph.py prints the graph)"
python3 scripts/module_graph.py >target/module-graph.txt || { cat target/module-graph.txt; exit 1; }
tail -n 1 target/module-graph.txt
echo "==> functions: none over about 60 lines without a reason (scripts/long_functions.py)"
python3 scripts/long_functions.py >target/long-functions.txt || { cat target/long-functions.txt; exit 1; }
tail -n 1 target/long-functions.txt
echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "==> cargo test"
status=0
# Four tests at a time on two cores: most of them wait (on a `routerctl serve` child, a
# target, a timer), not compute; every wait is for an outcome, never a short clock.
# (RUST_TEST_THREADS: the benches, which run once here as tests, take no --test-threads.)
RUST_TEST_THREADS="${RUST_TEST_THREADS:-4}" cargo test --workspace --all-targets --no-fail-fast 2>&1 | tee target/test.log || status=$?
# One closing line for the whole run (the last cargo line is often an empty doc-test run),
# and the failing tests by name when there are any.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "%d passed, %d failed\n", p, f }' target/test.log
grep -E '^test .* FAILED$' target/test.log | sed 's/^test /FAILED: /; s/ \.\.\. FAILED$//' || true
exit "$status"
