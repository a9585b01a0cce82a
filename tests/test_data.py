"""The MNIST loader: parsing, splits, bad-input errors, downloads from local mirrors."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import os
import re
import threading
from pathlib import Path

import numpy as np
import pytest

from dlfp import data as mnist
from dlfp.data import DataError, load_mnist

STEMS = list(mnist.MNIST_FILES)


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode a uint8 array as an IDX file (the inverse of ``parse_idx``)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, ">u4").tobytes()
    return header + array.tobytes()


def make_tiny_mnist(
    n_train: int = 40, n_test: int = 12, seed: int = 0
) -> dict[str, bytes]:
    """Decompressed bytes of four small, valid IDX files, keyed by MNIST file name."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test),
    }
    return {stem: idx_bytes(a) for stem, a in arrays.items()}


def checksums_of(files: dict[str, bytes]) -> dict[str, str]:
    return {stem: hashlib.sha256(raw).hexdigest() for stem, raw in files.items()}


def write(folder: Path, files: dict[str, bytes], compress: bool = True) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for stem, raw in files.items():
        if compress:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(raw))
        else:
            (folder / stem).write_bytes(raw)


@pytest.fixture
def tiny(tmp_path):
    files = make_tiny_mnist()
    folder = tmp_path / "mnist"
    write(folder, files)
    return folder, files, checksums_of(files)


# --- Parsing and splitting ----------------------------------------------------------


@pytest.mark.parametrize("compress", [True, False])
def test_loads_tiny_files(tmp_path, compress):
    files = make_tiny_mnist()
    write(tmp_path, files, compress=compress)
    data = load_mnist(
        folder=tmp_path, checksums=checksums_of(files), validation_size=10
    )
    assert data.train.images.shape == (30, 28, 28)
    assert data.validation.images.shape == (10, 28, 28)
    assert data.test.images.shape == (12, 28, 28)
    assert data.train.images.dtype == np.float32 and data.train.labels.dtype == np.int64
    assert 0.0 <= data.train.images.min() and data.train.images.max() <= 1.0
    # The scaled pixels are the file's bytes divided by 255 (eq. 10.1), in file order.
    raw = mnist.parse_idx(
        files["t10k-images-idx3-ubyte"], expect_magic=mnist.IMAGES_MAGIC, name="t10k"
    )
    np.testing.assert_array_equal(data.test.images, raw.astype(np.float32) / 255)
    assert data.train.flat.shape == (30, 784)


def test_split_is_seeded_disjoint_and_complete(tiny):
    folder, files, sums = tiny
    a = load_mnist(folder=folder, checksums=sums, validation_size=10, seed=3)
    b = load_mnist(folder=folder, checksums=sums, validation_size=10, seed=3)
    c = load_mnist(folder=folder, checksums=sums, validation_size=10, seed=4)
    np.testing.assert_array_equal(a.validation.images, b.validation.images)
    assert not np.array_equal(a.validation.images, c.validation.images)
    # Together the two splits are exactly the training file, each image once.
    everything = np.concatenate([a.train.flat, a.validation.flat])
    full = load_mnist(folder=folder, checksums=sums).train.flat
    assert sorted(map(bytes, everything)) == sorted(map(bytes, full))


def test_subset(tiny):
    folder, files, sums = tiny
    data = load_mnist(folder=folder, checksums=sums, subset=20, validation_size=5)
    assert len(data.train.labels) == 15 and len(data.validation.labels) == 5
    assert len(data.test.labels) == 12  # the test set is never cut


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"subset": 0}, "subset must be between 1 and 40"),
        ({"subset": 41}, "subset must be between 1 and 40"),
        ({"validation_size": 40}, "validation_size must be between 0 and 39"),
        (
            {"subset": 10, "validation_size": 10},
            "validation_size must be between 0 and 9",
        ),
    ],
)
def test_bad_split_sizes(tiny, kwargs, message):
    folder, files, sums = tiny
    with pytest.raises(ValueError, match=message):
        load_mnist(folder=folder, checksums=sums, **kwargs)


# --- Bad files: one clear sentence each ---------------------------------------------


