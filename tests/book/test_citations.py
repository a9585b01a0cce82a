"""The library's code cites the book's equations by number ("eq. (8.8)"); the numbers
must name the equations the code implements.

A number can go stale without any error: a chapter inserted before chapter 8 renumbers
every later equation. So each cited number is recorded, with the label of the
equation it names, in ``cited_equations.json`` beside this file, and the test compares
that record with the built book. When it fails: read the cited equation and the code
again, correct the citation in ``src/dlfp`` if the number moved, and record the new
mapping with ``python -m tests.book.test_citations _build/html`` (it rewrites the file;
review the diff).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from ..conftest import ROOT

pytestmark = pytest.mark.book

RECORD = Path(__file__).with_name("cited_equations.json")
CITATION = re.compile(r"[Ee]qs?\. \((\d+\.\d+)\)|and \((\d+\.\d+)\)")


def cited_numbers() -> dict[str, list[str]]:
    """Each equation number cited in src/dlfp, with the places citing it."""
    cited: dict[str, list[str]] = {}
    source = ROOT / "src" / "dlfp"
    for path in sorted(source.rglob("*.py")):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            for match in CITATION.finditer(line):
                number = match.group(1) or match.group(2)
                place = f"{path.relative_to(source).as_posix()}:{n}"
                cited.setdefault(number, []).append(place)
    return cited


def book_equations(html: Path) -> dict[str, str]:
    """Each equation number in the built book, with its label (``eq-...``)."""
    numbers = {}
    for page in html.rglob("*.html"):
        text = page.read_text(encoding="utf-8", errors="ignore")
        for match in re.finditer(r'id="equation-([\w-]+)"', text):
            after = text[match.end() : match.end() + 3000]
            number = re.search(r'class="eqno">\((\d+\.\d+)\)', after)
            if number:
                numbers[number.group(1)] = match.group(1)
    return numbers


def test_the_library_cites_equations():
    assert len(cited_numbers()) >= 30, "the citations in src/dlfp were not found"


def test_every_cited_equation_is_the_one_recorded(book_dir):
    record = json.loads(RECORD.read_text())
    book = book_equations(book_dir)
    problems = []
    for number, places in sorted(cited_numbers().items()):
        where = ", ".join(places)
        if number not in book:
            problems.append(f"({number}), cited at {where}, is not in the book")
        elif number not in record:
            problems.append(
                f"({number}), cited at {where}, is new: check it names the equation "
                f"the code implements ({book[number]}) and record it"
            )
        elif book[number] != record[number]:
            problems.append(
                f"({number}), cited at {where}, is now {book[number]}, not "
                f"{record[number]}: the chapters were renumbered"
            )
    remedy = __doc__.split("When it fails: ")[1]
    assert not problems, "\n".join(problems) + "\n" + remedy


if __name__ == "__main__":  # python -m tests.book.test_citations _build/html
    book = book_equations(Path(sys.argv[1]))
    record = {n: book.get(n, "MISSING") for n in sorted(cited_numbers())}
    RECORD.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    print(f"recorded {len(record)} cited equations in {RECORD}")
