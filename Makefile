# The README's two commands: `make demo` and `make test`.
# Each creates .venv with the pinned CPU-only install when it is missing or stale.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
BIN := $(VENV)/bin

.PHONY: demo test test-fast install clean bench

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

## Runs prepare -> train -> sample -> evaluate -> report on the embedded default
## (scikit-learn digits, local Ray, Prefect's embedded server).
## Extra options: make demo ARGS="--set resources.num_workers=2"
demo: $(STAMP)
	$(BIN)/boltzgan run demo $(ARGS)

## The whole test suite (unit tests plus the few marked Ray/Prefect integration tests).
test: $(STAMP)
	$(BIN)/python -m pytest -q

## Unit tests only (seconds).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not ray and not slow"

clean:
	rm -rf $(VENV) runs
