# freeway: the two commands a new machine needs are `make run` and `make test`.

CARGO ?= cargo
PYTHON ?= python3
VENV := .venv
LISTEN ?= 127.0.0.1:4000

.PHONY: run test build test-bins release lint fmt unit e2e venv mcp-servers clients bench clean

## run: fetch the embedded model if missing, build, and serve on $(LISTEN)
run: release
	@if [ -x scripts/fetch-model.sh ]; then scripts/fetch-model.sh; fi
	./target/release/freeway serve --listen $(LISTEN)

build:
	$(CARGO) build --workspace --bins

release:
	$(CARGO) build --release -p freeway-cli

## test: formatting, lints, unit and integration tests, then the end-to-end suite
test: lint unit e2e

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

unit: mcp-servers
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
		$(CARGO) nextest run --workspace --no-fail-fast; \
	else \
		$(CARGO) test --workspace --no-fail-fast; \
	fi

$(VENV)/.installed: tests/e2e/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/e2e/requirements.txt
	touch $@

venv: $(VENV)/.installed

# Third-party MCP servers (npm) that the MCP client's tests run against.
MCP_SERVERS := tests/mcp/node_modules/.installed
$(MCP_SERVERS): tests/mcp/package.json tests/mcp/package-lock.json
	npm ci --prefix tests/mcp --no-audit --no-fund --loglevel=error
	touch $@

mcp-servers: $(MCP_SERVERS)

# The coding-agent CLIs (Claude Code, Codex CLI, opencode) the end-to-end suite drives.
CLIENTS := tests/clients/node_modules/.installed
$(CLIENTS): tests/clients/package.json tests/clients/package-lock.json
	# `npm install` from the lock file: `npm ci` refuses opencode-ai's optional platform
	# packages that are not published for this registry, which install skips.
	npm install --prefix tests/clients --no-audit --no-fund --loglevel=error
	touch $@

clients: $(CLIENTS)

# The same feature set as the unit tests' build, so that `make test` compiles llama.cpp once for
# the tests, not again for `--bins` alone (which leaves dev-dependencies out).
test-bins:
	$(CARGO) build --workspace --all-targets

e2e: test-bins venv mcp-servers clients
	$(VENV)/bin/python -m pytest tests/e2e -q

bench:
	bench/gateway.sh

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean
	rm -rf $(VENV) tests/mcp/node_modules tests/clients/node_modules
