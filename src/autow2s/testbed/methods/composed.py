"""A method assembled from parts of the baseline library: relabel x filter x loss x ensemble x hparams.

The search researcher explores this space; each point is a frozen Recipe that renders to a
self-contained method.py, so what it found runs through the same contract as anyone's code.
Relabelling covers the classic semi-supervised families: kNN averaging, bootstrapping, label
spreading on a kNN graph of the strong representation, self-training and co-training; the
student's regularisation (weight decay, early stopping) are knobs of their own.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import numpy as np

from autow2s.errors import AutoW2SError
from autow2s.testbed.methods.co_training import co_train_labels
from autow2s.testbed.methods.common import fit_predict, harden, representation
from autow2s.testbed.methods.ensemble import RESAMPLING
from autow2s.testbed.methods.label_spreading import METRICS, NORMALIZATIONS, spread_labels
from autow2s.testbed.methods.registry import register
from autow2s.testbed.methods.self_training import self_train_labels

RELABELS = ("none", "knn", "bootstrap", "spread", "self-train", "co-train")
TARGETS = ("soft", "hard", "temperature")
LOSSES = ("xent", "logconf", "product")
COTRAIN_VIEWS = ("split", "strong-weak")
# Which fields matter only under a setting of another: the rest are reset to defaults by canonical().
ONLY_WHEN: dict[str, tuple[str, tuple[Any, ...]]] = {
    "temperature": ("targets", ("temperature",)),
    "knn_k": ("relabel", ("knn",)),
    "bootstrap_rounds": ("relabel", ("bootstrap",)),
    "bootstrap_weight": ("relabel", ("bootstrap",)),
    "spread_k": ("relabel", ("spread",)),
    "spread_alpha": ("relabel", ("spread",)),
    "spread_metric": ("relabel", ("spread",)),
    "spread_normalization": ("relabel", ("spread",)),
    "relabel_rounds": ("relabel", ("self-train", "co-train")),
    "relabel_fraction": ("relabel", ("self-train", "co-train")),
    "cotrain_views": ("relabel", ("co-train",)),
    "aux_coef": ("loss", ("logconf",)),
    "warmup_frac": ("loss", ("logconf", "product")),
    "product_beta": ("loss", ("product",)),
}


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
    # label spreading (relabel="spread"): kNN graph of the strong representation
    spread_k: int = 16
    spread_alpha: float = 0.99
    spread_metric: str = "cosine"
    spread_normalization: str = "symmetric"  # "random-walk" is label propagation
    # self-training and co-training: round r relabels the r * fraction most confident items
    relabel_rounds: int = 2
    relabel_fraction: float = 0.2
    cotrain_views: str = "split"  # "strong-weak" needs weak feature vectors (features tasks only)
    member_resample: str = "bootstrap"  # ensemble members on bootstrap resamples, or all items ("none")
    # the student's regularisation; None keeps the backend's default (an explicit value beats hparams')
    weight_decay: float | None = None
    patience: int | None = None  # early-stopping patience in epochs
    early_stopping: bool = True  # False: no validation slice, every epoch runs, the last weights are kept

    def __post_init__(self) -> None:
        for name, value, allowed in (("targets", self.targets, TARGETS), ("relabel", self.relabel, RELABELS),
                                     ("loss", self.loss, LOSSES), ("spread_metric", self.spread_metric, METRICS),
                                     ("spread_normalization", self.spread_normalization, NORMALIZATIONS),
                                     ("cotrain_views", self.cotrain_views, COTRAIN_VIEWS),
                                     ("member_resample", self.member_resample, RESAMPLING)):
            if value not in allowed:
                raise AutoW2SError(f"recipe field {name}={value!r} is not one of {allowed}")
        if not 0 <= self.confident_margin < 0.5:
            raise AutoW2SError(f"recipe field confident_margin={self.confident_margin} must be in [0, 0.5)")
        if self.members < 1:
            raise AutoW2SError("recipe field members must be at least 1")
        if not 0 <= self.spread_alpha < 1:
            raise AutoW2SError(f"recipe field spread_alpha={self.spread_alpha} must be in [0, 1)")
        if self.spread_k < 1 or self.relabel_rounds < 1:
            raise AutoW2SError("recipe fields spread_k and relabel_rounds must be at least 1")
        if not 0 < self.relabel_fraction <= 1:
            raise AutoW2SError(f"recipe field relabel_fraction={self.relabel_fraction} must be in (0, 1]")
        if self.weight_decay is not None and self.weight_decay < 0:
            raise AutoW2SError(f"recipe field weight_decay={self.weight_decay} must be >= 0 (or null for the default)")
        if self.patience is not None and self.patience < 1:
            raise AutoW2SError(f"recipe field patience={self.patience} must be >= 1 (or null for the default)")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Recipe:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise AutoW2SError(f"unknown recipe fields {unknown}; known: {sorted(known)}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def canonical(self) -> Recipe:
        """The same method with every field that cannot matter (e.g. spread_k without spreading) at its default,
        so two recipes that run identically compare equal."""
        defaults = Recipe()
        unused = {name: getattr(defaults, name) for name, (switch, values) in ONLY_WHEN.items()
                  if getattr(self, switch) not in values}
        if not self.early_stopping:
            unused["patience"] = None
        if self.members == 1:
            unused["member_resample"] = defaults.member_resample
        return replace(self, **unused)

    def student_hparams(self) -> dict[str, Any]:
        """What every student of this recipe is built with: hparams, then the regularisation fields."""
        hparams = dict(self.hparams)
        if self.weight_decay is not None:
            hparams["weight_decay"] = self.weight_decay
        if self.patience is not None:
            hparams["patience"] = self.patience
        if not self.early_stopping:
            hparams["val_frac"] = 0.0
        return hparams

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
        if self.weight_decay is not None or self.patience is not None or not self.early_stopping:
            parts.append("reg")
        return "-".join(parts)

    def describe(self) -> str:
        parts = [f"{self.loss} loss on {self.targets} targets"]
        if self.relabel == "spread":
            parts.append(f"label {'spreading' if self.spread_normalization == 'symmetric' else 'propagation'} "
                         f"(k={self.spread_k} {self.spread_metric}, alpha={self.spread_alpha:g})")
        elif self.relabel in ("self-train", "co-train"):
            views = f", {self.cotrain_views} views" if self.relabel == "co-train" else ""
            parts.append(f"{self.relabel} relabelling ({self.relabel_rounds} rounds of {self.relabel_fraction:g}{views})")
        elif self.relabel != "none":
            parts.append(f"{self.relabel} relabelling")
        if self.confident_margin > 0:
            parts.append(f"confident items only (margin {self.confident_margin:g})")
        if self.members > 1:
            parts.append(f"{self.members}-member ensemble{' (no resampling)' if self.member_resample == 'none' else ''}")
        regularisation = [f"weight_decay={self.weight_decay:g}"] if self.weight_decay is not None else []
        if not self.early_stopping:
            regularisation.append("no early stopping")
        elif self.patience is not None:
            regularisation.append(f"early-stopping patience {self.patience}")
        if regularisation:
            parts.append(", ".join(regularisation))
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
    loss_params = _loss_params(recipe)
    return fit_predict(ctx, targets, rows=rows, loss=recipe.loss, loss_params=loss_params,
                       predict_on=predict_on, **recipe.student_hparams())


def _loss_params(recipe: Recipe) -> dict[str, float]:
    if recipe.loss == "logconf":
        return {"aux_coef": recipe.aux_coef, "warmup_frac": recipe.warmup_frac}
    if recipe.loss == "product":
        return {"beta": recipe.product_beta, "warmup_frac": recipe.warmup_frac}
    return {}


def run_recipe(ctx: Any, recipe: Recipe) -> np.ndarray:
    weak = ctx.weak_soft_labels("train_unlabel")
    targets = _shape_targets(weak, recipe)
    if recipe.relabel == "knn":
        targets = _knn_relabel(ctx, targets, recipe.knn_k)
    elif recipe.relabel == "bootstrap":
        for _ in range(recipe.bootstrap_rounds):
            (train_pred,) = _train_once(ctx, targets, recipe, None, ("train_unlabel",))
            targets = (1 - recipe.bootstrap_weight) * targets + recipe.bootstrap_weight * harden(train_pred)
    elif recipe.relabel == "spread":
        targets = spread_labels(ctx, targets, k=recipe.spread_k, alpha=recipe.spread_alpha,
                                metric=recipe.spread_metric, normalization=recipe.spread_normalization)
    elif recipe.relabel == "self-train":
        targets = self_train_labels(ctx, targets, rounds=recipe.relabel_rounds, fraction=recipe.relabel_fraction,
                                    loss=recipe.loss, loss_params=_loss_params(recipe), **recipe.student_hparams())
    elif recipe.relabel == "co-train":
        targets = co_train_labels(ctx, targets, rounds=recipe.relabel_rounds, fraction=recipe.relabel_fraction,
                                  views=recipe.cotrain_views, **recipe.student_hparams())
    rows = None
    if recipe.confident_margin > 0:
        rows = np.flatnonzero(np.abs(targets - 0.5) >= recipe.confident_margin)
        if rows.size < 50:
            rows = np.argsort(-np.abs(targets - 0.5))[: max(50, targets.size // 4)]
    predictions = []
    for _ in range(recipe.members):
        member_rows = rows
        if recipe.members > 1 and recipe.member_resample == "bootstrap":
            pool = rows if rows is not None else np.arange(targets.size)
            member_rows = ctx.rng.choice(pool, size=pool.size, replace=True)
        predictions.append(_train_once(ctx, targets, recipe, member_rows, ("test",))[0])
    ctx.log(recipe=recipe.describe())
    return np.mean(predictions, axis=0)


@register("composed", "a recipe of library parts (vanilla by default); the search researcher's space")
def run(ctx: Any, **recipe: Any) -> np.ndarray:
    return run_recipe(ctx, Recipe.from_dict(recipe))


def render_method(recipe: Recipe, title: str = "") -> str:
    """A self-contained method.py for a recipe: readable, and runnable under the method contract.

    The recipe is a Python dict literal (JSON's true/null would not run), one field a line, so a reader
    sees every setting and `search_researcher.recipe_from_method` reads it back without running it.
    """
    doc = (title or recipe.describe()).replace('"""', "'''")
    body = "".join(f"    {name!r}: {value!r},\n" for name, value in sorted(recipe.to_dict().items()))
    return (
        f'"""{doc}"""\n\n'
        "from autow2s.testbed.methods.composed import Recipe, run_recipe\n\n"
        f"RECIPE = Recipe.from_dict({{\n{body}}})\n\n\n"
        "def run(ctx):\n"
        "    return run_recipe(ctx, RECIPE)\n"
    )
