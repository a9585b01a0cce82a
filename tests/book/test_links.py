"""Every internal link and anchor in the built site resolves.

A crawl of the built HTML files: each ``href`` and ``src`` that stays inside the site
must name a file that exists, and each ``#fragment`` an element of that file with that
``id`` (or an ``<a name>``). Links that leave the site (``https:``, ``mailto:``) are not
followed: the build machine has no internet.
"""

from __future__ import annotations

import functools
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

pytestmark = pytest.mark.book


class _Page(HTMLParser):
    """The links (attribute, value) and the anchors (ids and names) of one page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[tuple[str, str]] = []
        self.anchors: set[str] = set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("id", "name") if tag == "a" else ("id",):
            if attrs.get(key):
                self.anchors.add(attrs[key])
        for key in ("href", "src"):
            if attrs.get(key) is not None:
                self.links.append((key, attrs[key]))


@functools.cache
def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8", errors="replace"))
    return page


def _internal(value: str) -> bool:
    parts = urlsplit(value)
    return not (parts.scheme or parts.netloc) and not value.startswith("data:")


def broken_links(site: Path) -> list[str]:
    """Every internal link of the site under ``site`` that does not resolve."""
    broken = []
    for page in sorted(site.rglob("*.html")):
        if "_static" in page.relative_to(site).parts:
            continue  # the theme's template macros, copied with its files: not pages
        for _, value in _parse(page).links:
            value = value.strip()
            if not value or not _internal(value):
                continue
            parts = urlsplit(value)
            path = unquote(parts.path)
            target = (page.parent / path).resolve() if path else page
            if target.is_dir():
                target = target / "index.html"
            where = f"{page.relative_to(site)}: {value}"
            if site.resolve() not in (target, *target.parents):
                broken.append(f"{where} points outside the site")
            elif not target.is_file():
                broken.append(f"{where} names a missing file")
            elif parts.fragment and target.suffix == ".html":
                if unquote(parts.fragment) not in _parse(target).anchors:
                    broken.append(f"{where} names a missing anchor")
    return broken


def test_every_internal_link_and_anchor_resolves(book_dir):
    pages = list(book_dir.rglob("*.html"))
    assert len(pages) >= 10, f"only {len(pages)} pages were found in {book_dir}"
    broken = broken_links(book_dir)
    assert not broken, f"{len(broken)} internal links do not resolve:\n" + "\n".join(
        broken[:50]
    )


def test_the_crawl_finds_a_broken_link(tmp_path):
    """The check itself: a missing page and a missing anchor are both reported."""
    (tmp_path / "index.html").write_text(
        '<a href="other.html#here">ok</a> <a href="gone.html">gone</a> '
        '<a href="other.html#nowhere">no anchor</a> <a href="https://x.org/">out</a>'
        '<img src="_images/a.png">'
    )
    (tmp_path / "other.html").write_text('<h1 id="here">Here</h1>')
    broken = broken_links(tmp_path)
    assert len(broken) == 3, broken
    assert any("gone.html names a missing file" in b for b in broken)
    assert any("#nowhere names a missing anchor" in b for b in broken)
    assert any("_images/a.png names a missing file" in b for b in broken)
