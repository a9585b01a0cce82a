"""The launch path, as a reader meets it: Binder's environment, JupyterLab, a chapter.

What Binder (repo2docker) does with this repository is done here, on this machine:

1. copy the repository (its tracked and unignored files) into a folder of its own;
2. create a virtual environment with the Python of ``binder/runtime.txt`` and install
   exactly ``binder/requirements.txt`` into it, from that copy;
3. run ``binder/postBuild`` there, with a home folder of its own;
4. start JupyterLab on 127.0.0.1 and open, in headless Chromium, the path that a
   chapter's launch button names (``lab/tree/book/part1/neuron.md``).

The chapter must open as a notebook (not as a text file), its first cells must run and
print their output, and its prose must read as the book's does: no raw ``{glue``,
``{cite``, ``:pyobject:`` or ``(eq-`` text, and a number that the cells compute appears
in a sentence once they have run. MNIST is fetched in that environment on first use,
from a mirror on 127.0.0.1 that serves the local files (CI has no internet).

The environment is kept in ``_build/binder/env`` and rebuilt when ``binder/``,
``requirements.lock`` or ``pyproject.toml`` change. PyTorch's CPU index, which
``binder/requirements.txt`` names, is tried once only (``PIP_RETRIES=0``): a machine
that reaches only PyPI takes the CPU wheel from its local wheel folder
(``PIP_FIND_LINKS``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import pytest

from ..browser import chromium, chromium_missing, serve
from ..conftest import ROOT
from ..envs import base_env as _base_env
from ..envs import pip_env, run_notebooks
from ..envs import repo_copy as _copy_repository
from ..envs import run as _run
from ..myst import JUPYTERLAB_MYST, raw_myst

# It serves this machine's MNIST as the download mirror of the launched notebook.
pytestmark = [pytest.mark.binder, pytest.mark.mnist]
WORK = ROOT / "_build" / "binder"
CHAPTER = "book/part1/neuron.md"
# Files whose content defines the environment: a change to any of them rebuilds it.
ENV_INPUTS = ["binder/requirements.txt", "binder/runtime.txt", "requirements.lock"]
ENV_INPUTS += ["pyproject.toml"]


def _digest() -> str:
    h = hashlib.sha256()
    for name in ENV_INPUTS:
        h.update(name.encode() + b"\0" + (ROOT / name).read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def repo_copy() -> Path:
    """The repository as Binder clones it: tracked files and new unignored ones."""
    return _copy_repository(WORK / "repo")


@pytest.fixture(scope="module")
def binder_env(repo_copy) -> Path:
    """A virtual environment from exactly binder/runtime.txt and requirements.txt."""
    env_dir = WORK / "env"
    stamp = env_dir / ".binder-inputs"
    if stamp.is_file() and stamp.read_text() == _digest():
        # The same requirements: only this project itself may have changed since.
        _run(
            [
                str(env_dir / "bin/python"),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--no-deps",
                "--force-reinstall",
                ".",
            ],
            cwd=repo_copy,
            env=_base_env(),
            what="reinstalling the project into the Binder environment",
            timeout=600,
        )
        return env_dir
    runtime = (ROOT / "binder/runtime.txt").read_text().strip()
    match = re.fullmatch(r"python-(\d+\.\d+)", runtime)
    assert match, f"binder/runtime.txt reads {runtime!r}, not python-X.Y"
    python = shutil.which(f"python{match[1]}")
    if python is None:
        pytest.fail(
            f"binder/runtime.txt asks for Python {match[1]}, not on this machine."
        )
    shutil.rmtree(env_dir, ignore_errors=True)
    # PIP_NO_COMPILE: Python compiles what it imports anyway; compiling TensorFlow
    # whole up front would only make the install slower.
    env = pip_env()
    started = time.monotonic()
    _run(
        [python, "-m", "venv", str(env_dir)],
        cwd=repo_copy,
        env=env,
        what="venv",
        timeout=300,
    )
    _run(
        [
            str(env_dir / "bin/python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "-r",
            "binder/requirements.txt",
        ],
        cwd=repo_copy,
        env=env,
        what="pip install -r binder/requirements.txt",
        timeout=1800,
    )
    print(f"\nBinder environment installed in {time.monotonic() - started:.0f} s")
    stamp.write_text(_digest())
    return env_dir


@pytest.fixture(scope="module")
def mnist_mirror():
    """An HTTP mirror of MNIST on 127.0.0.1, serving this machine's copy of it."""
    from dlfp.data import MNIST_FILES, data_dir

    folder = data_dir()  # DLFP_DATA_DIR, else the per-user cache
    if not all((folder / f"{name}.gz").is_file() for name in MNIST_FILES):
        pytest.fail(
            f"{folder} lacks the four MNIST .gz files that the test serves as the "
            "download mirror; point DLFP_DATA_DIR at a folder that has them."
        )
    with serve(folder) as url:
        yield f"{url}/"


