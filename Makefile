# The two commands of the README: `make run` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEPS := pyproject.toml
# Debian packages the alerting tests run for real: PACKAGE=its commands.
OBSERVABILITY_TOOLS := prometheus=promtool,prometheus \
	prometheus-alertmanager=prometheus-alertmanager,amtool

.PHONY: run test lint bench clean

run: $(VENV)/.installed
	$(BIN)/delinkcious up

test: $(VENV)/.installed-test
	scripts/ensure-backends
	scripts/ensure-debian-tools $(OBSERVABILITY_TOOLS)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy src tests benchmarks
	$(BIN)/pytest

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy src tests benchmarks

bench: $(VENV)/.installed-test
	scripts/ensure-debian-tools wrk=wrk valgrind=valgrind,callgrind_control
	$(BIN)/python benchmarks/list_links.py
	$(BIN)/python benchmarks/chain_ab.py
	$(BIN)/python benchmarks/chain_instructions.py

$(VENV)/bin/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "Delinkcious needs Python 3.11 or newer ($(PYTHON) is older)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(VENV)/bin/python $(DEPS)
	$(BIN)/pip install --quiet -e .
	@touch $@

$(VENV)/.installed-test: $(VENV)/bin/python $(DEPS)
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@ $(VENV)/.installed

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
