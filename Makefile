# The two set-up commands of the README:
#   make run    the whole router locally, on the embedded queue
#   make test   every test (installs its tools into .venv, starts moto_server)

.PHONY: run test bench fmt lint

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