@pytest.fixture(scope="module")
def post_built(binder_env, repo_copy, mnist_mirror) -> dict[str, str]:
    """Binder's copy after ``binder/postBuild``; returns the environment variables of
    the launched notebook (its own home folder; MNIST not downloaded yet)."""
    home = WORK / "home"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    env = _base_env() | {
        "HOME": str(home),
        "PATH": f"{binder_env / 'bin'}{os.pathsep}{_base_env()['PATH']}",
        "VIRTUAL_ENV": str(binder_env),
        "XDG_CACHE_HOME": str(home / ".cache"),
        # As on Binder: MNIST is not there yet and is downloaded on first use.
        "DLFP_MNIST_MIRRORS": mnist_mirror,
    }
    env.pop("DLFP_DATA_DIR", None)
    env.pop("JUPYTER_CONFIG_DIR", None)
    env.pop("JUPYTER_DATA_DIR", None)
    _run(
        ["bash", "binder/postBuild"],
        cwd=repo_copy,
        env=env,
        what="postBuild",
        timeout=600,
    )
    # Every cell rendered, not only those in view, so that the whole chapter is read.
    settings = home / ".jupyter/lab/user-settings/@jupyterlab/notebook-extension"
    settings.mkdir(parents=True, exist_ok=True)
    (settings / "tracker.jupyterlab-settings").write_text(
        json.dumps({"windowingMode": "none"})
    )
    return env


