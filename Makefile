# `make run` and `make test` are all a newcomer needs: both install first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test test-stress lint format bench lock clean

install: $(STAMP)

# Re-installs only when pyproject.toml or the lock changes (the package itself is editable).
# constraints-dev.txt pins every package the dev extra brings, so a new release of a test tool
# cannot break a fresh clone; `make lock` refreshes it from the newest releases.
$(STAMP): pyproject.toml constraints-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "supervisor needs Python 3.11 or newer ($(PYTHON) is older); set PYTHON=..."; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]' -c constraints-dev.txt
	touch $(STAMP)

run: install
	$(BIN)/supervisor run -c supervisor.toml

test: install
	$(BIN)/python -m pytest -q

# The suite with a busy-looping process on every core: it must pass like this too.
test-stress: install
	$(BIN)/python tests/load.py $(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check supervisor bots tests bench
	$(BIN)/ruff format --check supervisor bots tests bench
	$(BIN)/mypy
	bash -n .ci/run
	bash -n bench/baselines/install.sh

format: install
	$(BIN)/ruff check --fix supervisor bots tests bench
	$(BIN)/ruff format supervisor bots tests bench

# All of them take about 40 minutes; `make bench BENCHES=cache` runs one.
BENCHES ?= lifecycle ipc scaling monitor cache db logs

bench: install
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]' -c constraints-dev.txt
	bash bench/baselines/install.sh
	for b in $(BENCHES); do echo "== bench/$$b.py"; $(BIN)/python bench/$$b.py || exit 1; done

# Re-resolve the dev extra in a scratch venv and pin what it got.
lock:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install --quiet -e '.[dev]'
	{ sed -n '1,2p' constraints-dev.txt; .venv-lock/bin/python -m pip freeze --exclude-editable | grep -v '^-e'; } > constraints-dev.tmp
	mv constraints-dev.tmp constraints-dev.txt && rm -rf .venv-lock

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .supervisor
