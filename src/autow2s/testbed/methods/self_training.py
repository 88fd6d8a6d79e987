"""Self-training: the student relabels the items it is most sure of, round after round, then a fresh one trains.

A strong student trained on weak labels already disagrees with many of them, and where it is
confident it is usually right. Round r replaces the weak labels of the r * fraction most confident
items by the student's hardened predictions and keeps the weak label elsewhere (the threshold is a
share of items: a student of soft weak labels predicts near 0.5, so a fixed probability would pick
nothing). With folds >= 2 each item's prediction
comes from a student that did not train on it, so it cannot simply echo the label it was given.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from autow2s.errors import AutoW2SError
from autow2s.testbed.methods.common import fit_predict, harden, most_confident, out_of_fold
from autow2s.testbed.methods.registry import register


def self_train_labels(ctx: Any, soft: np.ndarray, *, rounds: int = 3, fraction: float = 0.2, folds: int = 2,
                      loss: str = "xent", loss_params: dict[str, float] | None = None,
                      **hparams: Any) -> np.ndarray:
    """Targets after `rounds` of relabelling: the student's hard label on its round * fraction most confident items."""
    if not 0 < fraction <= 1:
        raise AutoW2SError(f"fraction={fraction} must be in (0, 1]: the share of items relabelled per round")
    if rounds < 1:
        raise AutoW2SError(f"rounds={rounds} must be at least 1")

    def fit(inputs: Any, targets: np.ndarray) -> Any:
        student = ctx.strong_model(**hparams)
        student.fit(inputs, targets, loss=loss, **(loss_params or {}))
        return student

    inputs = ctx.inputs("train_unlabel")
    targets = soft
    for round_index in range(rounds):
        predicted = out_of_fold(fit, inputs, targets, folds, ctx.rng)
        confident = most_confident(predicted, fraction * (round_index + 1))
        targets = np.where(confident, harden(predicted), soft)
        ctx.log(round=round_index, relabelled_fraction=float(confident.mean()),
                flipped_fraction=float(np.mean(harden(targets) != harden(soft))))
    return targets


@register("self-training", "rounds in which the student's most confident predictions replace the weak labels",
          rounds=3, fraction=0.2, folds=2)
def run(ctx: Any, rounds: int = 3, fraction: float = 0.2, folds: int = 2) -> np.ndarray:
    targets = self_train_labels(ctx, ctx.weak_soft_labels("train_unlabel"), rounds=rounds, fraction=fraction,
                                folds=folds)
    return fit_predict(ctx, targets)[0]