@pytest.fixture(scope="module")
def lab(binder_env, repo_copy, post_built):
    """JupyterLab of the Binder environment after postBuild: (url, token, env)."""
    env = post_built
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = "dlfp-binder-test"
    log = open(WORK / "jupyterlab.log", "w")  # noqa: SIM115 (closed below)
    server = subprocess.Popen(
        [
            str(binder_env / "bin/jupyter"),
            "lab",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={repo_copy}",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--allow-root",  # CI machines run as root
        ],
        cwd=repo_copy,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300  # a loaded machine is slow to import
        while True:
            try:
                with urllib.request.urlopen(
                    f"{url}/api/status?token={token}", timeout=5
                ):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    pytest.fail(
                        "JupyterLab did not start; its log: "
                        + (WORK / "jupyterlab.log").read_text()[-2000:]
                    )
                time.sleep(1)
        yield url, token, env
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.fixture(scope="module")
def browser():
    missing = chromium_missing()
    if missing:
        pytest.fail(missing)
    with chromium() as browser:
        yield browser


def test_mnist_is_fetched_on_first_use(lab, binder_env):
    """In the Binder environment, without the data, the library downloads it."""
    _, _, env = lab
    out = _run(
        [
            str(binder_env / "bin/python"),
            "-c",
            "from dlfp.data import data_dir, load_mnist; d = load_mnist(); "
            "print(data_dir(), d.train.labels.shape[0], d.test.labels.shape[0])",
        ],
        cwd=WORK,
        env=env,
        what="loading MNIST in the Binder environment",
        timeout=600,
    )
    folder, n_train, n_test = out.split()
    assert Path(folder).is_relative_to(Path(env["HOME"])), folder
    assert int(n_train) + int(n_test) == 70_000
    assert len(list(Path(folder).glob("*-ubyte*"))) == 4


def test_launched_chapter_is_a_runnable_notebook_that_reads_like_the_book(lab, browser):
    url, token, _ = lab
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    external, errors = [], []

    def guard(route):
        if urlparse(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            external.append(route.request.url)
            route.abort()

    page.route("**/*", guard)
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(f"{url}/lab/tree/{CHAPTER}?token={token}")
        notebook = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook")
        try:
            notebook.locator(".jp-CodeCell").first.wait_for(timeout=120_000)
        except Exception:
            editors = page.locator(".jp-FileEditor").count()
            pytest.fail(
                f"{CHAPTER} did not open as a notebook"
                + (" (it opened as a text file)" if editors else "")
            )
        code_cells = notebook.locator(".jp-CodeCell")
        expected = (ROOT / CHAPTER).read_text(encoding="utf-8").count("```{code-cell}")
        # The notebook renders its cells a few at a time.
        page.wait_for_function(
            "n => document.querySelectorAll("
            "'.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell').length >= n",
            arg=expected,
            timeout=120_000,
        )
        assert code_cells.count() == expected, "the chapter's code cells are missing"

        markdown = notebook.locator(".jp-MarkdownCell")
        # Rendered by jupyterlab-myst: the citation reads as in the book.
        page.wait_for_function(
            "() => Array.from(document.querySelectorAll('.jp-MarkdownCell'))"
            ".some(c => c.innerText.includes('McCulloch and Pitts (1943)'))",
            timeout=60_000,
        )
        _wait_for_idle_kernel(page)

        # Run the cells from the top, as a reader does with Shift+Enter, down to the
        # paragraph that shows the first numbers the cells compute.
        target = markdown.filter(has_text="The largest difference is")
        assert target.count() == 1, (
            "the paragraph with the first glued number is missing"
        )
        cells = notebook.locator(".jp-Cell")
        texts = cells.all_inner_texts()
        stop = next(i for i, t in enumerate(texts) if "The largest difference is" in t)
        cells.first.click()
        page.keyboard.press("Escape")
        for _ in range(stop + 1):
            page.keyboard.press("Shift+Enter")
        _wait_for_idle_kernel(page, timeout=300_000)

        # The first cell sets the figure style and prints nothing; the second one prints
        # the truth table of the threshold units.
        table = code_cells.filter(has_text="def threshold_unit")
        table.locator(".jp-OutputArea-output").first.wait_for(timeout=60_000)
        printed = " ".join(table.locator(".jp-OutputArea-output").all_inner_texts())
        assert "XOR (wanted)" in printed, f"the first cells printed no table: {printed}"
        first = code_cells.first.locator(".jp-OutputArea-output")
        assert first.count() == 0, f"the first cell printed {first.all_inner_texts()}"
        failed = notebook.locator(".jp-OutputArea-output:has-text('Traceback')")
        assert failed.count() == 0, f"a cell failed: {failed.first.inner_text()[:500]}"

        sentence = re.compile(
            r"The largest difference is (\d\.\de[-+]\d+),\s*(\d+\.\d)"
        )
        page.wait_for_function(
            "re => new RegExp(re).test(Array.from(document.querySelectorAll("
            "'.jp-MarkdownCell')).map(c => c.innerText).join(' '))",
            arg=sentence.pattern,
            timeout=60_000,
        )

        prose = "\n".join(markdown.all_inner_texts())
        for raw in ("{glue", "{cite", ":pyobject:", "(eq-", "{eval}", "{ref}"):
            assert raw not in prose, f"the chapter shows raw MyST: {raw!r}"
        assert "McCulloch and Pitts (1943)" in prose, (
            "citations do not read as in the book"
        )
        assert "def forward(self, X" in prose, "the code shown from src/ is missing"
        assert sentence.search(prose), "no computed number in the prose"
        assert not errors, f"JupyterLab raised errors in the page: {errors}"
        folder = os.environ.get("DLFP_SCREENSHOTS")
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
            target.scroll_into_view_if_needed()
            page.screenshot(path=str(Path(folder) / "binder-neuron.png"))
    finally:
        folder = os.environ.get("DLFP_SCREENSHOTS")
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(Path(folder) / "binder-neuron-end.png"))
        context.close()


def _wait_for_idle_kernel(page, timeout: float = 120_000) -> None:
    """Wait until the notebook's kernel has started and runs nothing."""
    page.wait_for_function(
        "() => { const s = document.querySelector("
        "'.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator');"
        " const bar = document.querySelector('#jp-main-statusbar');"
        " return (s && s.getAttribute('data-status') === 'idle')"
        " || (bar !== null && / Idle/.test(bar.innerText)); }",
        timeout=timeout,
    )
    # Cells queued by Shift+Enter show [*]; wait until none is left.
    page.wait_for_function(
        "() => !Array.from(document.querySelectorAll('.jp-InputPrompt'))"
        ".some(p => p.innerText.includes('*'))",
        timeout=timeout,
    )


def reading_order() -> list[str]:
    """The chapters with code, in the order of ``_toc.yml``."""
    import yaml

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [c["file"] for part in toc["parts"] for c in part["chapters"]]
    wanted = os.environ.get("DLFP_LAUNCH_CHAPTERS")  # a few, while working on them
    if wanted:
        files = [f for f in files if f in {w.strip() for w in wanted.split(",")}]
    return [
        f"{f}.md"
        for f in files
        if "```{code-cell}" in (ROOT / f"{f}.md").read_text(encoding="utf-8")
    ]


@pytest.mark.chapters
def test_every_chapter_runs_top_to_bottom_as_binder_has_it(
    post_built, binder_env, repo_copy
):
    """Every chapter, in reading order, run top to bottom as Binder's copy has it after
    postBuild, in the environment built from binder/ (the project installed as Binder
    installs it): no cell fails, no prose shows raw MyST, and every glued number in the
    prose has been computed by the cells above it when the reader reaches it.

    Thebe (the live code button) runs the same code cells in the same environment, so
    this covers it too; the cells hidden from the page (``remove-cell``), which Thebe
    does not run, are checked to be needed by no visible cell
    (``tests/test_book_sources.py``). Models kept by the build that ran before (the
    same lock, the same keys: ``$DLFP_LAUNCH_ARTIFACTS``) are reused, so no chapter
    trains twice.
    """
    import jupytext

    chapters = reading_order()
    assert chapters, "no chapter to run"
    shown = {}
    for chapter in chapters:
        nb = jupytext.read(repo_copy / chapter)
        text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
        shown[chapter] = raw_myst(text, *JUPYTERLAB_MYST)
    assert not any(shown.values()), {c: r for c, r in shown.items() if r}

    env = dict(post_built)
    artifacts = os.environ.get("DLFP_LAUNCH_ARTIFACTS") or str(WORK / "artifacts")
    env["DLFP_ARTIFACTS"] = artifacts
    results = run_notebooks(
        binder_env / "bin/python",
        [repo_copy / c for c in chapters],
        cwd=repo_copy,
        env=env,
        report=WORK / "chapters.json",
        what="every chapter on the Binder path",
    )
    failed = {r["notebook"]: r["error"] for r in results if r["error"]}
    assert not failed, f"cells failed on the Binder path: {failed}"
    early = {r["notebook"]: r["missing"] for r in results if r["missing"]}
    assert not early, f"prose that shows a value before the cells compute it: {early}"
    scalars = {r["notebook"]: r["numpy_glues"] for r in results if r["numpy_glues"]}
    assert not scalars, f"glued NumPy scalars (glue float() or int()): {scalars}"
