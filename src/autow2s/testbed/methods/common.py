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


def head_on_matrix(ctx: Any, dim: int, **hparams: Any) -> Any:
    """A fresh head on a numeric matrix of `dim` columns (a view of the representation), configured like
    the strong student's own head: on text tasks the strong student is exactly such a head on its embedding."""
    from autow2s.testbed.models.head_config import HeadConfig
    from autow2s.testbed.models.heads import TorchHead  # torch only when a head is built

    config = getattr(ctx.strong_model(**hparams), "config", None)
    if not isinstance(config, HeadConfig):
        config = HeadConfig().with_overrides(**hparams)
    return TorchHead(dim, config, seed=int(ctx.rng.integers(2**31)))


def out_of_fold(fit: Any, matrix_or_inputs: Any, targets: np.ndarray, folds: int, rng: np.random.Generator,
                **fit_kwargs: Any) -> np.ndarray:
    """Each item's prediction from a student that did not train on it (folds >= 2), or in-sample (folds = 1).

    `fit(inputs, targets, **fit_kwargs)` returns a trained student. Out-of-fold predictions show where a
    student disagrees with a label instead of echoing the label it memorised.
    """
    n = targets.size
    if folds <= 1:
        return np.asarray(fit(matrix_or_inputs, targets, **fit_kwargs).predict_proba(matrix_or_inputs))
    fold_of = rng.permutation(n) % folds
    predictions = np.empty(n, dtype=np.float64)
    for fold in range(folds):
        held, kept = np.flatnonzero(fold_of == fold), np.flatnonzero(fold_of != fold)
        student = fit(subset(matrix_or_inputs, kept), targets[kept], **fit_kwargs)
        predictions[held] = student.predict_proba(subset(matrix_or_inputs, held))
    return predictions


def most_confident(predicted: np.ndarray, fraction: float) -> np.ndarray:
    """A mask of the `fraction` of items whose predictions lie farthest from 0.5.

    A share, not a probability threshold: students trained on soft weak labels predict close to 0.5,
    so a fixed threshold such as 0.8 would select nothing.
    """
    count = int(round(min(max(fraction, 0.0), 1.0) * predicted.size))
    mask = np.zeros(predicted.size, dtype=bool)
    if count > 0:
        mask[np.argsort(-np.abs(predicted - 0.5), kind="stable")[:count]] = True
    return mask