def one_sentence(message: str) -> bool:
    """An error message is one sentence: a full stop at the end, no line break."""
    return message.endswith(".") and "\n" not in message


def test_missing_files_without_download(tmp_path):
    with pytest.raises(DataError) as err:
        load_mnist(folder=tmp_path / "empty", download=False)
    message = str(err.value)
    assert str(tmp_path / "empty") in message and "DLFP_DATA_DIR" in message
    for stem in STEMS:
        assert f"{stem}.gz" in message
    assert one_sentence(message)


def test_missing_files_and_no_network(tmp_path):
    dead = "http://127.0.0.1:9/"  # the discard port: nothing listens there
    with pytest.raises(DataError) as err:
        load_mnist(folder=tmp_path, mirrors=[dead], download=True)
    message = str(err.value)
    assert "download failed" in message and "DLFP_DATA_DIR" in message
    assert str(tmp_path) in message and one_sentence(message)
    assert list(tmp_path.iterdir()) == []  # nothing was left behind


def test_truncated_gzip(tiny):
    folder, files, sums = tiny
    path = folder / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(DataError, match="not a readable gzip file") as err:
        load_mnist(folder=folder, checksums=sums)
    assert str(path) in str(err.value) and one_sentence(str(err.value))


def test_garbage_instead_of_gzip(tiny):
    folder, files, sums = tiny
    path = folder / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(b"<html>404 Not Found</html>")
    with pytest.raises(DataError, match="not a readable gzip file"):
        load_mnist(folder=folder, checksums=sums)


def test_wrong_magic_number(tiny):
    folder, files, sums = tiny
    # A labels file where the images should be: the classic swap.
    swapped = dict(
        files, **{"train-images-idx3-ubyte": files["train-labels-idx1-ubyte"]}
    )
    write(folder, swapped)
    with pytest.raises(DataError) as err:
        load_mnist(
            folder=folder, checksums=dict(sums, **{"train-images-idx3-ubyte": None})
        )
    message = str(err.value)
    assert "0x00000801" in message and "0x00000803" in message and one_sentence(message)


def test_counts_disagree_with_file_size(tiny):
    folder, files, sums = tiny
    raw = files["train-images-idx3-ubyte"][
        :-784
    ]  # header still says 40 images, 39 remain
    write(folder, {"train-images-idx3-ubyte": raw})
    with pytest.raises(DataError, match=r"truncated or damaged") as err:
        load_mnist(
            folder=folder, checksums=dict(sums, **{"train-images-idx3-ubyte": None})
        )
    assert "(40, 28, 28)" in str(err.value) and one_sentence(str(err.value))


def test_header_cut_short(tiny):
    folder, files, sums = tiny
    write(folder, {"t10k-images-idx3-ubyte": files["t10k-images-idx3-ubyte"][:10]})
    with pytest.raises(DataError, match="ends inside its header"):
        load_mnist(
            folder=folder, checksums=dict(sums, **{"t10k-images-idx3-ubyte": None})
        )


def test_images_and_labels_differ_in_count(tiny):
    folder, files, sums = tiny
    labels = idx_bytes(np.zeros(39, np.uint8))
    write(folder, {"train-labels-idx1-ubyte": labels})
    with pytest.raises(DataError, match="40 images but .* 39 labels") as err:
        load_mnist(
            folder=folder, checksums=dict(sums, **{"train-labels-idx1-ubyte": None})
        )
    assert one_sentence(str(err.value))


def test_label_out_of_range(tiny):
    folder, files, sums = tiny
    labels = np.zeros(12, np.uint8)
    labels[3] = 11
    write(folder, {"t10k-labels-idx1-ubyte": idx_bytes(labels)})
    with pytest.raises(DataError, match="label 11"):
        load_mnist(
            folder=folder, checksums=dict(sums, **{"t10k-labels-idx1-ubyte": None})
        )


def test_checksum_mismatch(tiny):
    folder, files, sums = tiny
    wrong = dict(sums, **{"t10k-images-idx3-ubyte": "0" * 64})
    with pytest.raises(DataError, match="SHA-256") as err:
        load_mnist(folder=folder, checksums=wrong)
    assert "t10k-images-idx3-ubyte" in str(err.value) and one_sentence(str(err.value))


