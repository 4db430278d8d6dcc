# AutoOps: `make demo` runs the main job, `make test` runs every check.
# Both create the virtualenv (.venv) on first use; later runs skip the install
# unless pyproject.toml or constraints.txt changed.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

# The install is keyed on the content of the two files that decide it.
DEPS_HASH := $(shell cat pyproject.toml constraints.txt | $(PYTHON) -c \
	'import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest()[:16])')
STAMP := $(VENV)/.installed-$(DEPS_HASH)

# Test and benchmark data lives beside the repo (../shared/data), never in it.
ifneq ($(wildcard ../shared/data),)
export AUTOOPS_DATA_DIR ?= $(abspath ../shared/data)
endif

.PHONY: setup demo test lint bench clean

## setup: create .venv if missing and install autoops[dev] with the pinned constraints
setup: $(STAMP)

$(STAMP):
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

## demo: run the main job: the live demo on a local Ray (autoops demo)
demo: setup
	$(BIN)/autoops demo

## lint: ruff, mypy (strict) and the import-layer contracts
lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

## test: lint, then the whole test suite (unit, integration, sim)
test: lint
	$(BIN)/pytest

## bench: list the benchmarks (placeholder until `autoops bench` exists)
bench: setup
	$(BIN)/autoops bench --help

## clean: remove the virtualenv, caches and build outputs
clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
