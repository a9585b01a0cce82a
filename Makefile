# Two commands (see README.md):
#   make book   set up .venv, build the book, print where to open it
#   make test   set up .venv, run the unit tests, build the book from scratch, check it
# and, for contributors:
#   make unit   the fast unit tests only (the inner loop)
#   make lint   ruff on the library, the tests, the benchmarks and the chapters' code cells
#   make core   the unit tests in .venv-core, which holds NumPy and the test tools only:
#               proves that `import dlfp` and its checks need nothing else
#   make pdf    the book as one PDF, from the notebooks that `make book` executed
#               (`make test` makes one from its own build)
#   make binder the launch path: an environment from exactly binder/, JupyterLab, a chapter
#               opened as a notebook in Chromium, its first cells run
#   make launch the other paths: the wheel installed in a fresh environment, and a rebuild
#               after an edit of the library (never stale)
#   make chapters  after make book: every chapter run top to bottom as Binder has it and
#               as Colab opens it, with the models that build kept (make test runs it)
#   make lock   regenerate requirements.lock from pyproject.toml
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The test build has its own folder, so `make test` never touches the cache of `make book`.
TEST_BUILD := _build/test

CORE   ?= .venv-core
# Exact versions of everything that pyproject.toml asks for: every install (make, CI and
# Binder) is constrained by it.
LOCK   := requirements.lock

.PHONY: book test pdf binder launch chapters unit lint core setup lock clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml $(LOCK)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else \
	  "dlfp needs Python 3.11 or newer: run make PYTHON=python3.11 (or newer).")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c $(LOCK) -e ".[all]"
	@touch $@

# Models that one chapter trains and a later one inspects are kept beside the build.
book: setup
	DLFP_ARTIFACTS=$(abspath _build/artifacts) \
	  $(BIN)/jupyter-book build -W -n --keep-going .
	@echo "The book is ready: open file://$(abspath _build/html/index.html)"

# The PDF is built by `make test` too, after the HTML and from the notebooks it executed.
# Once Binder's environment is built, the launch passes over every chapter (make chapters)
# run beside the PDF, the checks of the pages and the other paths, which use little of the
# machine; make test fails if either side does.
TEST_ARTIFACTS := $(abspath $(TEST_BUILD)/artifacts)
test: setup
	@echo "[make test $$(date -u +%T)] unit tests"
	$(BIN)/python -m pytest -m "not slow and not book and not binder and not launch"
	rm -rf $(TEST_BUILD)
	@echo "[make test $$(date -u +%T)] the HTML book, from scratch"
	DLFP_ARTIFACTS=$(TEST_ARTIFACTS) \
	  $(BIN)/jupyter-book build -W -n --keep-going --path-output $(TEST_BUILD) .
	@echo "[make test $$(date -u +%T)] Binder's environment"
	$(MAKE) binder
	@echo "[make test $$(date -u +%T)] the PDF, the pages and the launch paths"
	@$(MAKE) chapters HTML=$(TEST_BUILD)/_build/html ARTIFACTS=$(TEST_ARTIFACTS) & passes=$$!; \
	$(MAKE) pdf PDF_BUILD=$(TEST_BUILD) ARTIFACTS=$(TEST_ARTIFACTS) \
	  && $(BIN)/python -m pytest tests/book -m book --book-dir=$(TEST_BUILD)/_build/html \
	       --book-pdf=$(TEST_BUILD)/_build/latex/dlfp.pdf \
	  && $(MAKE) launch; rest=$$?; \
	wait $$passes; passes=$$?; echo "[make test $$(date -u +%T)] done"; \
	test $$rest = 0 && test $$passes = 0

# The book as one PDF through LaTeX. It reuses the notebooks that the HTML build in the same
# folder executed (Jupyter Book's execution cache in $(PDF_BUILD)/_build/.jupyter_cache), so
# run it after `make book` (or let `make test` run it): nothing is executed twice. The PDF is
# also copied beside the HTML pages, where the introduction links to it.
PDF_BUILD ?= .
ARTIFACTS ?= $(abspath _build/artifacts)
pdf: setup
	DLFP_ARTIFACTS=$(ARTIFACTS) $(BIN)/jupyter-book build -W -n --keep-going \
	  --builder pdflatex --path-output $(PDF_BUILD) .
	cp $(PDF_BUILD)/_build/latex/dlfp.pdf $(PDF_BUILD)/_build/html/dlfp.pdf
	@echo "The PDF is ready: $(abspath $(PDF_BUILD)/_build/latex/dlfp.pdf)"