def test_real_checksums_reject_other_files(tiny):
    """With the official table, a valid IDX file that is not MNIST is refused."""
    folder, files, sums = tiny
    with pytest.raises(DataError, match="SHA-256"):
        load_mnist(folder=folder)


# --- Where the data lives -----------------------------------------------------------


def test_data_dir_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("DLFP_DATA_DIR", str(tmp_path))
    assert mnist.data_dir() == tmp_path.resolve()


def test_data_dir_defaults_to_user_cache(monkeypatch, tmp_path):
    monkeypatch.delenv("DLFP_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    if os.name == "posix" and not os.uname().sysname == "Darwin":
        assert mnist.data_dir() == tmp_path / "dlfp" / "mnist"


def test_loader_reads_from_data_dir(monkeypatch, tiny):
    folder, files, sums = tiny
    monkeypatch.setenv("DLFP_DATA_DIR", str(folder))
    assert len(load_mnist(checksums=sums, download=False).test.labels) == 12


# --- Downloads, against HTTP servers on 127.0.0.1 -----------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``files`` (name -> bytes); ``truncate`` cuts each body short."""

    files: dict[str, bytes] = {}
    truncate = False

    def do_GET(self):  # noqa: N802 (the name http.server asks for)
        body = self.files.get(self.path.rsplit("/", 1)[-1])
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if self.truncate else body)

    def log_message(self, *args):  # keep the test output quiet
        pass


@pytest.fixture
def serve():
    """Start HTTP servers on 127.0.0.1: a function that returns a new mirror's URL."""
    servers = []

    def start(files: dict[str, bytes], truncate: bool = False) -> str:
        handler = type("Handler", (_Handler,), {"files": files, "truncate": truncate})
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/mnist/"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def gz_files(files: dict[str, bytes]) -> dict[str, bytes]:
    return {f"{stem}.gz": gzip.compress(raw) for stem, raw in files.items()}


def assert_only_good_files(folder: Path, expected: set[str]) -> None:
    """The folder holds exactly ``expected``: no '.part' file, nothing half-written."""
    assert {p.name for p in folder.iterdir()} == expected


def test_download_from_good_mirror(tmp_path, serve):
    files = make_tiny_mnist()
    mirror = serve(gz_files(files))
    data = load_mnist(folder=tmp_path, mirrors=[mirror], checksums=checksums_of(files))
    assert len(data.train.labels) == 40
    assert_only_good_files(tmp_path, {f"{s}.gz" for s in STEMS})
    # The second load reads the saved files: a dead mirror does not matter any more.
    again = load_mnist(
        folder=tmp_path, mirrors=["http://127.0.0.1:9/"], checksums=checksums_of(files)
    )
    np.testing.assert_array_equal(data.test.images, again.test.images)


def test_dead_mirror_then_good_one(tmp_path, serve):
    files = make_tiny_mnist()
    good = serve(gz_files(files))
    missing = serve({})  # answers 404 to everything
    data = load_mnist(
        folder=tmp_path,
        mirrors=["http://127.0.0.1:9/", missing, good],
        checksums=checksums_of(files),
    )
    assert len(data.test.labels) == 12


def test_corrupt_mirror_leaves_nothing_behind(tmp_path, serve):
    files = make_tiny_mnist()
    other = make_tiny_mnist(seed=1)  # valid gzip, valid IDX, wrong bytes
    bad = serve(gz_files(other))
    with pytest.raises(DataError, match="SHA-256") as err:
        load_mnist(folder=tmp_path, mirrors=[bad], checksums=checksums_of(files))
    assert bad in str(err.value) and "DLFP_DATA_DIR" in str(err.value)
    assert_only_good_files(tmp_path, set())


