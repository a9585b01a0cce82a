"""The store of kept runs (dlfp.artifacts), one test for every recipe: a run is trained,
tested and kept once, found again by the next chapter and never overwritten; its log
reads as the run's own."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from dlfp import artifacts, recipes
from dlfp.train import History, print_log

from .conftest import SMALL_CNN

#: Each recipe at its smallest: a few hundred images, one epoch.
SMALL = {
    "mlp": recipes.Recipe(
        "mlp",
        recipes.MLPConfig(
            hidden=(16,), epochs=1, validation_size=100, subset=600, max_shift=1
        ),
    ),
    **{
        name: recipes.Recipe(name, SMALL_CNN)
        for name in ("numpy-cnn", "torch-cnn", "keras-cnn")
    },
}
FRAMEWORK = {"torch-cnn": "torch", "keras-cnn": "tensorflow"}
#: Every recipe; training Keras's turns TensorFlow's op determinism on for the rest of
#: the process, so that one runs with the tests that do (conftest: last).
NAMES = [
    pytest.param(name, marks=pytest.mark.tf_determinism)
    if name == "keras-cnn"
    else name
    for name in recipes.RECIPES
]


def small(name: str) -> recipes.Recipe:
    if name in FRAMEWORK:
        pytest.importorskip(FRAMEWORK[name])
    return SMALL[name]


def arrays(recipe: recipes.Recipe, model) -> list[np.ndarray]:
    """Every array of ``model`` as NumPy, whatever its framework."""
    if recipe.name == "torch-cnn":
        return [t.detach().numpy() for t in model.state_dict().values()]
    if recipe.name == "keras-cnn":
        return [w.numpy() for w in model.weights]
    return [p.value for p in model.parameters()]


def stamps(folder):
    return {p: p.stat().st_mtime_ns for p in folder.iterdir()}


@pytest.mark.mnist
@pytest.mark.parametrize("name", NAMES)
def test_a_recipe_is_trained_tested_and_kept_once(name, tmp_path, monkeypatch):
    recipe = small(name)
    monkeypatch.setenv("DLFP_ARTIFACTS", str(tmp_path))
    assert artifacts.kept(recipe) is None
    run = artifacts.trained(recipe)
    assert isinstance(run.history, History) and run.history.epoch == [1]
    assert 0.0 <= run.test_accuracy <= 1.0 and run.train_seconds > 0
    files = sorted(p.name for p in tmp_path.iterdir())
    stem = f"{name}-{artifacts.key(recipe)}"
    assert files == sorted([f"{stem}{recipe.suffix}", f"{stem}.json"])
    record = artifacts.load_record(recipe)
    assert record["config"] == json.loads(json.dumps(dataclasses.asdict(recipe.config)))
    before = stamps(tmp_path)
    again = artifacts.trained(recipe)  # loaded, not trained again
    assert stamps(tmp_path) == before
    assert again.history == run.history and again.test_accuracy == run.test_accuracy
    for a, b in zip(
        arrays(recipe, run.model), arrays(recipe, again.model), strict=True
    ):
        np.testing.assert_array_equal(a, b)


@pytest.mark.mnist
@pytest.mark.parametrize("name", NAMES)
def test_a_chapter_finds_the_kept_run_and_never_overwrites_it(
    name, tmp_path, monkeypatch, capsys
):
    recipe = small(name)
    monkeypatch.setenv("DLFP_ARTIFACTS", str(tmp_path))
    data = recipe.data()
    model, history = recipe.train(data, verbose=True)
    log = capsys.readouterr().out
    assert log.startswith("epoch   1/1  loss ") and log.count("\n") == 1, log
    run = artifacts.Run(model, history, 3.0, extra={"note": [1, 2]})
    path = artifacts.keep(recipe, run)
    found = artifacts.kept(recipe)
    assert found.train_seconds == 3.0 and found.test_accuracy is None
    assert found.history == history and found.extra == {"note": [1, 2]}
    print_log(found.history)  # the kept run's log reads as the run's own
    assert capsys.readouterr().out == log
    # Keeping what kept() loaded (or another model of that name) changes nothing.
    before = stamps(tmp_path)
    other = recipe.replace(seed=1).train(data)[0]
    assert artifacts.keep(recipe, artifacts.Run(other, history, 1.0)) == path
    assert stamps(tmp_path) == before
    # trained() tests the kept run once, and its record gains the accuracy.
    accuracy = artifacts.trained(recipe).test_accuracy
    assert accuracy == recipe.test(found.model, data.test)[1]
    assert artifacts.load_record(recipe)["test_accuracy"] == accuracy


def test_a_history_reads_back_what_it_wrote_and_refuses_a_stranger():
    history = History()
    history.add_epoch(0.5, 0.9, 1e-3, 2.0)
    assert History.from_dict(history.as_dict()) == history
    with pytest.raises(ValueError, match="a history has no field 'acc'; use "):
        History.from_dict({"acc": [0.9]})
