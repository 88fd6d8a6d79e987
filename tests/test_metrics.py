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
