# The two commands: `make run` (the demo on the embedded default) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev

.PHONY: run test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "newsflow needs Python 3.11+"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

run: $(STAMP)  ## process examples/ end to end: embedded Redis, local workers, SQLite
	$(BIN)/newsflow run examples

test: $(STAMP)  ## lint and type-check, then the whole test suite
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(STAMP)  ## every benchmark in turn, on the embedded default (about an hour on 2 cores)
	$(BIN)/python -m bench.quality
	$(BIN)/python -m bench.summaries
	$(BIN)/python -m bench.throughput
	$(BIN)/python -m bench.soak
	$(BIN)/python -m bench.export_memory

clean:
	rm -rf $(VENV) .newsflow newsflow.db newsflow.db-wal newsflow.db-shm
