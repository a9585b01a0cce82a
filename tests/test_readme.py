"""The README's example runs as printed (with one epoch instead of three, for speed)."""

from __future__ import annotations

import re

import pytest

from .conftest import ROOT


@pytest.mark.mnist
def test_readme_example_runs(capsys):
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    assert len(blocks) == 1, "the README should have exactly one Python example"
    code = blocks[0]
    assert len(code.strip().splitlines()) <= 12, "the example should stay short"
    assert "epochs=3" in code
    exec(compile(code.replace("epochs=3", "epochs=1"), "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "epoch   1/1" in out
    loss, accuracy = eval(out.strip().splitlines()[-1])
    assert accuracy > 0.9


def test_readme_accuracies_are_the_book_claims():
    """The README quotes the claims the chapters compute from the recorded seed runs."""
    from dlfp.claims import claim_for

    readme = (ROOT / "README.md").read_text()
    assert f"above {100 * claim_for('mlp'):.1f}% test accuracy" in readme
    cnn = min(claim_for("torch-cnn"), claim_for("keras-cnn"))
    assert f"each above {100 * cnn:.1f}%" in readme
    numpy_cnn = 100 * claim_for("numpy-cnn")
    assert f"above {numpy_cnn:.1f}% test accuracy; the same CNN" in readme
