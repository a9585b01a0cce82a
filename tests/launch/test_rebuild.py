"""Rebuilds are never stale: a chapter executes again when the library code it imports
changes, and nothing executes when nothing changed (``book/_ext/dlfp_inputs.py``).

On a copy: the library (``src/dlfp``), the book's extensions, the lock, and a book of
two chapters built with the book's own execution settings. Chapter ``margin`` prints a
value of ``dlfp.claims``; chapter ``plain`` imports NumPy alone. The copy's library is
the one that Sphinx and the chapters' kernels import (``PYTHONPATH``).
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import pytest

from ..conftest import ROOT
from ..envs import base_env, run

pytestmark = pytest.mark.launch

CONFIG = """\
title: rebuild test
only_build_toc_files: true
exclude_patterns: [_build, src]
execute:
  execute_notebooks: cache
  timeout: 300
  allow_errors: false
sphinx:
  local_extensions:
    dlfp_book: book/_ext
  extra_extensions: [sphinx_exercise]
  config:
    nb_execution_raise_on_error: true
"""
TOC = """\
format: jb-book
root: intro
chapters:
  - file: margin
  - file: plain
"""
FRONT = """\
---
jupytext:
  text_representation:
    format_name: myst
kernelspec:
  display_name: Python 3
  name: python3
---
"""
MARGIN = (
    FRONT
    + """\
# Margin

```{code-cell} ipython3
from dlfp.claims import MARGIN_SIGMAS

print(f"the margin is {MARGIN_SIGMAS} sigmas")
```
"""
)
PLAIN = (
    FRONT
    + """\
# Plain

```{code-cell} ipython3
import numpy as np

print(f"no library here: {np.arange(3).sum()}")
```
"""
)


@pytest.fixture(scope="module")
def book(tmp_path_factory) -> Path:
    copy = tmp_path_factory.mktemp("rebuild")
    shutil.copytree(
        ROOT / "src" / "dlfp",
        copy / "src" / "dlfp",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    shutil.copytree(ROOT / "book" / "_ext", copy / "book" / "_ext")
    shutil.copy(ROOT / "requirements.lock", copy / "requirements.lock")
    (copy / "_config.yml").write_text(CONFIG)
    (copy / "_toc.yml").write_text(TOC)
    (copy / "intro.md").write_text("# Intro\n\nTwo chapters.\n")
    (copy / "margin.md").write_text(MARGIN)
    (copy / "plain.md").write_text(PLAIN)
    return copy


def _build(book: Path) -> tuple[list[str], dict[str, str]]:
    """Build the copy; return the chapters that executed and each page's text."""
    env = base_env() | {"PYTHONPATH": str(book / "src")}
    out = run(
        [
            Path(sys.executable).parent / "jupyter-book",
            "build",
            "-W",
            "-n",
            "--keep-going",
            book,
        ],
        cwd=book,
        env=env,
        what="jupyter-book build of the copy",
        timeout=600,
    )
    executed = sorted(set(re.findall(r"/(\w+)\.md: Executing notebook", out)))
    pages = {
        name: (book / "_build" / "html" / f"{name}.html").read_text(encoding="utf-8")
        for name in ("margin", "plain")
    }
    return executed, pages


def test_a_rebuild_executes_exactly_the_chapters_whose_inputs_changed(book):
    executed, pages = _build(book)
    assert executed == ["margin", "plain"], "a first build executes every chapter"
    assert "the margin is 3.0 sigmas" in pages["margin"]

    executed, _ = _build(book)
    assert executed == [], f"nothing changed, yet {executed} executed again"

    claims = book / "src" / "dlfp" / "claims.py"
    text = claims.read_text()
    assert "MARGIN_SIGMAS = 3.0" in text
    claims.write_text(text.replace("MARGIN_SIGMAS = 3.0", "MARGIN_SIGMAS = 4.5"))
    executed, pages = _build(book)
    assert executed == ["margin"], (
        f"after an edit of dlfp.claims, {executed} executed (expected: margin only)"
    )
    assert "the margin is 4.5 sigmas" in pages["margin"], "the page kept the old value"

    lock = book / "requirements.lock"
    lock.write_text(lock.read_text() + "\n# another lock\n")
    executed, _ = _build(book)
    assert executed == ["margin", "plain"], "a changed lock executes every chapter"
