# The front door. `make demo` and `make test` work on a fresh machine: they create .venv,
# install logferry with its dev tools, and fetch Kafka/OpenSearch from Maven Central.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install demo test unit integration charts lint bench faults clean dev-up dev-down

$(STAMP): pyproject.toml setup.py agent/stages/_scan.c indexer/stages/_levels.c \
		indexer/stages/_limits.c indexer/stages/_timestamps.c indexer/stages/_document.c
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/python scripts/demo.py

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

unit: install
	$(BIN)/pytest tests/unit -q

# Starts its own Kafka + OpenSearch (ports 19092/19200) and stops them afterwards.
integration: install
	$(BIN)/pytest tests/integration -q

# Chart tests build helm, kubeconform and a k8s-API validator into .tools/ (Go module proxy).
charts: install
	bash scripts/test-charts.sh

test: lint
	$(BIN)/pytest tests/unit tests/integration -q -p no:cacheprovider
	bash scripts/test-charts.sh

bench: install
	$(BIN)/python -m benchmarks

# Every fault scenario at full size on its own real Kafka + OpenSearch (127.0.0.1:18092/18200),
# then the table: lines written, indexed, duplicated, missing, dead-lettered, catch-up time.
# `make test` runs the short version (tests/integration/test_faults.py).
faults: install
	$(BIN)/python -m tests.faults

dev-up: install
	$(BIN)/logferry dev up

dev-down: install
	$(BIN)/logferry dev down

clean:
	rm -rf $(VENV) .logferry .pytest_cache .mypy_cache .ruff_cache
