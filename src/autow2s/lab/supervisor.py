"""The verification supervisor: a weak model no researcher has seen, drawn afresh for every verified run.

A verified run used to hand the method the public view, byte for byte the one its author had during
research, so a method could pin a hash of the weak labels and tell the real run from the null-supervisor
ones (run the unit tests when the hash matched, behave like vanilla otherwise, and pass the check with
labels it computed). Now every verified run draws a secret and, from the lab's copy of `train_label`:

- the **real** supervisor: the public weak model's architecture retrained with a secret seed on a bootstrap
  resample of `train_label`. Its soft labels were never seen in research, and the run's PGR is measured
  against its own weak accuracy (`RunSupervisors.weak_bits`), not the public teacher's;
- two **null** supervisors: the same rows with the labels permuted (`pos`) and permuted then flipped
  (`neg`), as in testbed/prepare.py's null views, but fresh for the run too;
- each null supervisor's logit is scaled so that its confidence distribution (|logit| on train_unlabel and
  test) matches the real one's: a weak model trained on noise is flatter, and flatness would tell them apart.

What remains (docs/lab.md): a method can still compare its supervisor with a signal of its own (its own
good predictions, or a sketch of the research supervisor's outputs, which a fresh real supervisor still
resembles and a null one does not), so the flag stays a tripwire, not a proof.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from autow2s.lab.outcomes import pack
from autow2s.lab.tasks import LabTask
from autow2s.testbed.metrics import bootstrap_pgr_ci, pgr
from autow2s.testbed.prepare import write_supervised_view
from autow2s.testbed.tasks.dataset import Task
from autow2s.testbed.tasks.instance import derived_rng
from autow2s.testbed.tasks.loader import load_task_dir
from autow2s.testbed.teachers import TEACHER_SPLITS, WeakTeacher, fresh_weak_teacher, tempered

SECRET_BITS = 63


@dataclass(frozen=True)
class RunSupervisors:
    """The three views of one verified run and the real supervisor's test predictions (its weak baseline)."""

    real: Path
    nulls: tuple[Path, Path]  # pos, neg
    weak: WeakBaseline  # the real supervisor's test predictions: the run's PGR is measured against them
    null_factors: tuple[float, float]  # the logit scale each null supervisor got (for the log)


_LAB_TASKS: dict[Path, Task] = {}
_LAB_TASKS_LOCK = threading.Lock()


def lab_copy(lab_task: LabTask) -> Task:
    """The task with its labels, read once per lab process (only verification needs train_label)."""
    with _LAB_TASKS_LOCK:
        task = _LAB_TASKS.get(lab_task.lab_dir)
        if task is None:
            task = _LAB_TASKS[lab_task.lab_dir] = load_task_dir(lab_task.lab_dir)
        return task


def _abs_logits(teacher: WeakTeacher) -> np.ndarray:
    probs = np.clip(np.concatenate([teacher.soft_labels[split] for split in TEACHER_SPLITS]), 1e-12, 1 - 1e-12)
    return np.asarray(np.abs(np.log(probs) - np.log1p(-probs)), dtype=np.float64)


def ks_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Kolmogorov distance between two samples' empirical distributions."""
    a, b = np.sort(a), np.sort(b)
    points = np.concatenate([a, b])
    return float(np.abs(np.searchsorted(a, points, side="right") / len(a)
                        - np.searchsorted(b, points, side="right") / len(b)).max())


def matching_factor(real: WeakTeacher, null: WeakTeacher) -> float:
    """The logit scale that brings the null supervisor's confidence distribution closest to the real one's.

    Searched on a log grid around the ratio of the medians, by the Kolmogorov distance between the |logit|
    distributions; scaling a logit keeps every predicted class and changes only the confidence.
    """
    target, own = _abs_logits(real), _abs_logits(null)
    start = float(np.median(target) / max(float(np.median(own)), 1e-12))
    grid = start * np.exp(np.linspace(-1.5, 1.5, 121))
    distances = [ks_distance(target, own * factor) for factor in grid]
    return float(grid[int(np.argmin(distances))])


