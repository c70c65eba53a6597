# The README's two commands: `make up` and `make test`. Each installs what it needs first
# (Python venv from pyproject.toml, npm packages from package-lock.json, offline solc).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(CURDIR)/$(VENV)/bin
CHECKS := .venv-checks
CHAIN  ?= anvil
PORT   ?= 8545
export PATH := $(BIN):$(PATH)
# py-solc-x looks for the compiler here, inside the checkout: ~/.solcx is shared by every clone
# on a machine, and would point at whichever clone installed last.
export SOLCX_BINARY_PATH := $(CURDIR)/var/solcx

.PHONY: up test install compile bench-gas bench-earn bench-audit bench-api bench-rules bench-exchange bench-metrics bench-ui screenshots chaos slither lint clean

up: install compile
	$(BIN)/loyalty up --chain $(CHAIN) --port $(PORT)

test: install
	$(BIN)/pytest

install: $(VENV)/.installed $(CHECKS)/.installed node_modules/.installed
	@QUIET=1 $(BIN)/python scripts/install_toolchain.py

compile: install
	$(BIN)/brownie compile
	$(BIN)/python scripts/export_abi.py

bench-gas: install
	$(BIN)/brownie run scripts/bench_gas.py

bench-earn: install compile
	$(BIN)/python scripts/bench_earn.py

bench-audit: install compile
	$(BIN)/python scripts/bench_audit.py

bench-api: install compile
	$(BIN)/python scripts/bench_api.py

bench-rules: install compile
	$(BIN)/python scripts/bench_rules.py

bench-exchange: install compile
	$(BIN)/python scripts/bench_exchange.py

bench-metrics: install compile
	SCALE=$(or $(SCALE),1) $(BIN)/python scripts/bench_metrics.py

bench-ui: install compile
	SCALE=$(or $(SCALE),1) $(BIN)/python scripts/bench_ui.py

screenshots: install compile
	$(BIN)/python scripts/ui_screenshots.py

chaos: install compile
	$(BIN)/python scripts/chaos.py

slither: install
	$(BIN)/python scripts/slither_check.py

lint: install
	$(BIN)/ruff check backend scripts tests
	$(BIN)/ruff format --check backend scripts
	$(BIN)/mypy
	$(BIN)/lint-imports

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

$(CHECKS)/.installed: tests/requirements-checks.txt
	$(PYTHON) -m venv $(CHECKS)
	$(CHECKS)/bin/pip install --quiet --upgrade pip
	$(CHECKS)/bin/pip install --quiet -r tests/requirements-checks.txt
	@touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

clean:
	rm -rf build reports var/anvil-home var/bench
