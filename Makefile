# collective: the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
TOOLS_BIN := $(CURDIR)/tools/node_modules/.bin
export COLLECTIVE_TOOLS_BIN ?= $(TOOLS_BIN)
export PATH := $(TOOLS_BIN):$(PATH)
CARGO ?= cargo

.PHONY: all tools sysdeps build test test-rust test-contracts lint lint-rust deny cargo-deny-tool audit-deps demo bench clean-demo

all: build

# Debian packages the sandbox, the age interop tests, the example jobs and the demo need.
sysdeps:
	@missing=""; command -v bwrap >/dev/null || missing="$$missing bubblewrap"; \
	 command -v age >/dev/null || missing="$$missing age"; \
	 command -v git >/dev/null || missing="$$missing git"; \
	 command -v curl >/dev/null || missing="$$missing curl"; \
	 command -v python3 >/dev/null || missing="$$missing python3"; \
	 command -v gzip >/dev/null || missing="$$missing gzip"; \
	 [ -x /usr/bin/time ] || missing="$$missing time"; \
	 if [ -n "$$missing" ]; then \
	   echo "installing:$$missing"; \
	   if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq $$missing; \
	   else sudo apt-get update -qq && sudo apt-get install -y -qq $$missing; fi; \
	 fi

# anvil, forge, cast, solcjs and OpenZeppelin, pinned by tools/package-lock.json, installed in the repo.
tools: tools/node_modules/.installed
tools/node_modules/.installed: tools/package.json tools/package-lock.json
	cd tools && npm ci --no-audit --no-fund
	touch $@

build: tools
	$(CARGO) build --workspace --all-targets

test-contracts: tools
	cd contracts && $(TOOLS_BIN)/forge test
	./contracts/check-artifacts.sh

test-rust: tools sysdeps
	$(CARGO) test --workspace

test: test-contracts test-rust

# cargo-deny, pinned, built once into tools/cargo-deny (crates.io only).
CARGO_DENY_VERSION := 0.18.9
CARGO_DENY := $(CURDIR)/tools/cargo-deny/bin/cargo-deny
$(CARGO_DENY):
	$(CARGO) install --locked cargo-deny --version $(CARGO_DENY_VERSION) --root $(CURDIR)/tools/cargo-deny

cargo-deny-tool: $(CARGO_DENY)

lint: lint-rust deny

lint-rust:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps

# Licenses, banned crates (serde_yaml, openssl-sys) and sources, per deny.toml.
deny: $(CARGO_DENY)
	$(CARGO_DENY) check --hide-inclusion-graph bans licenses sources

# Known vulnerabilities (fetches the RustSec database from GitHub, so not in lint).
audit-deps: $(CARGO_DENY)
	$(CARGO_DENY) check advisories

demo: tools sysdeps
	$(CARGO) build --bin collective
	./scripts/demo.sh

bench: tools sysdeps
	./scripts/bench.sh
