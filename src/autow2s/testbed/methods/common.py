"""Small helpers the baselines share: train a student on targets and predict on test."""

from __future__ import annotations

from typing import Any

import numpy as np

from autow2s.testbed.models.base import subset


def fit_predict(
    ctx: Any,
    targets: np.ndarray,
    *,
    rows: np.ndarray | None = None,
    weights: np.ndarray | None = None,
    loss: str = "xent",
    loss_params: dict[str, float] | None = None,
    predict_on: tuple[str, ...] = ("test",),
    **hparams: Any,
) -> list[np.ndarray]:
    """Train a fresh strong student on train_unlabel (optionally a subset of rows) and predict."""
    inputs = ctx.inputs("train_unlabel")
    if rows is not None:
        inputs, targets = subset(inputs, rows), targets[rows]
        weights = None if weights is None else weights[rows]
    student = ctx.strong_model(**hparams)
    student.fit(inputs, targets, loss=loss, weights=weights, **(loss_params or {}))
    return [student.predict_proba(ctx.inputs(split)) for split in predict_on]


def harden(probs: np.ndarray) -> np.ndarray:
    return (np.asarray(probs) >= 0.5).astype(np.float64)


def representation(ctx: Any, split: str) -> np.ndarray:
    """A numeric matrix for a split: the feature vectors themselves, or the strong model's embedding."""
    inputs = ctx.inputs(split)
    if isinstance(inputs, np.ndarray):
        return inputs.astype(np.float64)
    return np.asarray(ctx.strong_model().features(inputs), dtype=np.float64)