# The launch path as a reader meets it: an environment from exactly binder/ (in _build/binder,
# kept, rebuilt when binder/, the lock or pyproject.toml change), JupyterLab started with
# binder/postBuild, a chapter opened in Chromium as a notebook and its first cells run.
binder: setup
	$(BIN)/python -m pytest tests/binder -m "binder and not chapters"

# The package from a wheel, outside the checkout; a rebuild of a copy after an edit.
launch: setup
	$(BIN)/python -m pytest tests/launch -m "launch and not chapters"

# Every chapter on the launch paths: run top to bottom as Binder has it (after postBuild, in
# the environment from binder/) and as Colab opens it (the notebooks the build published, in
# a fresh environment without dlfp), reusing the models that the build kept. The two passes
# run side by side, each on one thread (OMP_NUM_THREADS=1), which is also how another
# machine rounds: a claim or a sentence that holds only on this one fails here. After
# `make book`; `make test` runs it on its own build.
HTML ?= _build/html
CHAPTERS_ENV := DLFP_LAUNCH_ARTIFACTS=$(ARTIFACTS) OMP_NUM_THREADS=1
chapters: setup
	@mkdir -p _build; $(CHAPTERS_ENV) $(BIN)/python -m pytest -p no:cacheprovider -s tests/binder -m chapters \
	  --book-dir=$(HTML) > _build/chapters-binder.log 2>&1 & binder=$$!; \
	$(CHAPTERS_ENV) $(BIN)/python -m pytest -p no:cacheprovider -s tests/launch -m chapters \
	  --book-dir=$(HTML) > _build/chapters-colab.log 2>&1; colab=$$?; \
	wait $$binder; binder=$$?; \
	echo "--- every chapter as Binder has it (exit $$binder) ---"; cat _build/chapters-binder.log; \
	echo "--- every chapter as Colab opens it (exit $$colab) ---"; cat _build/chapters-colab.log; \
	test $$binder = 0 && test $$colab = 0

unit: setup
	$(BIN)/python -m pytest -m "not slow and not book and not binder and not launch"

lint: setup
	$(BIN)/python -m ruff check src tests benchmarks book/_ext
	$(BIN)/python -m ruff format --check src tests benchmarks book/_ext
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/test_chapter_code.py

$(CORE)/.installed: pyproject.toml
	$(PYTHON) -m venv $(CORE)
	$(CORE)/bin/python -m pip install --quiet --upgrade pip
	$(CORE)/bin/python -m pip install --quiet -c $(LOCK) -e ".[test]"
	@touch $@

# Without PyTorch, TensorFlow or the book's tools, only their comparisons may skip.
core: $(CORE)/.installed
	$(CORE)/bin/python -m pytest -m "not slow and not book and not binder and not launch" \
	  -p no:cacheprovider

clean:
	rm -rf _build

# requirements.lock: exact versions for Linux x86-64 and Python 3.11 (Binder's), PyTorch's CPU
# build. The PyTorch CPU index is where uv finds that build; offline, point LOCK_SOURCES at a
# folder of wheels instead: make lock LOCK_SOURCES="--find-links /opt/wheels"
LOCK_SOURCES ?= --extra-index-url https://download.pytorch.org/whl/cpu --index-strategy unsafe-best-match
LOCKER := .venv-lock
$(LOCKER)/bin/uv:
	$(PYTHON) -m venv $(LOCKER)
	$(LOCKER)/bin/python -m pip install --quiet "uv>=0.5"

lock: $(LOCKER)/bin/uv
	$(LOCKER)/bin/uv pip compile pyproject.toml --extra all --python-version 3.11 \
	  --python-platform x86_64-manylinux_2_28 --no-emit-package dlfp --no-header \
	  $(LOCK_SOURCES) --quiet -o $(LOCK)
	@# The local label (+cpu) names a build, not a version: without it the same line installs
	@# from PyPI on machines without the CPU index, and the CPU build where one is offered.
	sed -i 's/^\(torch==[^+ ]*\)+cpu/\1/' $(LOCK)
	@sed -i '1i # Generated by `make lock` from pyproject.toml: do not edit by hand.' $(LOCK)
	@echo "$(LOCK) regenerated: commit it with pyproject.toml."
