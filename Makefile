# `make demo` and `make test` work on a fresh machine with nothing but Python 3.10+:
# they create .venv, install the pinned CPU PyTorch, then stabletrain with its extras.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Pinned here (a CPU build is on this machine's disk); pyproject.toml accepts torch>=2.2.
TORCH  := torch==2.13.0

# The tests run in a random order (pytest-randomly); the header prints its seed
# ("Using --randomly-seed=N") and `make test SEED=N` runs that order again.
ORDER  := -p randomly $(if $(SEED),--randomly-seed=$(SEED))

.PHONY: demo test test-suite test-slow lint bench install clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check $(TORCH)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[all,dev,hf,lightning]'
	touch $@

demo: $(STAMP)
	$(BIN)/stabletrain demo

# CI runs the quick variants; `make test-slow` runs the full-size experiments marked slow.
test: lint test-suite

# The quick suite alone, without lint.
test-suite: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" $(ORDER)

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow $(ORDER)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks conftest.py
	$(BIN)/ruff format --check src tests benchmarks conftest.py
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python benchmarks/init_speed.py

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
