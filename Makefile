# Two commands (see README.md):
#   make book   set up .venv, build the book, print where to open it
#   make test   set up .venv, run the unit tests, build the book from scratch, check it
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The test build has its own folder, so `make test` never touches the cache of `make book`.
TEST_BUILD := _build/test

.PHONY: book test setup clean

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

clean:
	rm -rf _build
