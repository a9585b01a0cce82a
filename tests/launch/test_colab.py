"""Every chapter as Colab opens it: the notebooks that the build published (in
``_notebooks/`` beside the pages, ``book/_ext/dlfp_colab.py``), run top to bottom in a
fresh environment that has what a Colab runtime has for them (NumPy, Matplotlib,
PyTorch, TensorFlow and a kernel) and not dlfp. Each notebook's first cell must
install dlfp itself: its install line names the repository at the book's commit, which
here is replaced by a copy of the checkout (standing in for the repository's URL).
MNIST downloads as usual, from a mirror on 127.0.0.1 that serves this machine's files.

Needs a built book (``--book-dir``). ``DLFP_LAUNCH_ARTIFACTS`` names the models kept by
that build, so that no chapter trains again; ``DLFP_LAUNCH_CHAPTERS`` (comma-separated
page names, such as ``book/part1/neuron``) runs only those.
"""

from __future__ import annotations

import os
import re

import pytest

from ..browser import serve
from ..conftest import ROOT
from ..envs import base_env, fresh_venv, pip_env, repo_copy, run, run_notebooks
from ..myst import raw_myst

pytestmark = [pytest.mark.launch, pytest.mark.mnist]
WORK = ROOT / "_build" / "colab"
#: What a Colab runtime has that the chapters use (at the lock's versions here).
COLAB_HAS = ["numpy", "matplotlib", "torch", "tensorflow-cpu", "ipykernel", "nbclient"]
INSTALL = re.compile(
    r'"dlfp\[colab\] @ git\+https://github\.com/[^@"]+@[0-9a-zA-Z._-]+"'
)


def chapters_to_run(folder) -> list:
    wanted = os.environ.get("DLFP_LAUNCH_CHAPTERS")
    notebooks = sorted(folder.rglob("*.ipynb"))
    if wanted:
        names = {w.strip() for w in wanted.split(",") if w.strip()}
        notebooks = [
            n for n in notebooks if str(n.relative_to(folder).with_suffix("")) in names
        ]
    return notebooks


@pytest.fixture(scope="module")
def colab_env():
    bin_ = fresh_venv(WORK / "env")
    run(
        [bin_ / "python", "-m", "pip", "install", "--quiet"]
        + ["-c", ROOT / "requirements.lock", *COLAB_HAS],
        cwd=WORK,
        env=pip_env(),
        what="installing what Colab has",
        timeout=1800,
    )
    probe = base_env() | {"PATH": f"{bin_}:{base_env()['PATH']}"}
    missing = run(
        [
            bin_ / "python",
            "-c",
            "import importlib.util as u; print(u.find_spec('dlfp'))",
        ],
        cwd=WORK,
        env=probe,
        what="looking for dlfp",
        timeout=60,
    )
    assert missing.strip() == "None", "dlfp must not be installed before the notebook"
    return bin_


@pytest.mark.chapters
def test_every_published_notebook_installs_dlfp_and_runs_as_on_colab(
    book_dir, colab_env
):
    import nbformat  # the book extra's: imported here, so make core collects this file

    from dlfp.data import data_dir

    published = book_dir / "_notebooks"
    assert published.is_dir(), f"the build published no notebooks in {published}"
    copy = repo_copy(WORK / "repo")
    notebooks = WORK / "notebooks"
    to_run = []
    for path in chapters_to_run(published):
        nb = nbformat.read(path, as_version=4)
        text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
        shown = raw_myst(text)  # Colab renders Markdown and maths, nothing of MyST
        assert not shown, f"{path.name} shows raw MyST on Colab: {shown[:10]}"
        install = nb.cells[1].source
        assert INSTALL.search(install), f"{path.name}: no install line in {install!r}"
        nb.cells[1].source = INSTALL.sub(f'"dlfp[colab] @ file://{copy}"', install)
        target = notebooks / path.relative_to(published)
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, target)
        to_run.append(target)
    assert to_run, "no notebook to run"

    with serve(data_dir()) as mirror:
        env = base_env() | {
            "PATH": f"{colab_env}:{base_env()['PATH']}",
            "HOME": str(WORK / "home"),
            "XDG_CACHE_HOME": str(WORK / "home" / ".cache"),
            "DLFP_MNIST_MIRRORS": f"{mirror}/",
            # the lock's versions of whatever the first cell installs (Colab has none)
            "PIP_CONSTRAINT": str(ROOT / "requirements.lock"),
            "DLFP_ARTIFACTS": os.environ.get("DLFP_LAUNCH_ARTIFACTS")
            or str(WORK / "artifacts"),
        }
        env.pop("DLFP_DATA_DIR", None)
        results = run_notebooks(
            colab_env / "python",
            to_run,
            cwd=WORK,
            env=env,
            report=WORK / "report.json",
            what="every chapter as a Colab notebook",
        )
    failed = {r["notebook"]: r["error"] for r in results if r["error"]}
    assert not failed, f"notebooks failed as on Colab: {failed}"
