"""PGR arithmetic, AUROC and the bootstrap CI."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from autow2s.testbed.metrics import accuracy, auroc, bootstrap_pgr_ci, gap_message, pgr


def test_pgr_on_a_hand_computed_case() -> None:
    # weak 0.60, ceiling 0.80, transfer 0.70: half the gap recovered.
    assert pgr(0.60, 0.80, 0.70) == pytest.approx(0.5)
    assert pgr(0.60, 0.80, 0.80) == pytest.approx(1.0)
    assert pgr(0.60, 0.80, 0.55) == pytest.approx(-0.25)


def test_no_pgr_when_the_ceiling_is_not_above_weak() -> None:
    assert pgr(0.70, 0.70, 0.75) is None
    assert pgr(0.70, 0.65, 0.75) is None
    assert "not above the weak model" in gap_message(0.70, 0.65)


def test_accuracy_thresholds_at_one_half() -> None:
    assert accuracy(np.array([0.2, 0.5, 0.9, 0.49]), np.array([0, 1, 1, 0])) == 1.0


def test_auroc_matches_sklearn_with_ties() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 500)
    scores = np.round(labels * 0.3 + rng.random(500), 1)  # rounding makes many ties
    assert auroc(scores, labels) == pytest.approx(roc_auc_score(labels, scores))


def test_bootstrap_ci_brackets_the_estimate_and_shrinks_with_data() -> None:
    rng = np.random.default_rng(1)

    def correct(p: float, n: int) -> np.ndarray:
        return (rng.random((5, n)) < p).astype(float)

    small = bootstrap_pgr_ci(correct(0.6, 400), correct(0.8, 400), correct(0.7, 400), n_boot=400)
    large = bootstrap_pgr_ci(correct(0.6, 8000), correct(0.8, 8000), correct(0.7, 8000), n_boot=400)
    assert small is not None and large is not None
    assert small.low < 0.5 < small.high
    assert large.low < 0.5 < large.high
    assert (large.high - large.low) < (small.high - small.low) / 2


def test_bootstrap_ci_is_none_without_a_gap() -> None:
    same = np.ones((3, 100))
    assert bootstrap_pgr_ci(same, same, same, n_boot=50) is None


def _correctness(rng: np.random.Generator, p: np.ndarray, seeds: int) -> np.ndarray:
    return (rng.random((seeds, len(p))) < p[None, :]).astype(np.float64)


def test_a_paired_difference_is_zero_for_the_same_run_and_significant_for_a_clear_gain() -> None:
    from autow2s.testbed.metrics import RunCorrectness, paired_pgr_difference

    rng = np.random.default_rng(1)
    items = 1500
    difficulty = 0.5 + 0.45 * rng.random(items)  # some items are hard for every model: the pairing removes that
    weak = _correctness(rng, np.full(items, 0.6), 1)[0]
    ceiling = _correctness(rng, np.full(items, 0.85), 5)
    vanilla = RunCorrectness(_correctness(rng, difficulty, 1), weak)
    same = paired_pgr_difference(vanilla, vanilla, ceiling)
    assert same is not None and same.difference == 0 and same.low == same.high == 0 and not same.significant
    better = RunCorrectness(_correctness(rng, np.minimum(difficulty + 0.06, 1), 5), weak)
    worse = RunCorrectness(_correctness(rng, difficulty - 0.06, 5), weak)
    assert paired_pgr_difference(better, vanilla, ceiling).verdict() == "better"
    assert paired_pgr_difference(worse, vanilla, ceiling).verdict() == "worse"
    with pytest.raises(ValueError, match="same items"):
        paired_pgr_difference(better, RunCorrectness(vanilla.method[:, :10], weak[:10]), ceiling)


def test_pairing_by_item_narrows_the_interval_against_independent_intervals() -> None:
    from autow2s.testbed.metrics import RunCorrectness, bootstrap_pgr_ci, paired_pgr_difference

    rng = np.random.default_rng(2)
    items = 1500
    difficulty = np.clip(rng.normal(0.72, 0.25, items), 0.02, 0.98)
    weak = (rng.random(items) < 0.6).astype(np.float64)
    ceiling = _correctness(rng, np.full(items, 0.85), 5)
    a, b = (RunCorrectness(_correctness(rng, difficulty, 5), weak) for _ in range(2))
    paired = paired_pgr_difference(a, b, ceiling)
    one = [bootstrap_pgr_ci(np.tile(weak, (5, 1)), ceiling, run.method) for run in (a, b)]
    unpaired_half = sum((ci.high - ci.low) / 2 for ci in one if ci is not None)  # the two intervals side by side
    assert paired is not None and not paired.significant
    assert (paired.high - paired.low) / 2 < 0.6 * unpaired_half


def test_runs_on_the_same_seeds_and_supervisor_are_paired_by_seed_too() -> None:
    """A method and vanilla inside one verified run share the seeds: resampled together, a method identical to
    vanilla on every seed differs by exactly 0, and a small consistent gain is found."""
    from autow2s.testbed.metrics import RunCorrectness, paired_pgr_difference

    rng = np.random.default_rng(3)
    items = 1500
    difficulty = np.clip(rng.normal(0.72, 0.2, items), 0.05, 0.95)
    weak = (rng.random(items) < 0.6).astype(np.float64)
    ceiling = _correctness(rng, np.full(items, 0.85), 5)
    vanilla = RunCorrectness(_correctness(rng, difficulty, 5), weak)
    same = paired_pgr_difference(vanilla, vanilla, ceiling, same_seeds=True)
    assert same is not None and same.low == same.high == 0
    flip = rng.random(vanilla.method.shape) < 0.04  # a method that fixes some of vanilla's mistakes, seed by seed
    better = RunCorrectness(np.where(flip, 1.0, vanilla.method), weak)
    paired = paired_pgr_difference(better, vanilla, ceiling, same_seeds=True)
    independent = paired_pgr_difference(better, vanilla, ceiling)
    assert paired is not None and paired.verdict() == "better"
    assert independent is not None and paired.high - paired.low < independent.high - independent.low
