"""dlfp as ``pip install`` gives it: a wheel in a fresh environment, used from a folder
outside the checkout.

An editable checkout finds files beside its source tree that an installed package does
not have; Binder and Thebe install the project (not editable), and so does a reader who
runs ``pip install``. The wheel is built from a copy of the repository as a clone has
it, installed with its dependencies at the versions of ``requirements.lock``, and then:
every recipe's claim, ``dlfp train mlp`` on a subset, ``dlfp evaluate`` on the model it
saved, and a gradient check, each run in a folder that holds nothing of the checkout.
"""

from __future__ import annotations

import json
import sys

import pytest

from ..conftest import ROOT
from ..envs import base_env, fresh_venv, pip_env, repo_copy, run

pytestmark = [pytest.mark.launch, pytest.mark.mnist]
WORK = ROOT / "_build" / "wheel"


@pytest.fixture(scope="module")
def installed() -> dict:
    """Build the wheel, install it into a fresh environment: {bin, wheel}."""
    copy = repo_copy(WORK / "repo")
    dist = WORK / "dist"
    run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", dist, copy],
        cwd=WORK,
        env=pip_env(),
        what="building the wheel",
        timeout=600,
    )
    (wheel,) = dist.glob("dlfp-*.whl")
    bin_ = fresh_venv(WORK / "env")
    run(
        [bin_ / "python", "-m", "pip", "install", "--quiet"]
        + ["-c", ROOT / "requirements.lock", wheel],
        cwd=WORK,
        env=pip_env(),
        what=f"pip install {wheel.name}",
        timeout=900,
    )
    return {"bin": bin_, "wheel": wheel}


@pytest.fixture
def outside(tmp_path, installed):
    """A folder outside the checkout, and the installed environment's variables."""
    env = base_env() | {"PATH": f"{installed['bin']}:{base_env()['PATH']}"}
    env["DLFP_ARTIFACTS"] = str(tmp_path / "artifacts")
    return tmp_path, env


def _python(installed, outside, code: str, what: str) -> str:
    folder, env = outside
    return run(
        [installed["bin"] / "python", "-c", code],
        cwd=folder,
        env=env,
        what=what,
        timeout=300,
    )


def test_the_package_comes_from_the_wheel(installed, outside):
    where = _python(installed, outside, "import dlfp; print(dlfp.__file__)", "import")
    assert str(WORK / "env") in where, f"dlfp was imported from {where}"
    assert str(ROOT / "src") not in where


def test_every_recipe_claims_from_the_installed_seed_runs(installed, outside):
    from dlfp.claims import claim_for, results_path

    runs = json.loads(results_path().read_text())["runs"]
    recipes = sorted({r["recipe"] for r in runs})
    assert {"mlp", "numpy-cnn", "torch-cnn", "keras-cnn"} <= set(recipes)
    out = _python(
        installed,
        outside,
        "import json; from dlfp.claims import claim_for, results_path; "
        f"print(json.dumps({{r: claim_for(r) for r in {recipes!r}}})); "
        "print(results_path())",
        "claim_for in the installed package",
    )
    claims, path = out.splitlines()
    assert str(WORK / "env") in path, f"the seed runs were read from {path}"
    assert json.loads(claims) == {r: claim_for(r) for r in recipes}


def test_train_evaluate_and_a_gradient_check_from_the_installed_package(
    installed, outside
):
    from dlfp.data import data_dir

    folder, env = outside
    dlfp = installed["bin"] / "dlfp"
    data = ["--data-dir", data_dir()]
    out = run(
        [dlfp, *data, "train", "mlp", "--subset", "3000", "--epochs", "2"]
        + ["--hidden", "64", "--output", "m.npz", "--no-progress"],
        cwd=folder,
        env=env,
        what="dlfp train mlp",
        timeout=600,
    )
    assert (folder / "m.npz").is_file(), out
    trained = float(out.split("test accuracy: ")[1].split("%")[0])
    out = run(
        [dlfp, *data, "evaluate", "m.npz"],
        cwd=folder,
        env=env,
        what="dlfp evaluate",
        timeout=300,
    )
    accuracy = float(out.split("test accuracy ")[1].split("%")[0])
    # The saved model, loaded again, scores what training reported, far above chance.
    assert accuracy == trained and accuracy > 50, out
    assert "confusion matrix" in out

    errors = _python(
        installed,
        outside,
        "import numpy as np; from dlfp.gradcheck import check_model; "
        "from dlfp.losses import softmax_cross_entropy; from dlfp.model import mlp; "
        "rng = np.random.default_rng(0); "
        "m = mlp([6, 5, 3], 'tanh', rng=rng, dtype=np.float64); "
        "X = rng.normal(size=(4, 6)); y = rng.integers(0, 3, 4); "
        "print(max(check_model(m, X, y, softmax_cross_entropy).values()))",
        "a gradient check in the installed package",
    )
    assert float(errors) < 1e-7, errors
