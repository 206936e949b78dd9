#!/usr/bin/env bash
# `sam build` from the repo root, unattended, the way README.md's "Deploying to AWS" says:
# the SAM CLI, cargo-lambda and Zig from PyPI into .venv, the arm64 Rust target, then
# `sam build` with samconfig.toml's build settings (beta features for the Rust build).
# The result is in .aws-sam/build; `sam deploy --config-env dev` deploys it.
#
# Not part of `make test`: a cold arm64 release build of the three functions took 18 minutes
# on the 2-core development machine (2026-11-27; warm: about a minute). The GitHub workflow (.github/workflows/deploy.yml) runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
test -x .venv/bin/python || python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt -r requirements-lambda.txt
rustup target add aarch64-unknown-linux-gnu >/dev/null
export PATH="$PWD/.venv/bin:$PATH"
export SAM_CLI_TELEMETRY=0
sam build "$@"
for f in TriggerFunction DeliverFunction TokenRefreshFunction; do
  test -x ".aws-sam/build/$f/bootstrap" || { echo "sam build did not produce $f/bootstrap" >&2; exit 1; }
done
echo "sam build: .aws-sam/build holds the three functions and the routes layer"
