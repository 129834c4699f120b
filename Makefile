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

# Every benchmark script (benchmarks/_*.py are their shared helpers).
BENCHES := $(filter-out benchmarks/_%,$(wildcard benchmarks/*.py))
DOCS_STAMP := $(VENV)/.docs-installed

.PHONY: demo test test-suite test-slow lint bench bench-full docs docs-serve wheel-check install clean

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
	$(BIN)/ruff check src tests benchmarks conftest.py docs/*.py
	$(BIN)/ruff format --check src tests benchmarks conftest.py docs/*.py
	$(BIN)/mypy

# `make bench`: every benchmark at its quick (smoke) settings, about 7 minutes on 2 loaded cores;
# `make bench-full`: the full-size runs behind the README's tables (about an hour on 2 cores).
bench: $(STAMP)
	@set -e; for script in $(BENCHES); do echo "== $$script --quick"; $(BIN)/python $$script --quick; done

bench-full: $(STAMP)
	@set -e; for script in $(BENCHES); do echo "== $$script"; $(BIN)/python $$script; done

# The documentation site, built into site/; --strict turns a broken reference into an error.
$(DOCS_STAMP): $(STAMP) pyproject.toml
	$(BIN)/python -m pip install --quiet --disable-pip-version-check $(TORCH) -e '.[docs]'
	touch $@

# The lab's numbers come from the committed docs/_generated/lab-quick.json (a `stabletrain lab
# --quick` run's results.json); the includes and figures are rebuilt from it every time.
docs: $(DOCS_STAMP)
	$(BIN)/python docs/gen_lab_numbers.py
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

docs-serve: $(DOCS_STAMP)
	$(BIN)/python docs/gen_lab_numbers.py
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

# Build the wheel and run `stabletrain diagnose` from a clean venv with no extras.
wheel-check: $(STAMP)
	PYTHON=$(BIN)/python TORCH=$(TORCH) .ci/wheel-check

clean:
	rm -rf $(VENV) build site docs/_generated/lab src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
