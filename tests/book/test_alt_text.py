"""Checks on the built book for readers who cannot see the page or look a word up.

Every figure in a chapter carries alt text that says what it shows, not the name of its
file (which is what Sphinx writes when a figure has none). The glossary defines the
book's terms, and the chapters link every one of them.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

from ..conftest import ROOT

pytestmark = pytest.mark.book

TOC = yaml.safe_load((ROOT / "_toc.yml").read_text())
PAGES = [TOC["root"]] + [c["file"] for p in TOC["parts"] for c in p["chapters"]]
GLOSSARY = "book/glossary"
CHAPTERS = [p for p in PAGES if p not in (GLOSSARY, "book/bibliography")]

IMAGE_SUFFIX = re.compile(r"\.(png|jpe?g|gif|svg|webp|pdf)$", re.I)
HASH = re.compile(r"\b[0-9a-f]{16,}\b", re.I)
VOID = {"area", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source"}
TERM_LINK = re.compile(r"(?:^|/)glossary\.html#(term-[^\"'\s]+)$")


class _Article(HTMLParser):
    """The images, links and glossary terms in a page's <article>, its main content."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.depth = 0  # open elements inside the article, 0 when outside it
        self.images: list[dict[str, str | None]] = []
        self.term_links: set[str] = set()
        self.terms: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if self.depth == 0:
            if tag == "article":
                self.depth = 1
            return
        if tag not in VOID:
            self.depth += 1
        if tag == "img":
            self.images.append(attrs)
        elif tag == "a" and "reference" in (attrs.get("class") or "").split():
            match = TERM_LINK.search(attrs.get("href") or "")
            if match:
                self.term_links.add(match.group(1))
        elif tag == "dt" and (attrs.get("id") or "").startswith("term-"):
            self.terms.append(attrs["id"])

    def handle_startendtag(self, tag, attrs):
        if self.depth and tag == "img":
            self.images.append(dict(attrs))

    def handle_endtag(self, tag):
        if self.depth and tag not in VOID:
            self.depth -= 1


def article(book_dir: Path, page: str) -> _Article:
    parsed = _Article()
    parsed.feed((book_dir / f"{page}.html").read_text(encoding="utf-8"))
    return parsed


def alt_problem(alt: str | None) -> str | None:
    """Why an alt text does not describe its figure, or None when it may."""
    if alt is None or not alt.strip():
        return "has no alt text"
    text = alt.strip()
    if IMAGE_SUFFIX.search(text) or "/" in text or "_images" in text:
        return f"has a file name for alt text ({text!r})"
    if HASH.search(text):
        return f"has a hash-like name for alt text ({text!r})"
    return None


def test_alt_problem_recognises_file_names():
    assert alt_problem(None) and alt_problem("  ")
    assert alt_problem("../../_images/d9479fd95f8a5417c13fa85ebbfec79396f3c79d.png")
    assert alt_problem("fig-activations.svg")
    assert alt_problem("d9479fd95f8a5417c13fa85ebbfec79396f3c79d1985d4892dc6dc743a97")
    assert alt_problem("Loss against epoch, falling") is None


@pytest.mark.parametrize("page", CHAPTERS)
def test_every_figure_has_alt_text_saying_what_it_shows(book_dir, page):
    bad = []
    for image in article(book_dir, page).images:
        problem = alt_problem(image.get("alt"))
        if problem:
            bad.append(f"{page}.html: image {image.get('src')} {problem}")
    assert not bad, "figures without a description:\n" + "\n".join(bad)


def test_the_chapters_have_figures(book_dir):
    """The check above looks at something: the chapters' articles hold the figures."""
    count = sum(len(article(book_dir, page).images) for page in CHAPTERS)
    assert count >= 50, f"only {count} images were found in the chapters' articles"


def test_glossary_defines_the_terms_and_the_chapters_link_each(book_dir):
    path = book_dir / f"{GLOSSARY}.html"
    assert path.is_file(), f"{GLOSSARY}.html is missing from the book"
    terms = article(book_dir, GLOSSARY).terms
    assert len(terms) >= 40, f"the glossary defines only {len(terms)} terms"
    assert len(set(terms)) == len(terms), "a glossary term is defined twice"
    linked = set()
    for page in CHAPTERS:
        linked |= article(book_dir, page).term_links
    unlinked = sorted(set(terms) - linked)
    assert not unlinked, f"no chapter links these glossary terms: {unlinked}"
    unknown = sorted(linked - set(terms))
    assert not unknown, f"chapters link glossary entries that do not exist: {unknown}"
