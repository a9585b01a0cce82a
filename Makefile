# Two commands (see README.md):
#   make book   set up .venv, build the book, print where to open it
#   make test   set up .venv, run the unit tests, build the book from scratch, check it
# and, for contributors:
#   make unit   the fast unit tests only (the inner loop)
#   make lint   ruff on the library, the tests and the benchmarks
#   make core   the unit tests in .venv-core, which holds NumPy and the test tools only:
#               proves that `import dlfp` and its checks need nothing else
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The test build has its own folder, so `make test` never touches the cache of `make book`.
TEST_BUILD := _build/test

CORE   ?= .venv-core

.PHONY: book test unit lint core setup clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else \
	  "dlfp needs Python 3.11 or newer: run make PYTHON=python3.11 (or newer).")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[all]"
	@touch $@

# Models that one chapter trains and a later one inspects are kept beside the build.
book: setup
	DLFP_ARTIFACTS=$(abspath _build/artifacts) \
	  $(BIN)/jupyter-book build -W -n --keep-going .
	@echo "The book is ready: open file://$(abspath _build/html/index.html)"

test: setup
	$(BIN)/python -m pytest -m "not slow and not book"
	rm -rf $(TEST_BUILD)
	DLFP_ARTIFACTS=$(abspath $(TEST_BUILD)/artifacts) \
	  $(BIN)/jupyter-book build -W -n --keep-going --path-output $(TEST_BUILD) .
	$(BIN)/python -m pytest tests/book -m book --book-dir=$(TEST_BUILD)/_build/html

unit: setup
	$(BIN)/python -m pytest -m "not slow and not book"

lint: setup
	$(BIN)/python -m ruff check src tests benchmarks
	$(BIN)/python -m ruff format --check src tests benchmarks

$(CORE)/.installed: pyproject.toml
	$(PYTHON) -m venv $(CORE)
	$(CORE)/bin/python -m pip install --quiet --upgrade pip
	$(CORE)/bin/python -m pip install --quiet -e ".[test]"
	@touch $@

# Without PyTorch, TensorFlow or the book's tools, only their comparisons may skip.
core: $(CORE)/.installed
	$(CORE)/bin/python -m pytest -m "not slow and not book" -p no:cacheprovider

clean:
	rm -rf _build
