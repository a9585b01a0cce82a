"""Checks on the built book: outputs, errors, search, launch buttons, offline maths."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from ..conftest import ROOT

pytestmark = pytest.mark.book

CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())


def toc_files() -> list[str]:
    """Every page in _toc.yml, as a path without suffix relative to the root."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [chapter["file"] for chapter in part["chapters"]]
    return files


PAGES = toc_files()
EXECUTED = [p for p in PAGES if "```{code-cell}" in (ROOT / f"{p}.md").read_text()]


def html(book_dir: Path, page: str) -> str:
    return (book_dir / f"{page}.html").read_text(encoding="utf-8")


def test_every_page_was_built(book_dir):
    for page in PAGES:
        assert (book_dir / f"{page}.html").is_file(), (
            f"{page}.html is missing from the book"
        )


@pytest.mark.parametrize("page", EXECUTED)
def test_executed_pages_have_outputs_and_no_errors(book_dir, page):
    text = html(book_dir, page)
    source = (ROOT / f"{page}.md").read_text()
    cells = source.count("```{code-cell}")
    removed = len(
        re.findall(
            r"```\{code-cell\}[^\n]*\n:tags: \[[^\]]*remove-(cell|output)", source
        )
    )
    outputs = text.count('class="cell_output')
    assert outputs > 0, f"{page}: none of its {cells} code cells shows an output"
    assert outputs <= cells - removed
    for marker in (
        'class="output traceback',
        'class="output error',
        "Traceback (most recent",
    ):
        assert marker not in text, f"{page}: a cell produced an error ({marker!r})"
    assert 'class="output stderr' not in text, f"{page}: a cell wrote to stderr"


def test_search_page_and_index(book_dir):
    assert (book_dir / "search.html").is_file()
    raw = (book_dir / "searchindex.js").read_text(encoding="utf-8")
    index = json.loads(raw[raw.index("(") + 1 : raw.rindex(")")])
    docnames = index["docnames"]
    terms = index["terms"]
    for page in PAGES:
        assert page in docnames, f"{page} is not in the search index"
        doc = docnames.index(page)
        indexed = sum(
            1
            for docs in terms.values()
            if doc == docs or (isinstance(docs, list) and doc in docs)
        )
        assert indexed >= 40, f"{page}: only {indexed} words are searchable"
    # Words from the text, not only titles, are indexed (Sphinx stores stems).
    for word in ("magic", "valid", "bias"):
        assert word in terms, f"'{word}' is missing from the search index"


def test_launch_and_repository_buttons(book_dir):
    url = CONFIG["repository"]["url"].rstrip("/")
    owner_repo = url.removeprefix("https://github.com/")
    branch = CONFIG["repository"]["branch"]
    binder = CONFIG["launch_buttons"]["binderhub_url"].rstrip("/")
    for page in EXECUTED:
        text = html(book_dir, page)
        expected = f"{binder}/v2/gh/{owner_repo}/{branch}?urlpath=lab/tree/{page}.md"
        assert expected in text, f"{page}: no Binder launch button opening {page}.md"
        assert (ROOT / f"{page}.md").is_file()
    text = html(book_dir, PAGES[0])
    assert f'href="{url}"' in text, "no repository button"
    assert f"{url}/issues/new" in text, "no issue button"


def test_maths_is_served_with_the_book(book_dir):
    assert (book_dir / "_static" / "mathjax" / "tex-chtml.js").is_file()
    for page in PAGES:
        text = html(book_dir, page)
        assert "cdn.jsdelivr.net" not in text and "mathjax@" not in text, (
            f"{page} loads MathJax from a CDN"
        )


@pytest.mark.parametrize("page", EXECUTED)
def test_glued_values_read_as_numbers_not_as_numpy_reprs(book_dir, page):
    """NumPy 2 writes a scalar as ``np.float64(0.25)``: a value glued without float()
    or int() shows that on the page (or fails to format, a build warning)."""
    pasted = re.findall(r'<span class="pasted-text">(.*?)</span>', html(book_dir, page))
    leaked = [text for text in pasted if re.search(r"\bnp\.\w+\(", text)]
    assert not leaked, f"{page}: glued NumPy scalars shown as reprs: {leaked[:5]}"
