"""The chapters rewritten for JupyterLab (dlfp.reader, run by binder/postBuild)."""

from __future__ import annotations

import inspect
import re

import pytest

from dlfp import reader

from .conftest import ROOT

BOOK = ROOT / "book"


@pytest.fixture(scope="module")
def rewritten():
    pytest.importorskip("sphinx")  # Sphinx's literalinclude reader cuts out the code
    labels = reader.book_labels(BOOK)
    bib = reader._bib(BOOK / "references.bib")
    return {
        path.relative_to(BOOK).as_posix(): reader.rewrite(
            path.read_text(encoding="utf-8"), path, labels, bib
        )
        for path in sorted(BOOK.rglob("*.md"))
    }


def _markdown(text: str) -> str:
    """The text outside the code cells."""
    return re.sub(r"^```\{code-cell\}.*?^```", "", text, flags=re.M | re.S)


def test_no_sphinx_only_syntax_is_left(rewritten):
    for name, text in rewritten.items():
        prose = _markdown(text)
        for raw in (
            "{glue",
            "{cite",
            ":pyobject:",
            "{literalinclude",
            "{ref}",
            "{numref}",
        ):
            assert raw not in prose, f"{name} still holds {raw!r}"
        assert "{exercise-start" not in prose and "{solution-end" not in prose


def test_code_cells_are_untouched(rewritten):
    for name, text in rewritten.items():
        source = (BOOK / name).read_text(encoding="utf-8")
        cells = re.findall(r"^```\{code-cell\}.*?^```", source, flags=re.M | re.S)
        assert cells == re.findall(r"^```\{code-cell\}.*?^```", text, flags=re.M | re.S)


def test_glue_citations_references_and_code(rewritten):
    neuron = rewritten["part1/neuron.md"]
    assert (
        'The largest difference is {eval}`_dlfp_glue("sigmoid_gap", ".1e")`' in neuron
    )
    assert "McCulloch and Pitts (1943) turned the caricature" in neuron
    assert "(see the **Notation**)" in neuron  # {ref}`notation`: the page's title
    assert "gradient descent (**Gradient descent**)" in neuron
    from dlfp.layers import Dense

    assert inspect.getsource(Dense.forward).rstrip() in neuron


def test_glued_values_format_as_the_book_does():
    reader.GLUED.clear()
    reader.GLUED.update(gap=1.234e-16, name="Adam", n=3)
    assert repr(reader.glued("gap", ".1e")) == "1.2e-16"
    assert repr(reader.glued("name")) == "Adam"
    assert repr(reader.glued("n")) == "3"
    assert "run the cells above" in repr(reader.glued("missing"))


def test_rewrite_book_writes_in_place_and_the_startup_file(tmp_path):
    pytest.importorskip("sphinx")
    book = tmp_path / "book"
    (book / "part1").mkdir(parents=True)
    (book / "references.bib").write_text((BOOK / "references.bib").read_text())
    chapter = book / "part1" / "one.md"
    chapter.write_text("(ch-one)=\n# One\n\nSee {cite:p}`rosenblatt1958perceptron`.\n")
    startup = tmp_path / "startup" / "00.py"
    assert reader.rewrite_book(book, startup) == 1
    assert chapter.read_text().endswith("See (Rosenblatt, 1958).\n")
    assert "remember_glue" in startup.read_text()
