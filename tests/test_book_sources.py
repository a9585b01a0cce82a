"""The book's sources: every chapter is a runnable notebook, and Binder can run it."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest
import yaml

from .conftest import ROOT

TOC = yaml.safe_load((ROOT / "_toc.yml").read_text())
PAGES = [TOC["root"]] + [c["file"] for p in TOC["parts"] for c in p["chapters"]]
CHAPTERS = [p for p in PAGES if "```{code-cell}" in (ROOT / f"{p}.md").read_text()]


@pytest.mark.parametrize("page", CHAPTERS)
def test_chapter_is_a_python_notebook(page):
    jupytext = pytest.importorskip("jupytext", reason="the book extra is not installed")
    notebook = jupytext.read(ROOT / f"{page}.md")
    assert notebook.metadata["kernelspec"]["name"] == "python3"
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code, f"{page} has no code cells"
    assert any("dlfp" in cell.source for cell in code), f"{page} does not use dlfp"


def test_binder_installs_the_project_and_opens_chapters_as_notebooks():
    import tomllib

    requirements = (ROOT / "binder" / "requirements.txt").read_text().splitlines()
    lines = [line.split("#")[0].strip() for line in requirements]
    assert "-c ../requirements.lock" in lines, "Binder does not install from the lock"
    assert ".[binder]" in lines, "binder/requirements.txt does not install this project"
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    binder = " ".join(extras["optional-dependencies"]["binder"])
    book = " ".join(extras["optional-dependencies"]["book"])
    assert "dlfp[torch,tf,book]" in binder
    assert "jupyterlab-myst" in binder and "jupyterlab" in binder
    assert "jupytext" in book and "jupyter-book" in book  # chapters import myst_nb
    post_build = (ROOT / "binder" / "postBuild").read_text()
    assert "jupytext-config set-default-viewer" in post_build
    assert "python book/_ext/dlfp_reader.py book" in post_build


def test_book_configuration():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["only_build_toc_files"] is True
    assert config["execute"]["execute_notebooks"] in {"cache", "force"}
    assert config["sphinx"]["config"]["nb_execution_raise_on_error"] is True
    assert config["repository"]["branch"] == "main"
    assert config["launch_buttons"]["notebook_interface"] == "jupyterlab"


@pytest.mark.skipif(
    importlib.util.find_spec("ruff") is None, reason="ruff is not installed"
)
def test_code_style():
    for command in (
        [sys.executable, "-m", "ruff", "check", "src", "tests", "benchmarks"],
        [
            sys.executable,
            "-m",
            "ruff",
            "format",
            "--check",
            "src",
            "tests",
            "benchmarks",
        ],
    ):
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr


def _names(code: str) -> tuple[set[str], set[str]]:
    """(names a cell binds, arguments included; names it reads), IPython lines aside."""
    import ast
    import re

    tree = ast.parse(re.sub(r"^\s*[%!].*$", "", code, flags=re.M))
    bound, read = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (bound if isinstance(node.ctx, ast.Store) else read).add(node.id)
        elif isinstance(node, ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            bound.update((a.asname or a.name).split(".")[0] for a in node.names)
    return bound, read


@pytest.mark.parametrize("page", CHAPTERS)
def test_live_code_needs_no_hidden_cell(page):
    """Thebe (the live code button) runs the cells that the page shows; a cell hidden
    from it (``remove-cell``) must bind no name that a shown cell reads before the
    shown cells bind it themselves."""
    jupytext = pytest.importorskip("jupytext", reason="the book extra is not installed")
    notebook = jupytext.read(ROOT / f"{page}.md")
    hidden_only, shown = set(), set()
    for cell in (c for c in notebook.cells if c.cell_type == "code"):
        bound, read = _names(cell.source)
        if "remove-cell" in cell.metadata.get("tags", []):
            hidden_only |= bound - shown
            continue
        needed = (read - bound) & hidden_only
        assert not needed, (
            f"{page}: a shown cell reads {needed}, bound only in a hidden cell"
        )
        shown |= bound
        hidden_only -= bound
