"""The book's Sphinx extensions (``book/_ext``), on their own."""

from __future__ import annotations

import sys

import pytest

from .conftest import ROOT

sys.path.insert(0, str(ROOT / "book" / "_ext"))
dlfp_colab = pytest.importorskip("dlfp_colab", reason="the book extra is not installed")
pytest.importorskip("myst_nb", reason="the book extra is not installed")


def test_colab_markdown_shows_equation_numbers_and_no_myst():
    text = (
        "(sec-x)=\n## A section\n\n$$a = b$$\n\n$$\nc = d\n$$ (eq-cd)\n\n"
        "By {eq}`eq-cd` and {eq}`eq-unknown-one`, done.\n\n"
        "::::{tab-set}\n:::{tab-item} NumPy\nx\n:::\n::::\n"
    )
    out = dlfp_colab.plain_markdown(text, {"eq-cd": "3.2"})
    assert "$$a = b$$" in out, "an unlabelled equation is left alone"
    assert "$$\nc = d \\tag{3.2}$$" in out
    assert "By (3.2) and (unknown one), done." in out
    assert "(sec-x)=" not in out and "{tab" not in out and ":::" not in out
    assert "**NumPy**" in out


def test_build_glue_formats_as_myst_nb_and_attaches_figures():
    glued = {
        "acc": {"data": {"text/plain": "0.98765"}},
        "name": {"data": {"text/plain": "'im2col'"}},
        "fig": {"data": {"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"}},
        "tab": {"data": {"text/markdown": "| a |\n|---|\n| 1 |"}},
    }
    glue = dlfp_colab.BuildGlue(glued)
    assert glue.text("acc", ".2%") == "98.77%"
    assert glue.text("name", "") == "im2col"
    figure = glue.figure("fig", "The caption.", "A [bar] chart")
    assert figure == "![A  bar  chart](attachment:fig.png)\n\n*The caption.*"
    assert glue.attachments["fig.png"] == {"image/png": "iVBORw0KGgo="}
    assert glue.figure("tab", "Cap.", "").startswith("| a |")
    with pytest.raises(KeyError, match="glued no text as 'missing'"):
        glue.text("missing", "")
