"""Every chapter's code cells pass ruff with the rules that src/ meets (see
tests/chapters.py, which also formats them)."""

from __future__ import annotations

import json

import pytest

from .chapters import ROOT, chapters, code_cells, notebook, ruff

CHAPTERS = chapters()


def test_the_chapters_are_found():
    assert len(CHAPTERS) >= 20
    assert all(code_cells(path) for path in CHAPTERS)


def test_a_cell_is_read_without_its_options(tmp_path):
    chapter = tmp_path / "c.md"
    chapter.write_text(
        "text\n```{code-cell} ipython3\n:tags: [remove-cell]\nx = 1\n```\n"
        "```{code-cell} ipython3\n---\nmystnb:\n  image:\n    alt: a\n---\ny = 2\n"
        "z = 3\n```\n"
    )
    assert [c.source for c in code_cells(chapter)] == ["x = 1", "y = 2\nz = 3"]


@pytest.mark.parametrize(
    "chapter", CHAPTERS, ids=[str(p.relative_to(ROOT / "book")) for p in CHAPTERS]
)
def test_chapter_code_passes_ruff(chapter, tmp_path):
    cells = code_cells(chapter)
    path = tmp_path / f"{chapter.stem}.ipynb"
    path.write_text(notebook(cells))
    result = ruff("check", "--output-format", "json", "--no-cache", str(path))
    problems = [
        f"{cells[v['cell'] - 1].line(v['location']['row'])}: {v['code']} {v['message']}"
        for v in json.loads(result.stdout or "[]")
    ]
    assert result.returncode in (0, 1), result.stderr
    assert not problems, (
        f"{len(problems)} problems; `python -m tests.chapters --fix` formats the cells "
        "and fixes what ruff can:\n" + "\n".join(problems)
    )
