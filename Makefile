# `make run` and `make test` are all a newcomer needs: both install first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint format bench clean

install: $(STAMP)

# Re-installs only when pyproject.toml changes (the package itself is editable).
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "supervisor needs Python 3.11 or newer ($(PYTHON) is older); set PYTHON=..."; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: install
	$(BIN)/supervisor run -c supervisor.toml

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check supervisor bots tests bench
	$(BIN)/ruff format --check supervisor bots tests bench
	$(BIN)/mypy

format: install
	$(BIN)/ruff check --fix supervisor bots tests bench
	$(BIN)/ruff format supervisor bots tests bench

# All of them take about 40 minutes; `make bench BENCHES=cache` runs one.
BENCHES ?= lifecycle ipc scaling monitor cache db logs

bench: install
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	bash bench/baselines/install.sh
	for b in $(BENCHES); do echo "== bench/$$b.py"; $(BIN)/python bench/$$b.py || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .supervisor
