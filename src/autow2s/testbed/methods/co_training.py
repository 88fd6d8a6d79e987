"""Co-training (Blum & Mitchell 1998): two students on two views teach each other their confident items.

Each view's student sees only its own columns, so its mistakes differ from the other's; an item one
view is among the most sure of (round r: the r * fraction most confident) is relabelled for the other
view, and the weak label stays elsewhere. A final
strong student trains on the two views' labels averaged. Views: "split" cuts the strong
representation's columns at random into two halves (any task kind); "strong-weak" pairs the strong
representation with the weak model's feature vectors (features tasks only: text tasks give the
weak model's view as rows, not numbers).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from autow2s.errors import AutoW2SError
from autow2s.testbed.methods.common import (
    fit_predict,
    harden,
    head_on_matrix,
    most_confident,
    out_of_fold,
    representation,
)
from autow2s.testbed.methods.registry import register

VIEWS = ("split", "strong-weak")


def _views(ctx: Any, views: str) -> tuple[np.ndarray, np.ndarray]:
    if views not in VIEWS:
        raise AutoW2SError(f"co-training views {views!r} is not one of {VIEWS}")
    if views == "strong-weak":
        weak = ctx.weak_inputs("train_unlabel")
        if not isinstance(weak, np.ndarray):
            raise AutoW2SError("co-training with views='strong-weak' needs weak feature vectors (a features task); "
                               "on text tasks use views='split'")
        return representation(ctx, "train_unlabel"), weak.astype(np.float64)
    strong = representation(ctx, "train_unlabel")
    if strong.shape[1] < 2:
        raise AutoW2SError("co-training with views='split' needs a representation with at least two columns")
    order = ctx.rng.permutation(strong.shape[1])
    half = strong.shape[1] // 2
    return strong[:, order[:half]], strong[:, order[half:]]


def co_train_labels(ctx: Any, soft: np.ndarray, *, rounds: int = 2, fraction: float = 0.2, folds: int = 2,
                    views: str = "split", **hparams: Any) -> np.ndarray:
    """Targets for the final student: the mean of the two views' labels after `rounds` of teaching."""
    if not 0 < fraction <= 1:
        raise AutoW2SError(f"fraction={fraction} must be in (0, 1]: the share of items each view teaches per round")
    first, second = _views(ctx, views)

    def fit(matrix: np.ndarray, targets: np.ndarray) -> Any:
        head = head_on_matrix(ctx, matrix.shape[1], **hparams)
        head.fit(matrix, targets)
        return head

    labels = [soft, soft]
    for round_index in range(max(1, rounds)):
        predicted = [out_of_fold(fit, view, target, folds, ctx.rng) for view, target in zip((first, second), labels)]
        confident = [most_confident(p, fraction * (round_index + 1)) for p in predicted]
        # each view teaches the other its confident items
        labels = [np.where(confident[1], harden(predicted[1]), soft),
                  np.where(confident[0], harden(predicted[0]), soft)]
        ctx.log(round=round_index, taught_fractions=[float(c.mean()) for c in confident],
                views_agree=float(np.mean(harden(predicted[0]) == harden(predicted[1]))))
    return (labels[0] + labels[1]) / 2


@register("co-training", "two students on two views of the strong representation teach each other confident items",
          rounds=2, fraction=0.2, views="split")
def run(ctx: Any, rounds: int = 2, fraction: float = 0.2, views: str = "split", folds: int = 2) -> np.ndarray:
    targets = co_train_labels(ctx, ctx.weak_soft_labels("train_unlabel"), rounds=rounds, fraction=fraction,
                              folds=folds, views=views)
    return fit_predict(ctx, targets)[0]
