"""Shared test options.

``--book-dir=PATH`` points the ``book``-marked tests at a built HTML book; without
it they are skipped, so the unit tests run on their own. The README's test command
builds the book and then runs them with the option set.

Tests marked ``mnist`` read the real MNIST files from :func:`dlfp.data.data_dir`
(``$DLFP_DATA_DIR``); where the files are absent they skip and say so, or fail when
``DLFP_REQUIRE_MNIST=1`` (CI sets it, so that no test there skips for want of data).

Tests marked ``tf_determinism`` turn TensorFlow's op determinism on (training the Keras
network does), which no public function turns off: they run after every other test,
and a test without the mark that turns it on fails, saying so.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from dlfp.recipes import CNNConfig, load_mnist_for

ROOT = Path(__file__).resolve().parents[1]

#: The book's CNN in miniature, for the tests of the frameworks and of the verdict's
#: experiment: two narrow blocks, 500 training images, one epoch (seconds to train).
SMALL_CNN = CNNConfig(
    channels=(4, 8), hidden=16, epochs=1, batch_size=32, subset=600,
    validation_size=100,
)  # fmt: skip


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


@pytest.fixture(scope="session")
def small_cnn_data():
    """MNIST split as :data:`SMALL_CNN` asks (for tests marked ``mnist``)."""
    return load_mnist_for(SMALL_CNN)


def mnist_missing() -> str | None:
    """Why the real MNIST files cannot be read here, or None when they can."""
    from dlfp.data import MNIST_FILES, data_dir

    folder = data_dir()
    missing = [
        name
        for name in MNIST_FILES
        if not any((folder / f"{name}{ext}").is_file() for ext in (".gz", ""))
    ]
    if not missing:
        return None
    return (
        f"needs the MNIST files, and {', '.join(missing)} are not in {folder}: point "
        "DLFP_DATA_DIR at a folder that holds them, or download them once with "
        "python -c 'import dlfp.data; dlfp.data.ensure_mnist()'"
    )


def pytest_runtest_setup(item):
    if item.get_closest_marker("mnist") is None:
        return
    why = mnist_missing()
    if why is None:
        return
    if os.environ.get("DLFP_REQUIRE_MNIST") == "1":
        pytest.fail(f"DLFP_REQUIRE_MNIST=1, but this test {why}", pytrace=False)
    pytest.skip(why)


def pytest_collection_modifyitems(config, items):
    """The tests that turn TensorFlow's op determinism on run last (stable order)."""
    items.sort(key=lambda item: item.get_closest_marker("tf_determinism") is not None)


def _tf_op_determinism() -> bool:
    keras_cnn = sys.modules.get("dlfp.frameworks.keras_cnn")
    return bool(getattr(keras_cnn, "OP_DETERMINISM", False))


@pytest.fixture(autouse=True)
def _tf_op_determinism_stays_off(request):
    """A test without the ``tf_determinism`` mark must leave TensorFlow's op
    determinism as it found it: the tests after it need it off."""
    before = _tf_op_determinism()
    yield
    if not before and _tf_op_determinism():
        if request.node.get_closest_marker("tf_determinism") is None:
            pytest.fail(
                "this test turned TensorFlow's op determinism on, which nothing turns "
                "off: mark it @pytest.mark.tf_determinism so that it runs last.",
                pytrace=False,
            )