def test_mirror_serving_broken_gzip(tmp_path, serve):
    files = make_tiny_mnist()
    broken = {name: body[:-50] for name, body in gz_files(files).items()}
    with pytest.raises(DataError, match="not a readable gzip file"):
        load_mnist(
            folder=tmp_path, mirrors=[serve(broken)], checksums=checksums_of(files)
        )
    assert_only_good_files(tmp_path, set())


def test_truncated_transfer_then_good_mirror(tmp_path, serve):
    files = make_tiny_mnist()
    cut = serve(gz_files(files), truncate=True)
    good = serve(gz_files(files))
    load_mnist(folder=tmp_path, mirrors=[cut, good], checksums=checksums_of(files))
    assert_only_good_files(tmp_path, {f"{s}.gz" for s in STEMS})


def test_corrupt_mirror_then_good_one(tmp_path, serve):
    files = make_tiny_mnist()
    bad = serve(gz_files(make_tiny_mnist(seed=2)))
    good = serve(gz_files(files))
    data = load_mnist(
        folder=tmp_path, mirrors=[bad, good], checksums=checksums_of(files)
    )
    expected = mnist.parse_idx(
        files["train-labels-idx1-ubyte"], expect_magic=mnist.LABELS_MAGIC, name="labels"
    )
    np.testing.assert_array_equal(np.sort(data.train.labels), np.sort(expected))


def test_mirrors_from_environment(monkeypatch, tmp_path, serve):
    files = make_tiny_mnist()
    monkeypatch.setenv("DLFP_MNIST_MIRRORS", serve(gz_files(files)).rstrip("/"))
    assert (
        len(load_mnist(folder=tmp_path, checksums=checksums_of(files)).train.labels)
        == 40
    )


# --- The real files -----------------------------------------------------------------


def test_checksum_table_matches_shared_readme():
    """The table in the code is the one published with the data (where it is here)."""
    readme = mnist.data_dir() / "README.md"
    if not readme.is_file():
        pytest.skip(f"no README.md beside the data in {readme.parent}")
    published = dict(
        re.findall(
            r"\|\s*([a-z0-9-]+-ubyte)\s*\|\s*\d+\s*\|\s*([0-9a-f]{64})",
            readme.read_text(),
        )
    )
    assert published == mnist.MNIST_FILES


@pytest.mark.mnist
def test_real_mnist():
    data = load_mnist(validation_size=5000, seed=0)
    assert data.train.images.shape == (55000, 28, 28)
    assert data.validation.images.shape == (5000, 28, 28)
    assert data.test.images.shape == (10000, 28, 28)
    full = load_mnist()
    assert full.train.labels[:8].tolist() == [5, 0, 4, 1, 9, 2, 1, 3]
    assert full.test.labels[:8].tolist() == [7, 2, 1, 0, 4, 1, 4, 9]
    assert np.bincount(full.train.labels).tolist()[:3] == [5923, 6742, 5958]


# --- The mnist marker: skip, saying why, where the files are absent -------------------


class _Item:
    """The part of a pytest item that the marker's hook reads."""

    def __init__(self, marked: bool):
        self.marked = marked

    def get_closest_marker(self, name):
        return object() if self.marked and name == "mnist" else None


def test_the_mnist_marker_skips_with_the_reason_where_the_files_are_absent(
    tmp_path, monkeypatch
):
    from . import conftest

    monkeypatch.setenv("DLFP_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("DLFP_REQUIRE_MNIST", raising=False)
    with pytest.raises(pytest.skip.Exception, match="DLFP_DATA_DIR") as skipped:
        conftest.pytest_runtest_setup(_Item(marked=True))
    assert str(tmp_path) in str(skipped.value)
    conftest.pytest_runtest_setup(_Item(marked=False))  # unmarked tests run anyway

    monkeypatch.setenv("DLFP_REQUIRE_MNIST", "1")
    with pytest.raises(pytest.fail.Exception, match="DLFP_REQUIRE_MNIST=1"):
        conftest.pytest_runtest_setup(_Item(marked=True))

    for name in mnist.MNIST_FILES:  # present, compressed or not: the test runs
        (tmp_path / f"{name}.gz").touch()
    assert conftest.mnist_missing() is None
    conftest.pytest_runtest_setup(_Item(marked=True))