def draw_supervisors(lab_task: LabTask, out: Path, *, secret: int | None = None,
                     with_nulls: bool = True) -> RunSupervisors:
    """Train this run's real supervisor (and, with_nulls, its two null ones) and write their views under OUT.

    OUT must be private to the lab (the runner copies each view into the job's own folder). `secret`
    defaults to a fresh draw from the OS's CSPRNG; it is used here and kept nowhere.
    """
    task = lab_copy(lab_task)
    backend = str(json.loads((lab_task.public_dir / "weak" / "model.json").read_text())["backend"])
    secret = secrets.randbits(SECRET_BITS) if secret is None else secret
    labels = task.labels("train_label")
    n = len(labels)
    rows = derived_rng(secret, "bootstrap").integers(0, n, n)
    permuted = labels[derived_rng(secret, "null").permutation(n)]
    seeds = derived_rng(secret, "seeds").integers(1, 2**31 - 1, 3)
    real = tempered(fresh_weak_teacher(task, int(seeds[0]), backend=backend, rows=rows), 1.0, task)
    nulls, factors = [real, real], [1.0, 1.0]  # without the check, no null views are written
    for index, (polarity, seed) in enumerate(zip(("pos", "neg"), seeds[1:]) if with_nulls else ()):
        null_labels = permuted if polarity == "pos" else 1 - permuted
        raw = fresh_weak_teacher(task, int(seed), backend=backend, rows=rows, labels=null_labels)
        factors[index] = matching_factor(real, raw)
        nulls[index] = tempered(raw, factors[index], task)
    real_view = write_supervised_view(lab_task.public_dir, out / "real", task, real)
    null_views = (write_supervised_view(lab_task.public_dir, out / "pos", task, nulls[0]),
                  write_supervised_view(lab_task.public_dir, out / "neg", task, nulls[1])) if with_nulls \
        else (real_view, real_view)
    return RunSupervisors(real=real_view, nulls=null_views, weak=WeakBaseline.of(lab_task, real.soft_labels["test"] >= 0.5),
                          null_factors=(factors[0], factors[1]))


# -- the figures of a run, against its own weak baseline ---------------------------------------------
@dataclass(frozen=True)
class WeakBaseline:
    """The supervisor a run's PGR is measured against: its test predictions and accuracies on dev and holdout."""

    bits: np.ndarray  # (n_test,) bool
    dev_acc: float
    holdout_acc: float

    @classmethod
    def of(cls, task: LabTask, bits: np.ndarray) -> WeakBaseline:
        right = bits == task.labels
        return cls(bits, float(right[task.dev_idx].mean()), float(right[task.holdout_idx].mean()))

    @classmethod
    def public(cls, task: LabTask) -> WeakBaseline:
        """The public teacher researchers distil from (transfer runs, which see the public view)."""
        assert task.baselines is not None
        b = task.baselines
        return cls(b.weak_bits, b.weak_dev_acc, b.weak_holdout_acc)


def verified_metrics(task: LabTask, predictions: list[np.ndarray], *, ci_seed: int = 0,
                     weak: WeakBaseline | None = None, reference: list[np.ndarray] | None = None) -> dict[str, Any]:
    """Dev and holdout accuracy and PGR over seeds, and a bootstrap CI of the holdout PGR, against `weak`
    (default: the public teacher) and the task's fixed ceiling. reference: vanilla's predictions on the same
    seeds and supervisor, kept in the outcome for the comparison with vanilla paired by item and seed."""
    baselines = task.baselines
    assert baselines is not None
    weak = weak or WeakBaseline.public(task)
    bits = np.stack([np.asarray(p) >= 0.5 for p in predictions])
    if bits.shape[1] != task.n_test:  # no task name: a transfer run's error text must not name its task
        raise ValueError(f"the method returned {bits.shape[1]} predictions; the task has {task.n_test} test items")
    right = bits == task.labels
    dev_acc = float(right[:, task.dev_idx].mean())
    holdout_acc = float(right[:, task.holdout_idx].mean())
    holdout = task.holdout_idx
    n_seeds = len(predictions)
    weak_right = np.tile(weak.bits[holdout] == task.labels[holdout], (n_seeds, 1))
    ceiling = np.resize(baselines.ceiling_bits[:, holdout] == task.labels[holdout], (n_seeds, len(holdout)))
    interval = bootstrap_pgr_ci(weak_right, ceiling, right[:, holdout], seed=ci_seed)
    return {"dev_accuracy": dev_acc, "holdout_accuracy": holdout_acc,
            "outcome": run_outcome(task, predictions, weak, reference),
            "dev_pgr": pgr(weak.dev_acc, baselines.ceiling_dev_acc, dev_acc),
            "holdout_pgr": pgr(weak.holdout_acc, baselines.ceiling_holdout_acc, holdout_acc),
            "holdout_ci_low": None if interval is None else interval.low,
            "holdout_ci_high": None if interval is None else interval.high}


