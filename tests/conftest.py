"""Shared test options.

``--book-dir=PATH`` points the ``book``-marked tests at a built HTML book; without
it they are skipped, so the unit tests run on their own. The README's test command
builds the book and then runs them with the option set.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def pytest_addoption(parser):
    parser.addoption(
        "--book-dir",
        type=Path,
        default=None,
        help="folder of the built HTML book (_build/html) for the 'book' tests",
    )
    parser.addoption(
        "--book-pdf",
        type=Path,
        default=None,
        help="the book built as one PDF (_build/latex/dlfp.pdf) for the 'book' tests",
    )


@pytest.fixture(scope="session")
def book_dir(request) -> Path:
    path = request.config.getoption("--book-dir")
    if path is None:
        pytest.skip("needs a built book: pass --book-dir=_build/html")
    path = path.resolve()
    if not (path / "index.html").is_file():
        raise FileNotFoundError(
            f"{path} holds no built book (no index.html); build it with "
            "'jupyter-book build .' first."
        )
    return path


@pytest.fixture(scope="session")
def book_pdf(request) -> Path:
    path = request.config.getoption("--book-pdf")
    if path is None:
        pytest.skip("needs the PDF book: pass --book-pdf=_build/latex/dlfp.pdf")
    path = path.resolve()
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist; build it with 'make pdf' first."
        )
    return path
