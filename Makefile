# The two set-up commands of the README:
#   make run    the whole router locally, on the embedded queue
#   make test   every test (installs its tools into .venv, starts moto_server)

.PHONY: run test bench fmt lint lambda

run:
	cargo run -p routerctl -- serve --routes examples/routes.toml --secrets examples/secrets.toml --demo-echo

test:
	./scripts/test.sh

bench:
	./scripts/bench.sh

fmt:
	cargo fmt --all

lint:
	cargo clippy --workspace --all-targets -- -D warnings

# The three Lambda binaries for arm64 (what `sam build` does through cargo-lambda), with
# cargo-lambda and Zig from PyPI in .venv.
lambda:
	test -x .venv/bin/python || python3 -m venv .venv
	.venv/bin/pip install --quiet -r requirements-lambda.txt
	rustup target add aarch64-unknown-linux-gnu
	PATH="$(CURDIR)/.venv/bin:$$PATH" cargo lambda build --release --arm64 --bin trigger --bin deliver --bin token-refresh
