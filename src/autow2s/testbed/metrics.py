"""Accuracy, AUROC, and PGR with a bootstrap CI over seeds and test items."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean((np.asarray(probs) >= 0.5).astype(np.int64) == np.asarray(labels)))


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve via the rank-sum statistic (ties get average ranks)."""
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels).astype(bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    sorted_scores = scores[order]
    # average ranks over runs of equal scores
    boundaries = np.flatnonzero(np.diff(sorted_scores)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [len(scores)]])
    for start, end in zip(starts, ends):
        ranks[order[start:end]] = (start + end + 1) / 2.0
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def pgr(weak_acc: float, ceiling_acc: float, transfer_acc: float) -> float | None:
    """Performance gap recovered; None when the ceiling is not above the weak model."""
    gap = ceiling_acc - weak_acc
    if gap <= 0:
        return None
    return (transfer_acc - weak_acc) / gap


def gap_message(weak_acc: float, ceiling_acc: float) -> str:
    return (
        f"no PGR: the ceiling ({ceiling_acc:.3f}) is not above the weak model ({weak_acc:.3f}), "
        "so there is no gap to recover on this task"
    )


@dataclass(frozen=True)
class PGRInterval:
    low: float
    high: float


def bootstrap_pgr_ci(
    weak_correct: np.ndarray,
    ceiling_correct: np.ndarray,
    transfer_correct: np.ndarray,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> PGRInterval | None:
    """Resample seeds and test items together; each array is (n_seeds, n_items) of 0/1.

    Weak and ceiling are resampled with the transfer so the CI reflects the uncertainty of all
    three accuracies. Resamples without a positive gap are dropped.
    """
    arrays = [np.asarray(a, dtype=np.float64) for a in (weak_correct, ceiling_correct, transfer_correct)]
    n_seeds, n_items = arrays[0].shape
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_boot):
        seeds = rng.integers(0, n_seeds, size=n_seeds)
        item_counts = np.bincount(rng.integers(0, n_items, size=n_items), minlength=n_items) / n_items
        weak, ceiling, transfer = ((a @ item_counts)[seeds].mean() for a in arrays)
        value = pgr(weak, ceiling, transfer)
        if value is not None:
            values.append(value)
    if len(values) < n_boot // 2:
        return None
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return PGRInterval(float(low), float(high))
