# The two commands of the README: `make run` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Installs come from the locks (every package pinned, every file hashed); `make lock`
# refreshes them from pyproject.toml.
RUNTIME_LOCK := requirements/runtime.txt
TEST_LOCK := requirements/test.txt
BUILD_LOCK := requirements/build.txt
CHECKOV_LOCK := requirements/checkov.txt
UV := uv==0.13.9
# Debian packages the tests run for real: PACKAGE=its commands.
TEST_TOOLS := prometheus=promtool,prometheus \
	prometheus-alertmanager=prometheus-alertmanager,amtool \
	kubectl=kubectl nodejs=node npm=npm
# The policy scanner lives in a venv of its own: its pins are not ours.
CHECKOV := $(VENV)/checkov
NODE_TOOLS := tests/deploy/node_modules

.PHONY: run test lint bench lock secrets promote clean

run: $(VENV)/.installed
	$(BIN)/delinkcious up

test: $(VENV)/.installed-test
	scripts/ensure-backends
	scripts/ensure-debian-tools $(TEST_TOOLS)
	$(MAKE) --no-print-directory $(CHECKOV)/.installed $(NODE_TOOLS)/.installed
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
	$(BIN)/python benchmarks/resources.py
	$(BIN)/python benchmarks/traffic.py

# Refresh every lock to the newest versions pyproject.toml allows (then review the diff).
lock: $(VENV)/bin/python
	$(BIN)/pip install --quiet $(UV)
	$(BIN)/uv pip compile pyproject.toml $(LOCK_FLAGS) -o $(RUNTIME_LOCK)
	$(BIN)/uv pip compile pyproject.toml --extra test $(LOCK_FLAGS) -o $(TEST_LOCK)
	$(BIN)/python -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"], sep="\n")' \
		| $(BIN)/uv pip compile - $(LOCK_FLAGS) -o $(BUILD_LOCK)
	echo checkov | $(BIN)/uv pip compile - $(LOCK_FLAGS) -o $(CHECKOV_LOCK)
	npm install --prefix tests/deploy --package-lock-only --ignore-scripts --no-audit --no-fund
LOCK_FLAGS := --upgrade --universal --python-version 3.11 --only-binary :all: --generate-hashes \
	--no-header --quiet

# A Kubernetes environment's secrets, made once into git-ignored files: make secrets ENV=staging
secrets: $(VENV)/.installed
	$(BIN)/delinkcious release secrets $(ENV)

# Promote the image tags of staging to production (a change to review and commit).
promote: $(VENV)/.installed
	$(BIN)/delinkcious release promote --from staging --to production

$(VENV)/bin/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "Delinkcious needs Python 3.11 or newer ($(PYTHON) is older)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(VENV)/bin/python pyproject.toml $(RUNTIME_LOCK)
	$(BIN)/pip install --quiet --require-hashes --no-deps -r $(RUNTIME_LOCK)
	$(BIN)/pip install --quiet --no-deps -e .
	@touch $@

$(VENV)/.installed-test: $(VENV)/bin/python pyproject.toml $(TEST_LOCK)
	$(BIN)/pip install --quiet --require-hashes --no-deps -r $(TEST_LOCK)
	$(BIN)/pip install --quiet --no-deps -e .
	@touch $@ $(VENV)/.installed

$(CHECKOV)/.installed: $(CHECKOV_LOCK)
	$(PYTHON) -m venv $(CHECKOV)
	$(CHECKOV)/bin/pip install --quiet --require-hashes --no-deps -r $(CHECKOV_LOCK)
	@touch $@

$(NODE_TOOLS)/.installed: tests/deploy/package.json tests/deploy/package-lock.json
	npm ci --prefix tests/deploy --ignore-scripts --no-audit --no-fund --loglevel=error
	@touch $@

clean:
	rm -rf $(VENV) $(NODE_TOOLS) .pytest_cache .ruff_cache .mypy_cache
