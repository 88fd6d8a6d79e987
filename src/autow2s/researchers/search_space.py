"""The offline researcher's search space over recipes, with sampling and mutation.

It covers the classic semi-supervised families (kNN averaging, bootstrapping, label spreading /
propagation on a kNN graph of the strong representation, self-training, co-training), ensembles,
the auxiliary confidence loss and the product loss with their knobs, and the student's
regularisation (weight decay, early stopping). Co-training's "strong-weak" views are left out: text
tasks have no weak feature vectors, so such a recipe would fail on every text research task.
Sampled and mutated recipes are canonical (fields that cannot matter at their defaults), so a
"new" recipe is never a copy of a tried one under another spelling.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from autow2s.testbed.methods.composed import Recipe

SPACE: dict[str, list[Any]] = {
    "targets": ["soft", "hard", "temperature"],
    "temperature": [0.5, 0.7, 1.5, 2.0],
    "relabel": ["none", "knn", "bootstrap", "spread", "self-train", "co-train"],
    "knn_k": [8, 16, 32, 64, 128],
    "bootstrap_rounds": [1, 2, 3],
    "bootstrap_weight": [0.3, 0.5, 0.7, 0.9],
    "spread_k": [8, 16, 32, 64],
    "spread_alpha": [0.9, 0.99, 0.999],
    "spread_metric": ["cosine", "euclidean"],
    "spread_normalization": ["symmetric", "random-walk"],
    "relabel_rounds": [1, 2, 3],
    "relabel_fraction": [0.1, 0.2, 0.3, 0.5],
    "confident_margin": [0.0, 0.0, 0.05, 0.1, 0.2],
    "loss": ["xent", "logconf", "product"],
    "aux_coef": [0.25, 0.5, 0.75, 0.9],
    "warmup_frac": [0.1, 0.2, 0.4],
    "product_beta": [0.5, 1.0, 2.0],
    "members": [1, 1, 3],
    "member_resample": ["bootstrap", "none"],
    "weight_decay": [None, None, 1e-4, 1e-3, 1e-2, 1e-1],
    "early_stopping": [True, True, False],
    "patience": [None, 2, 10],
    "hparams": [{}, {"epochs": 15}, {"lr": 1e-3}, {"hidden": 32}, {"hidden": 128}, {"arch": "linear"}],
}


def _choose(rng: np.random.Generator, field: str, bias: dict[str, list[Any]], bias_weight: float) -> Any:
    options = bias.get(field) if field in bias and rng.random() < bias_weight else None
    options = options or SPACE[field]
    return options[int(rng.integers(len(options)))]


def sample(rng: np.random.Generator, bias: dict[str, list[Any]] | None = None, bias_weight: float = 0.7) -> Recipe:
    """A fresh recipe; fields named in `bias` are drawn from its values with probability bias_weight."""
    bias = bias or {}
    return Recipe.from_dict({field: _choose(rng, field, bias, bias_weight) for field in SPACE}).canonical()


def mutate(recipe: Recipe, rng: np.random.Generator, bias: dict[str, list[Any]] | None = None,
           n_changes: int | None = None) -> Recipe:
    """Change one or two fields that matter for this recipe (the result always runs differently)."""
    bias = bias or {}
    recipe = recipe.canonical()
    count = n_changes or int(rng.integers(1, 3))
    mutated = recipe
    for _ in range(count):
        mutated = _change_one(mutated, rng, bias)
    return mutated if mutated != recipe else _change_one(recipe, rng, bias)


def _change_one(recipe: Recipe, rng: np.random.Generator, bias: dict[str, list[Any]]) -> Recipe:
    """One field that matters, set to another value (a biased draw first, then any other value)."""
    for field in map(str, rng.permutation(list(SPACE))):
        current = getattr(recipe, field)
        biased = [_choose(rng, field, bias, 0.5) for _ in range(10)]
        anything = [SPACE[field][i] for i in rng.permutation(len(SPACE[field]))]
        for value in biased + anything:
            if value != current:
                changed = replace(recipe, **{field: value}).canonical()
                if changed != recipe:
                    return changed
    return recipe  # nothing can change: a space of one point
