"""A method assembled from parts of the baseline library: relabel x filter x loss x ensemble x hparams.

The search researcher explores this space; each point is a frozen Recipe that renders to a
self-contained method.py, so what it found runs through the same contract as anyone's code.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from autow2s.errors import AutoW2SError
from autow2s.testbed.methods.common import fit_predict, harden, representation
from autow2s.testbed.methods.registry import register

RELABELS = ("none", "knn", "bootstrap")
TARGETS = ("soft", "hard", "temperature")
LOSSES = ("xent", "logconf", "product")


@dataclass(frozen=True)
class Recipe:
    """One point of the search space. Defaults are vanilla."""

    targets: str = "soft"
    temperature: float = 1.0
    relabel: str = "none"
    knn_k: int = 32
    bootstrap_rounds: int = 1
    bootstrap_weight: float = 0.7
    confident_margin: float = 0.0  # keep items with |p - 0.5| >= margin (0 keeps all)
    loss: str = "xent"
    aux_coef: float = 0.5
    warmup_frac: float = 0.2
    product_beta: float = 1.0
    members: int = 1
    hparams: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, value, allowed in (("targets", self.targets, TARGETS), ("relabel", self.relabel, RELABELS),
                                     ("loss", self.loss, LOSSES)):
            if value not in allowed:
                raise AutoW2SError(f"recipe field {name}={value!r} is not one of {allowed}")
        if not 0 <= self.confident_margin < 0.5:
            raise AutoW2SError(f"recipe field confident_margin={self.confident_margin} must be in [0, 0.5)")
        if self.members < 1:
            raise AutoW2SError("recipe field members must be at least 1")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Recipe:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise AutoW2SError(f"unknown recipe fields {unknown}; known: {sorted(known)}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def slug(self) -> str:
        """A short file-name-safe label, e.g. 'logconf-knn-temperature-x3'."""
        parts = [self.loss]
        if self.relabel != "none":
            parts.append(self.relabel)
        if self.targets != "soft":
            parts.append(self.targets)
        if self.confident_margin > 0:
            parts.append("confident")
        if self.members > 1:
            parts.append(f"x{self.members}")
        return "-".join(parts)

    def describe(self) -> str:
        parts = [f"{self.loss} loss on {self.targets} targets"]
        if self.relabel != "none":
            parts.append(f"{self.relabel} relabelling")
        if self.confident_margin > 0:
            parts.append(f"confident items only (margin {self.confident_margin:g})")
        if self.members > 1:
            parts.append(f"{self.members}-member ensemble")
        if self.hparams:
            parts.append(", ".join(f"{k}={v}" for k, v in sorted(self.hparams.items())))
        return "; ".join(parts)


def _shape_targets(weak: np.ndarray, recipe: Recipe) -> np.ndarray:
    if recipe.targets == "hard":
        return harden(weak)
    if recipe.targets == "temperature":
        clipped = np.clip(weak, 1e-6, 1 - 1e-6)
        return 1 / (1 + np.exp(-(np.log(clipped) - np.log1p(-clipped)) / recipe.temperature))
    return weak


def _knn_relabel(ctx: Any, targets: np.ndarray, k: int) -> np.ndarray:
    from sklearn.neighbors import NearestNeighbors  # imported here: keeps CLI start-up fast

    inputs = representation(ctx, "train_unlabel")
    standardized = (inputs - inputs.mean(axis=0)) / (inputs.std(axis=0) + 1e-9)
    _, neighbours = NearestNeighbors(n_neighbors=min(k, len(targets))).fit(standardized).kneighbors(standardized)
    return targets[neighbours].mean(axis=1)


def _train_once(ctx: Any, targets: np.ndarray, recipe: Recipe, rows: np.ndarray | None,
                predict_on: tuple[str, ...]) -> list[np.ndarray]:
    loss_params: dict[str, float] = {}
    if recipe.loss == "logconf":
        loss_params = {"aux_coef": recipe.aux_coef, "warmup_frac": recipe.warmup_frac}
    elif recipe.loss == "product":
        loss_params = {"beta": recipe.product_beta, "warmup_frac": recipe.warmup_frac}
    return fit_predict(ctx, targets, rows=rows, loss=recipe.loss, loss_params=loss_params,
                       predict_on=predict_on, **recipe.hparams)


def run_recipe(ctx: Any, recipe: Recipe) -> np.ndarray:
    weak = ctx.weak_soft_labels("train_unlabel")
    targets = _shape_targets(weak, recipe)
    if recipe.relabel == "knn":
        targets = _knn_relabel(ctx, targets, recipe.knn_k)
    elif recipe.relabel == "bootstrap":
        for _ in range(recipe.bootstrap_rounds):
            (train_pred,) = _train_once(ctx, targets, recipe, None, ("train_unlabel",))
            targets = (1 - recipe.bootstrap_weight) * targets + recipe.bootstrap_weight * harden(train_pred)
    rows = None
    if recipe.confident_margin > 0:
        rows = np.flatnonzero(np.abs(targets - 0.5) >= recipe.confident_margin)
        if rows.size < 50:
            rows = np.argsort(-np.abs(targets - 0.5))[: max(50, targets.size // 4)]
    predictions = []
    for _ in range(recipe.members):
        member_rows = rows
        if recipe.members > 1:
            pool = rows if rows is not None else np.arange(targets.size)
            member_rows = ctx.rng.choice(pool, size=pool.size, replace=True)
        predictions.append(_train_once(ctx, targets, recipe, member_rows, ("test",))[0])
    ctx.log(recipe=recipe.describe())
    return np.mean(predictions, axis=0)


@register("composed", "a recipe of library parts (vanilla by default); the search researcher's space")
def run(ctx: Any, **recipe: Any) -> np.ndarray:
    return run_recipe(ctx, Recipe.from_dict(recipe))


def render_method(recipe: Recipe, title: str = "") -> str:
    """A self-contained method.py for a recipe: readable, and runnable under the method contract."""
    doc = title or recipe.describe()
    body = json.dumps(recipe.to_dict(), indent=4, sort_keys=True)
    return (
        f'"""{doc}"""\n\n'
        "from autow2s.testbed.methods.composed import Recipe, run_recipe\n\n"
        f"RECIPE = Recipe.from_dict({body})\n\n\n"
        "def run(ctx):\n"
        "    return run_recipe(ctx, RECIPE)\n"
    )
