"""Every recipe, trained in full as its chapter trains it, reaches the accuracy the book
claims for it (:mod:`dlfp.claims`: below the recorded seed runs by a measured margin).

One test per name in :data:`dlfp.recipes.RECIPES`, so a new recipe joins it. Minutes
each (``slow``); the book's build checks the same claims in the chapters' claim cells.
"""

from __future__ import annotations

import pytest

from dlfp.claims import claim
from dlfp.recipes import RECIPES, recipe


@pytest.mark.mnist
@pytest.mark.slow
@pytest.mark.parametrize("name", RECIPES)
def test_the_recipe_reaches_its_claim(name):
    pytest.importorskip(RECIPES[name].module, reason=f"{name}: framework missing")
    the_recipe = recipe(name)  # its default configuration, as the chapter trains it
    data = the_recipe.data()
    model, _ = the_recipe.train(data)
    _, accuracy = the_recipe.test(model, data.test)
    claim(name, achieved=accuracy)  # raises ClaimError below the claim
