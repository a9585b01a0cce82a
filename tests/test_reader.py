"""The chapters rewritten for JupyterLab (``book/_ext/dlfp_reader.py``, run by
binder/postBuild), and the kernel start-up file that shows what they glue."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
import types

import pytest

from .conftest import ROOT

BOOK = ROOT / "book"
sys.path.insert(0, str(BOOK / "_ext"))
import dlfp_reader as reader  # noqa: E402  (a book tool, beside the Sphinx extensions)


@pytest.fixture(scope="module")
def rewritten():
    pytest.importorskip("sphinx")  # Sphinx's literalinclude reader cuts out the code
    labels, bib = reader.book_sources(BOOK)
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


def test_the_kernel_shows_what_the_cells_glue_as_the_book_formats_it(monkeypatch):
    """The start-up file, run as IPython runs it (in the kernel's namespace), with a
    stand-in for MyST-NB: what a cell glues, the prose's ``_dlfp_glue`` shows."""
    shown = []
    myst_nb = types.ModuleType("myst_nb")
    myst_nb.glue = lambda name, variable, display=True: shown.append(name)
    monkeypatch.setitem(sys.modules, "myst_nb", myst_nb)
    kernel = {"__name__": "__main__"}
    exec(reader.STARTUP.read_text(encoding="utf-8"), kernel)
    show = kernel["_dlfp_glue"]
    assert "run the cells above" in repr(show("gap", ".1e"))
    from myst_nb import glue  # as a chapter imports it, after the start-up file

    for name, value in {"gap": 1.234e-16, "name": "Adam", "n": 3}.items():
        glue(name, value, display=False)
    assert shown == ["gap", "name", "n"], "the original glue was not called"
    assert repr(show("gap", ".1e")) == "1.2e-16"
    assert repr(show("name")) == "Adam"
    assert repr(show("n")) == "3"
    assert "run the cells above" in repr(show("missing"))
    assert [k for k in kernel if not k.startswith("__")] == ["_dlfp_glue"]
    # Run twice in one kernel, it keeps one record.
    exec(reader.STARTUP.read_text(encoding="utf-8"), kernel)
    assert repr(kernel["_dlfp_glue"]("n")) == "3"


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
    assert startup.read_text() == reader.STARTUP.read_text()


def test_binder_runs_the_reader_by_path_outside_the_package(tmp_path):
    """As binder/postBuild runs it: a script, from a folder that is not the checkout,
    with no ``dlfp`` importable (Binder's kernel needs none of it either)."""
    book = tmp_path / "book"
    book.mkdir()
    (book / "one.md").write_text("(ch-one)=\n# One\n\nSee {ref}`ch-one`.\n")
    startup = tmp_path / "startup.py"
    script = BOOK / "_ext" / "dlfp_reader.py"
    code = "import sys; sys.modules['dlfp'] = None; import runpy; "
    code += f"sys.argv = ['x', 'book', '--startup', {str(startup)!r}]; "
    code += f"runpy.run_path({str(script)!r}, run_name='__main__')"
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "1 chapters rewritten" in out
    assert (book / "one.md").read_text().endswith("See **One**.\n")
    kernel_code = startup.read_text()
    assert "_dlfp_glue" in kernel_code
    assert not re.search(r"^\s*(import|from) dlfp", kernel_code, re.M)


def test_the_notebook_runner_names_glued_numpy_scalars():
    """The Colab pages read each glued value from its text: a NumPy scalar's is
    ``np.float64(...)``, which they cannot format. The runner of the launch paths
    names such glues, so that a chapter that glues one fails there."""
    nbformat = pytest.importorskip("nbformat")
    from .run_notebooks import numpy_glues

    def glued(name, text):
        output = nbformat.v4.new_output(
            "display_data",
            data={"application/papermill.record/text/plain": text},
            metadata={"scrapbook": {"name": name}},
        )
        return nbformat.v4.new_code_cell("glue(...)", outputs=[output])

    nb = nbformat.v4.new_notebook(
        cells=[
            glued("plain", "0.5"),
            glued("scalar", "np.float64(0.5)"),
            glued("count", "np.int64(3)"),
            glued("text", "'np.float64 is a type'"),
        ]
    )
    assert numpy_glues(nb) == ["scalar", "count"]
