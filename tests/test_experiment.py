"""Experiments: deterministic given seeds, scored against seed-averaged baselines."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from autow2s.errors import AutoW2SError, PredictionError
from autow2s.testbed.cache import ArtifactCache
from autow2s.testbed.experiment import ExperimentSettings, check_predictions, run_experiment
from autow2s.testbed.methods.registry import Method, load_method
from autow2s.testbed.metrics import pgr
from autow2s.testbed.models.device import resolve_device
from testbed_helpers import small_task

SETTINGS = ExperimentSettings(n_boot=200)


def test_same_seeds_give_the_same_numbers(tmp_path) -> None:
    task = small_task()
    method = load_method("vanilla")
    # Separate caches: the second run recomputes everything from scratch.
    a = run_experiment(task, method, [1, 2], cache=ArtifactCache(tmp_path / "a"), settings=SETTINGS)
    b = run_experiment(task, method, [1, 2], cache=ArtifactCache(tmp_path / "b"), settings=SETTINGS)
    assert (a.weak_acc, a.ceiling_acc, a.transfer_acc, a.pgr, a.pgr_ci) == (
        b.weak_acc, b.ceiling_acc, b.transfer_acc, b.pgr, b.pgr_ci)
    c = run_experiment(task, method, [3, 4], cache=ArtifactCache(tmp_path / "a"), settings=SETTINGS)
    assert c.transfer_acc != a.transfer_acc or c.weak_acc != a.weak_acc


def test_result_is_consistent_with_its_per_seed_rows(tmp_path) -> None:
    result = run_experiment(small_task(), load_method("vanilla"), [1, 2, 3],
                            cache=ArtifactCache(tmp_path), settings=SETTINGS)
    assert result.seeds == [1, 2, 3] and len(result.per_seed) == 3
    assert result.weak_acc == pytest.approx(np.mean([r.weak_acc for r in result.per_seed]))
    assert result.pgr == pytest.approx(pgr(result.weak_acc, result.ceiling_acc, result.transfer_acc))
    assert result.pgr_ci[0] <= result.pgr <= result.pgr_ci[1]
    assert 0.5 < result.weak_acc < result.ceiling_acc


def _constant(value: float) -> Method:
    return Method(name=f"constant-{value}", description="", run_fn=lambda ctx: np.full(len(ctx.inputs("test")), value))


def test_gap_free_task_reports_no_pgr(tmp_path) -> None:
    # The strong view carries no truth while the weak score is clean: the ceiling cannot beat weak.
    task = small_task(truth_salience=0.0, nuisance_visibility=0.0, weak_noise=0.1, nuisance_weight=0.0)
    result = run_experiment(task, _constant(1.0), [1], cache=ArtifactCache(tmp_path), settings=SETTINGS)
    assert result.ceiling_acc < result.weak_acc
    assert result.pgr is None and result.pgr_ci is None
    assert "not above the weak model" in result.note


@pytest.mark.parametrize(
    ("predictions", "message"),
    [
        (np.full(599, 0.5), r"shape \(599,\); expected \(600,\)"),
        (np.r_[np.full(599, 0.5), np.nan], "1 NaN/inf predictions"),
        (np.full(600, 1.5), "outside \\[0, 1\\]"),
        ("abc", "not an array of numbers"),
    ],
)
def test_bad_predictions_are_named(predictions, message) -> None:
    with pytest.raises(PredictionError, match=message):
        check_predictions("m", predictions, 600)


def test_two_column_probabilities_are_accepted() -> None:
    probs = np.stack([np.full(4, 0.3), np.full(4, 0.7)], axis=1)
    assert check_predictions("m", probs, 4).tolist() == [0.7] * 4


def test_device_is_chosen_at_run_time_and_cpu_is_always_valid() -> None:
    assert resolve_device(None).type == "cpu"
    assert resolve_device("auto").type in {"cpu", "cuda"}
    if not torch.cuda.is_available():
        with pytest.raises(AutoW2SError, match="CUDA is not available; use --device cpu"):
            resolve_device("cuda")
    with pytest.raises(AutoW2SError, match="unknown device"):
        resolve_device("tpu")
    assert not torch.cuda.is_initialized()
