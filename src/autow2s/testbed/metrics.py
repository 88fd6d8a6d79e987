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


@dataclass(frozen=True)
class RunCorrectness:
    """One run's 0/1 correctness on a task's holdout items: the method's (n_seeds, n_items) and its own weak
    supervisor's (n_items; a verified run is measured against its fresh supervisor, a transfer run against
    the public one)."""

    method: np.ndarray
    weak: np.ndarray


@dataclass(frozen=True)
class PairedRuns:
    """Two runs on one task's holdout items and its ceiling; same_seeds when they ran the same seeds on the same
    supervisor (a method and vanilla inside one verified run), so the seeds are resampled together too."""

    a: RunCorrectness
    b: RunCorrectness
    ceiling: np.ndarray
    same_seeds: bool = False


@dataclass(frozen=True)
class PairedDifference:
    """PGR(a) - PGR(b) on the same items, with its bootstrap CI; `significant` when the CI excludes 0."""

    difference: float
    low: float
    high: float

    @property
    def significant(self) -> bool:
        return self.low > 0 or self.high < 0

    def verdict(self) -> str:
        return "better" if self.low > 0 else "worse" if self.high < 0 else "no difference"


def _seed_means(correct: np.ndarray, items: np.ndarray, rng: np.random.Generator,
                seeds: np.ndarray | None = None) -> np.ndarray:
    """Accuracy per bootstrap draw: the items' weights (n_boot, n_items) applied, the seeds resampled (or the given
    seed draws (n_boot, n_seeds), for runs paired by seed)."""
    per_seed = np.asarray(correct, dtype=np.float64) @ items.T  # (n_seeds, n_boot)
    if seeds is None:
        seeds = rng.integers(0, per_seed.shape[0], size=(items.shape[0], per_seed.shape[0]))
    return per_seed[seeds, np.arange(items.shape[0])[:, None]].mean(axis=1)


def _pgr_draws(run: RunCorrectness, ceiling: np.ndarray, items: np.ndarray, rng: np.random.Generator,
               seeds: np.ndarray | None = None) -> np.ndarray:
    """PGR per bootstrap draw, against the draw's ceiling accuracy (shared by every run of the comparison)."""
    transfer = _seed_means(run.method, items, rng, seeds)
    weak = np.asarray(run.weak, dtype=np.float64) @ items.T
    gap = ceiling - weak
    return np.where(gap > 0, (transfer - weak) / np.where(gap > 0, gap, 1.0), np.nan)


def paired_pgr_difference(a: RunCorrectness, b: RunCorrectness, ceiling: np.ndarray, *, n_boot: int = 2000,
                          seed: int = 0, level: float = 0.95, same_seeds: bool = False) -> PairedDifference | None:
    """PGR(a) - PGR(b) with a CI that resamples the holdout items once for both runs (the pairing: an item hard
    for one is hard for the other), and the seeds once for both when they ran on the same seeds and supervisor
    (same_seeds), else each run's on their own. None when the gap is not positive."""
    return paired_pgr_difference_over_tasks([PairedRuns(a, b, ceiling, same_seeds)], n_boot=n_boot, seed=seed,
                                            level=level)


def paired_pgr_difference_over_tasks(pairs: list[PairedRuns], *, n_boot: int = 2000, seed: int = 0,
                                     level: float = 0.95) -> PairedDifference | None:
    """The mean over tasks of PGR(a) - PGR(b) (a research PGR's difference), each task bootstrapped on its own
    items, the same draw index averaged across tasks."""
    rng = np.random.default_rng(seed)
    draws, points = [], []
    for pair in pairs:
        a, b, ceiling = pair.a, pair.b, pair.ceiling
        n_items = np.asarray(a.method).shape[1]
        if np.asarray(b.method).shape[1] != n_items:
            raise ValueError(f"paired runs must score the same items: {n_items} against {np.asarray(b.method).shape[1]}")
        items = np.stack([np.bincount(rng.integers(0, n_items, size=n_items), minlength=n_items)
                          for _ in range(n_boot)]).astype(np.float64) / n_items
        ceiling_draws = _seed_means(ceiling, items, rng)
        shared = None
        if pair.same_seeds:
            if np.asarray(a.method).shape != np.asarray(b.method).shape:
                raise ValueError("runs paired by seed must have run the same seeds")
            n_seeds = np.asarray(a.method).shape[0]
            shared = rng.integers(0, n_seeds, size=(n_boot, n_seeds))
        draws.append(_pgr_draws(a, ceiling_draws, items, rng, shared) - _pgr_draws(b, ceiling_draws, items, rng, shared))
        ceiling_acc = float(np.mean(ceiling))
        first = pgr(float(np.mean(a.weak)), ceiling_acc, float(np.mean(a.method)))
        second = pgr(float(np.mean(b.weak)), ceiling_acc, float(np.mean(b.method)))
        points.append(float("nan") if first is None or second is None else first - second)
    values = np.mean(np.stack(draws), axis=0)
    values = values[np.isfinite(values)]
    if len(values) < n_boot // 2 or not np.all(np.isfinite(points)):
        return None
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return PairedDifference(float(np.mean(points)), float(low), float(high))