def run_outcome(task: LabTask, predictions: list[np.ndarray], weak: WeakBaseline,
                reference: list[np.ndarray] | None) -> bytes:
    """The per-item outcome on the holdout, for paired comparisons with vanilla (lab/outcomes.py): the run's
    right/wrong per seed and item, its weak supervisor's, the ceiling's, and vanilla's (the reference) if run."""
    baselines = task.baselines
    assert baselines is not None
    holdout = task.holdout_idx
    labels = task.labels[holdout]

    def right(p: np.ndarray) -> np.ndarray:
        return np.asarray((np.asarray(p)[holdout] >= 0.5) == labels)

    return pack(np.stack([right(p) for p in predictions]), weak.bits[holdout] == labels,
                baselines.ceiling_bits[:, holdout] == labels,
                None if reference is None else np.stack([right(p) for p in reference]))


# A method is flagged when, with a null supervisor, it keeps at least this share of its real PGR
# and the null PGR's CI lies above 0 (docs/lab.md, "The supervisor-dependence check").
INDEPENDENCE_SHARE = 0.5


def null_plan(views: tuple[Path, Path], seeds: Sequence[int]) -> list[tuple[Path, int]]:
    """(view, seed) for each null run. The two mirrored views get equally many runs, so a method that
    follows its supervisor's direction averages to chance: an odd count drops its last seed, and a
    single seed runs under both views."""
    positive, negative = views
    if len(seeds) == 1:
        return [(positive, seeds[0]), (negative, seeds[0])]
    even = list(seeds[: len(seeds) - len(seeds) % 2])
    return [((positive, negative)[index % 2], seed) for index, seed in enumerate(even)]


def gain_lower_bound(task: LabTask, predictions: list[np.ndarray], weak: WeakBaseline) -> float:
    """A 95% lower bound on (holdout accuracy − the weak model's), paired by item, averaged over runs."""
    holdout = task.holdout_idx
    right = np.stack([(np.asarray(p)[holdout] >= 0.5) == task.labels[holdout] for p in predictions]).mean(axis=0)
    diff = right - (weak.bits[holdout] == task.labels[holdout])
    return float(diff.mean() - 1.96 * diff.std(ddof=1) / np.sqrt(len(diff)))


def supervisor_check(real: dict[str, Any], null: dict[str, Any], *, weak_holdout_acc: float,
                     null_gain_low: float) -> dict[str, Any]:
    """The null-supervisor figures and the verdict: 'flagged' when the method does not need its supervisor.

    The rule is on PGR where the task has a gap; where it has none (PGR undefined) the same rule is
    applied to the gain in accuracy over the weak model, so a task without a gap is no hiding place.
    """
    real_pgr, null_pgr, low = real["holdout_pgr"], null["holdout_pgr"], null["holdout_ci_low"]
    if real_pgr is not None and null_pgr is not None and low is not None:
        flagged = null_pgr >= INDEPENDENCE_SHARE * real_pgr and low > 0
    else:
        real_gain = real["holdout_accuracy"] - weak_holdout_acc
        null_gain = null["holdout_accuracy"] - weak_holdout_acc
        flagged = null_gain >= INDEPENDENCE_SHARE * real_gain and null_gain_low > 0
    return {"supervisor_check": "flagged" if flagged else "passed", "null_holdout_pgr": null_pgr,
            "null_ci_low": low, "null_ci_high": null["holdout_ci_high"]}
