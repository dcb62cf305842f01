"""Why auto does not try a recipe: what the recipes tried before it found already."""

from __future__ import annotations

from edgeport.quantize.strategy.attempts import Attempt
from edgeport.quantize.strategy.recipes import SMOOTHED_PREFIX, Recipe


def narrower_miss(recipe: Recipe, attempts: list[Attempt]) -> str | None:
    """Why ``recipe`` is not tried: the recipe that quantizes a subset of its layers (``Recipe.narrower``)
    was judged outside tolerance already; None when it was not (or it failed before being judged)."""
    narrower = next((a for a in attempts if recipe.narrower and a.recipe.name == recipe.narrower), None)
    if narrower is None or narrower.guard is None or narrower.guard.within_tolerance:
        return None
    return (
        f"{narrower.recipe.name} quantizes a subset of its layers with the same calibration and already missed "
        f"the tolerance ({narrower.guard.metric} {narrower.guard.value:.4g}): quantizing more is not tried"
    )


def twin_was_faithful(recipe: Recipe, attempts: list[Attempt]) -> bool:
    """A SmoothQuant-smoothed recipe whose plain twin is already within tolerance: smoothing changes the
    weights, not the kernels, so it cannot be faster, and trying it would only cost a quantization."""
    if not recipe.name.startswith(SMOOTHED_PREFIX):
        return False
    twin = recipe.name.removeprefix(SMOOTHED_PREFIX)
    return any(a.recipe.name == twin and a.guard is not None and a.guard.within_tolerance for a in attempts)


def races_a_faithful(recipe: Recipe, attempts: list[Attempt]) -> bool:
    """``recipe`` races a recipe already within tolerance on speed (``Recipe.races``): worth its try."""
    return recipe.races is not None and any(a.recipe.name == recipe.races and a.faithful for a in attempts)


__all__ = ["narrower_miss", "races_a_faithful", "twin_was_faithful"]
