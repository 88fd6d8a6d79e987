"""The offline researcher's search space over recipes, with sampling and mutation."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from autow2s.testbed.methods.composed import Recipe

SPACE: dict[str, list[Any]] = {
    "targets": ["soft", "hard", "temperature"],
    "temperature": [0.5, 0.7, 1.5, 2.0],
    "relabel": ["none", "knn", "bootstrap"],
    "knn_k": [8, 16, 32, 64, 128],
    "bootstrap_rounds": [1, 2, 3],
    "bootstrap_weight": [0.3, 0.5, 0.7, 0.9],
    "confident_margin": [0.0, 0.0, 0.05, 0.1, 0.2],
    "loss": ["xent", "logconf", "product"],
    "aux_coef": [0.25, 0.5, 0.75, 0.9],
    "warmup_frac": [0.1, 0.2, 0.4],
    "product_beta": [0.5, 1.0, 2.0],
    "members": [1, 1, 3],
    "hparams": [{}, {"weight_decay": 1e-2}, {"weight_decay": 1e-3}, {"epochs": 15}, {"lr": 1e-3},
                {"hidden": 32}, {"hidden": 128}, {"arch": "linear"}],
}


def _choose(rng: np.random.Generator, field: str, bias: dict[str, list[Any]], bias_weight: float) -> Any:
    options = bias.get(field) if field in bias and rng.random() < bias_weight else None
    options = options or SPACE[field]
    return options[int(rng.integers(len(options)))]


def sample(rng: np.random.Generator, bias: dict[str, list[Any]] | None = None, bias_weight: float = 0.7) -> Recipe:
    """A fresh recipe; fields named in `bias` are drawn from its values with probability bias_weight."""
    bias = bias or {}
    return Recipe.from_dict({field: _choose(rng, field, bias, bias_weight) for field in SPACE})


def mutate(recipe: Recipe, rng: np.random.Generator, bias: dict[str, list[Any]] | None = None,
           n_changes: int | None = None) -> Recipe:
    """Change one or two fields of a recipe (always at least one that actually differs)."""
    bias = bias or {}
    fields = list(SPACE)
    count = n_changes or int(rng.integers(1, 3))
    changes: dict[str, Any] = {}
    for field in rng.choice(fields, size=count, replace=False):
        current = getattr(recipe, str(field))
        for _ in range(10):
            value = _choose(rng, str(field), bias, 0.5)
            if value != current:
                changes[str(field)] = value
                break
        else:  # the bias (or a repeated option) kept drawing the current value: take any other one
            others = [value for value in SPACE[str(field)] if value != current]
            changes[str(field)] = others[int(rng.integers(len(others)))]
    return replace(recipe, **changes)
