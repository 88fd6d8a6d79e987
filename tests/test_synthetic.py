"""Synthetic tasks: deterministic by seed, with knobs that move the regime the way they claim."""

from __future__ import annotations

import numpy as np

from autow2s.testbed.tasks.registry import PRESETS, TASKS, load_task
from testbed_helpers import small_task


def test_same_seed_same_task_and_different_seed_different_task() -> None:
    a, b = small_task("synth-linear"), small_task("synth-linear")
    assert a.fingerprint() == b.fingerprint()
    assert np.array_equal(a.split("test").strong, b.split("test").strong)
    c = small_task("synth-linear", data_seed=1)
    assert c.fingerprint() != a.fingerprint()


def test_every_preset_has_three_labelled_splits_of_the_configured_shape() -> None:
    assert {"synth-linear", "synth-nonlinear", "synth-pairwise"} <= set(TASKS)
    for name in PRESETS:
        task = small_task(name)
        assert task.kind == "features"
        assert [len(task.split(s)) for s in ("train_label", "train_unlabel", "test")] == [300, 1200, 600]
        assert task.split("test").strong.shape[1] == PRESETS[name].strong_dim
        assert 0.4 < task.labels("test").mean() < 0.6  # balanced classes


def test_default_task_is_registered_and_full_size() -> None:
    task = load_task("synth-linear")
    assert len(task.split("test")) == PRESETS["synth-linear"].n_test


def _weak_score_accuracy(**knobs: float) -> float:
    task = small_task("synth-linear", n_test=4000, **knobs)
    score = task.split("test").weak[:, 0]  # the weak view's informative coordinate
    return float(np.mean((score > 0) == task.labels("test")))


def test_weak_knobs_move_weak_accuracy() -> None:
    base = _weak_score_accuracy()
    # + 0.08: the label also depends on a cue the weak score cannot see (hidden_weight), so less noise gains less
    assert _weak_score_accuracy(weak_noise=0.2, nuisance_weight=0.2) > base + 0.08
    assert _weak_score_accuracy(weak_access=0.0) < 0.56


def test_truth_is_not_the_top_variance_direction() -> None:
    task = small_task("synth-linear", n_train_unlabel=4000)
    x = task.split("train_unlabel").strong
    x = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    top = x @ vt[0]
    labels = task.labels("train_unlabel")
    assert abs(np.corrcoef(top, labels)[0, 1]) < 0.1
