"""The notation page: every symbol in its tables is used where the page says it is."""

from __future__ import annotations

import re

import pytest
import yaml

from .conftest import ROOT

NOTATION = (ROOT / "book" / "notation.md").read_text()
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text())
PART_ONE = next(p for p in TOC["parts"] if p["caption"].startswith("Part I:"))
PART_ONE_FILES = [ROOT / f"{c['file']}.md" for c in PART_ONE["chapters"]]
LABELS = {
    m.group(1): path
    for path in (ROOT / "book").rglob("*.md")
    for m in re.finditer(r"^\((ch-[\w-]+)\)=$", path.read_text(), re.M)
}


def squeeze(text: str) -> str:
    """LaTeX without white space, so that line breaks and spacing do not matter."""
    return re.sub(r"\s+", "", text)


def split_top_level(math: str) -> list[str]:
    """'a, b_{i,j}' -> ['a', 'b_{i,j}']: commas inside braces do not split."""
    pieces, depth, start = [], 0, 0
    for i, char in enumerate(math):
        depth += {"{": 1, "}": -1}.get(char, 0)
        if char == "," and depth == 0:
            pieces.append(math[start:i])
            start = i + 1
    pieces.append(math[start:])
    return [p.strip() for p in pieces if p.strip()]


def rows():
    """(symbol, chapter files) for every row of the tables before Part III's."""
    text = NOTATION.split("## Convolutions (Part III)")[0]
    for section in re.split(r"^## ", text, flags=re.M)[1:]:
        lines = [line for line in section.splitlines() if line.startswith("|")]
        if not lines:
            continue
        header = [c.strip() for c in lines[0].strip("|").split("|")]
        for line in lines[2:]:
            cells = [c.strip() for c in line.strip("|").split(" | ")]
            if "Where" in header:
                where = cells[header.index("Where")]
                files = [LABELS[label] for label in re.findall(r"`(ch-[\w-]+)`", where)]
            else:
                files = PART_ONE_FILES
            for math in re.findall(r"\$([^$]+)\$", cells[0]):
                for symbol in split_top_level(math):
                    yield symbol, files


ROWS = list(rows())


def test_the_table_was_parsed():
    assert len(ROWS) > 60, "the notation tables were not found"
    assert all(files for _, files in ROWS), "a row names no chapter"


@pytest.mark.parametrize("symbol, files", ROWS, ids=[s for s, _ in ROWS])
def test_symbol_appears_in_its_chapters(symbol, files):
    text = squeeze("".join(path.read_text() for path in files))
    # A symbol written for layer ell may appear for a particular layer, [1] or [\ell-1].
    pattern = re.escape(squeeze(symbol)).replace(re.escape("[\\ell]"), r"\[[^\]]+\]")
    assert re.search(pattern, text), (
        f"{symbol} is on the notation page but not in {[f.name for f in files]}; "
        "use it there as the page spells it, or take it off the page."
    )


def test_dropout_rate_and_adam_epsilon_have_one_meaning():
    """r is the dropout rate and epsilon Adam's constant, nothing else, in Part I."""
    for path in PART_ONE_FILES:
        text = path.read_text()
        if path.name != "regularisation.md":
            assert not re.search(r"\$r\$|\$r\s*=|\|r\|", text), (
                f"{path.name} uses r, the dropout rate; pick another letter."
            )
        if path.name not in {"optimizers.md", "regularisation.md"}:
            assert not re.search(r"\\epsilon\b", text), (
                f"{path.name} uses epsilon, Adam's constant; machine epsilon is "
                "varepsilon_mach."
            )
