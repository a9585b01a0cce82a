"""The book as one PDF (``make pdf``): opened with pypdf and read page by page.

It must hold every chapter in its table of contents (the PDF outline), enough pages for
the text, the backpropagation chapter's numbered equations, a figure in each part, the
bibliography, and no raw TeX or LaTeX error marker on any page.
"""

from __future__ import annotations

import re
from collections import Counter

import pytest

from ..conftest import ROOT
from .test_html import PAGES

pytestmark = pytest.mark.book

# A printed page holds about 3,000 to 4,000 characters of prose or code; with the
# figures and outputs that the sources do not contain, the book needs at least one page
# for every 6,000 characters of its sources.
CHARS_PER_PAGE = 6000
# What LaTeX prints where something is missing, and TeX that was not typeset. Code cells
# may hold TeX (a plot's label): a line of the PDF that is such code does not count.
MARKERS = [
    "\\frac",
    "\\begin{",
    "\\mathbf",
    "??",
    "[?]",
    "LaTeX Error",
    "{glue",
    "{cite",
]


def _title(page: str) -> str:
    """The chapter's title: the first heading of its source."""
    text = (ROOT / f"{page}.md").read_text(encoding="utf-8")
    heading = re.search(r"^# (.+)$", text, re.M)
    assert heading, f"{page}.md has no title"
    return re.sub(r"[`*]", "", heading[1]).strip()


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace("\u2019", "'")).strip().lower()


@pytest.fixture(scope="module")
def pdf(book_pdf):
    from pypdf import PdfReader

    reader = PdfReader(book_pdf)
    texts = [page.extract_text() or "" for page in reader.pages]
    outline = []

    def walk(items, level):
        for item in items:
            if isinstance(item, list):
                walk(item, level + 1)
            else:
                outline.append(
                    (item.title, reader.get_destination_page_number(item), level)
                )

    walk(reader.outline, 0)
    return reader, texts, outline


def _pages_of(outline, n_pages, title: str, level: int | None = None) -> range:
    """The pages from the outline entry ``title`` to the next at its level or above."""
    for i, (entry, start, lvl) in enumerate(outline):
        if _norm(entry).endswith(_norm(title)) and (level is None or lvl == level):
            end = next((p for _, p, lv in outline[i + 1 :] if lv <= lvl), n_pages)
            return range(start, max(end, start + 1))
    raise AssertionError(f"{title!r} is not in the PDF's table of contents")


def test_every_chapter_is_in_the_table_of_contents(pdf):
    reader, texts, outline = pdf
    titles = [_norm(entry) for entry, _, _ in outline]
    # The root page (the introduction) is the PDF's front matter, before its contents.
    assert "this book builds a neural network" in _norm(" ".join(texts[:12]))
    for page in PAGES[1:]:
        title = _norm(_title(page))
        assert any(t.endswith(title) for t in titles), (
            f"{page}: its title {title!r} is not in the PDF's table of contents"
        )
    assert any("contents" in _norm(t) for t in texts[:8]), "no table of contents page"


def test_page_count(pdf):
    reader, _, _ = pdf
    chars = sum(len((ROOT / f"{p}.md").read_text(encoding="utf-8")) for p in PAGES)
    least = chars // CHARS_PER_PAGE
    assert len(reader.pages) >= least, (
        f"the PDF has {len(reader.pages)} pages, fewer than its sources need ({least})"
    )


def test_backpropagation_equations_are_numbered(pdf):
    reader, texts, outline = pdf
    source = (ROOT / "book/part1/backprop.md").read_text(encoding="utf-8")
    labelled = len(re.findall(r"^\$\$ *\(eq-[\w-]+\)", source, re.M))
    assert labelled >= 5, "the backpropagation chapter has lost its labelled equations"
    pages = _pages_of(outline, len(reader.pages), _title("book/part1/backprop"))
    text = " ".join(texts[i] for i in pages)
    tags = re.findall(r"\((\d+)\.(\d+)\)", text)
    assert tags, "no equation number such as (5.1) in the backpropagation chapter"
    chapter = Counter(c for c, _ in tags).most_common(1)[0][0]
    numbers = {int(n) for c, n in tags if c == chapter}
    missing = set(range(1, labelled + 1)) - numbers
    assert not missing, (
        f"equations ({chapter}.n) for n in {sorted(missing)} are missing"
    )


def test_a_figure_in_each_part(pdf):
    reader, _, outline = pdf
    parts = [(t, lvl) for t, _, lvl in outline if re.match(r"\s*Part [IV]+:", t)]
    assert len(parts) == 3, f"expected Parts I to III in the outline, found {parts}"
    for title, level in parts:
        pages = _pages_of(outline, len(reader.pages), title, level)
        images = sum(len(reader.pages[i].images) for i in pages)
        assert images > 0, (
            f"{title}: no figure on its pages {pages.start + 1}-{pages.stop}"
        )


def test_code_outputs_and_bibliography(pdf):
    reader, texts, outline = pdf
    pages = _pages_of(outline, len(reader.pages), _title("book/part1/neuron"))
    neuron = " ".join(texts[i] for i in pages)
    # The code of the chapter's first cell, and the table it printed (with its maths
    # typeset: the code holds "AND ($\\tau = 2$)").
    assert "def threshold_unit" in neuron
    assert re.search(r"AND \([^$\s] = 2\)", neuron), "the cells' outputs are missing"
    start = _pages_of(outline, len(reader.pages), "Bibliography").start
    back = " ".join(texts[start:])  # the chapter, then the list of references
    assert "McCulloch" in back and "Rosenblatt" in back, "the bibliography is empty"


def _squeezed(text: str) -> str:
    """The text without white space, nor the marks with which the PDF shows a long code
    line wrapped (a visible space at the break, arrows at both ends)."""
    return re.sub(r"[\s\u2423\u21aa\u21a9]+", "", text)


def test_no_raw_tex_or_latex_error_on_any_page(pdf):
    _, texts, _ = pdf
    code = [
        cell
        for page in PAGES
        for cell in re.findall(
            r"^```\{code-cell\}.*?^```",
            (ROOT / f"{page}.md").read_text(encoding="utf-8"),
            flags=re.M | re.S,
        )
    ]
    code += [p.read_text(encoding="utf-8") for p in (ROOT / "src").rglob("*.py")]
    code_text = _squeezed("\n".join(code))
    for number, text in enumerate(texts, start=1):
        for line in text.splitlines():
            for marker in MARKERS:
                if marker in line and _squeezed(line) not in code_text:
                    raise AssertionError(f"page {number} shows {marker!r}: {line!r}")


def test_no_character_is_missing_from_the_fonts(book_pdf):
    """XeLaTeX drops a character its font lacks, with only a line in its log: a symbol
    that silently disappears from a formula or a code listing."""
    log = book_pdf.with_suffix(".log")
    if not log.is_file():
        pytest.skip(f"no LaTeX log beside {book_pdf}")
    missing = Counter(
        re.findall(
            r"Missing character: There is no (.+?) in font",
            log.read_text(encoding="utf-8", errors="replace"),
        )
    )
    assert not missing, f"characters the PDF's fonts lack, dropped: {dict(missing)}"
