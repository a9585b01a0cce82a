"""The chapters' code cells, read from their MyST sources, for linting and formatting.

Chapter code is library-grade code that readers copy, so it meets the rules that
``src/`` meets: ``tests/test_chapter_code.py`` lints every code cell with ruff and the
project's configuration (``pyproject.toml``), cell by cell as in a notebook. To format
the cells and apply ruff's safe fixes in place, run from the repository root::

    python -m tests.chapters --fix

then lint again (``make lint``) and fix what remains by hand.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OPENING = re.compile(r"^(`{3,})\{code-cell\}")


@dataclass
class Cell:
    """One code cell: its source and the lines of the chapter it occupies."""

    chapter: Path
    first: int  # index of the first source line in the chapter's lines
    last: int  # index one past the last source line (the closing fence)
    source: str

    def line(self, row: int) -> str:
        """Where the cell's line ``row`` (from 1) is: "book/part1/neuron.md:52"."""
        return f"{self.chapter.relative_to(ROOT).as_posix()}:{self.first + row}"


def chapters() -> list[Path]:
    """Every MyST chapter with code cells, in a stable order."""
    return sorted(
        path
        for path in (ROOT / "book").rglob("*.md")
        if "{code-cell}" in path.read_text(encoding="utf-8")
    )


def code_cells(chapter: Path) -> list[Cell]:
    """The code cells of one chapter, without their options (``:tags:`` lines or a
    YAML block between ``---`` lines)."""
    lines = chapter.read_text(encoding="utf-8").split("\n")
    cells, i = [], 0
    while i < len(lines):
        opening = OPENING.match(lines[i])
        if not opening:
            i += 1
            continue
        fence, first = opening.group(1), i + 1
        if first < len(lines) and lines[first] == "---":
            first = lines.index("---", first + 1) + 1
        while first < len(lines) and re.match(r"^:[\w-]+:", lines[first]):
            first += 1
        last = first
        while lines[last].rstrip() != fence:
            last += 1
        cells.append(Cell(chapter, first, last, "\n".join(lines[first:last])))
        i = last + 1
    return cells


def notebook(cells: list[Cell]) -> str:
    """The cells as an ``.ipynb`` text, the form in which ruff lints cell by cell."""
    return json.dumps(
        {
            "cells": [
                {
                    "cell_type": "code",
                    "execution_count": None,
                    "id": f"cell{i}",
                    "metadata": {},
                    "outputs": [],
                    "source": cell.source.splitlines(keepends=True),
                }
                for i, cell in enumerate(cells)
            ],
            "metadata": {"language_info": {"name": "python"}},
            "nbformat": 4,
            "nbformat_minor": 5,
        }
    )


def ruff(*args: str, source: str | None = None) -> subprocess.CompletedProcess:
    """Run ruff with the project's configuration."""
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args, "--config", str(ROOT / "pyproject.toml")],
        input=source,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )


def fix(chapter: Path, scratch: Path) -> int:
    """Format every code cell of ``chapter`` and apply ruff's safe fixes, in place.

    The cells are fixed together, as one notebook, so that an import in one cell
    used by a later one stays. ``scratch`` is a folder for the notebook. Returns the
    number of cells changed.
    """
    cells = code_cells(chapter)
    path = scratch / f"{chapter.stem}.ipynb"
    path.write_text(notebook(cells))
    for args in (("check", "--fix-only", "--quiet"), ("format", "--quiet")):
        result = ruff(*args, "--no-cache", str(path))
        if result.returncode != 0:
            raise RuntimeError(f"ruff {args[0]} failed on {chapter}: {result.stderr}")
    fixed = [
        "".join(c["source"]).rstrip("\n") for c in json.loads(path.read_text())["cells"]
    ]
    lines = chapter.read_text(encoding="utf-8").split("\n")
    changed = 0
    for cell, new in reversed(list(zip(cells, fixed, strict=True))):
        if new != cell.source:
            lines[cell.first : cell.last] = new.split("\n")
            changed += 1
    chapter.write_text("\n".join(lines), encoding="utf-8")
    return changed


if __name__ == "__main__":
    if sys.argv[1:2] != ["--fix"]:
        sys.exit("usage: python -m tests.chapters --fix [book/part1/neuron.md ...]")
    named = [Path(arg).resolve() for arg in sys.argv[2:]]
    with tempfile.TemporaryDirectory() as scratch:
        for path in named or chapters():
            print(f"{path.relative_to(ROOT)}: {fix(path, Path(scratch))} cells changed")
