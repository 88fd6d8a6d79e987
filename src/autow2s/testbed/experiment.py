"""One method on one task over seeds: weak teacher -> soft labels -> student -> test predictions."""

from __future__ import annotations

import time
import traceback
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from autow2s.errors import AutoW2SError, MethodError, PredictionError
from autow2s.testbed.cache import ArtifactCache
from autow2s.testbed.context import MethodContext, PublicSplit, TaskInfo
from autow2s.testbed.methods.registry import Method
from autow2s.testbed.metrics import accuracy, auroc, bootstrap_pgr_ci, gap_message, pgr
from autow2s.testbed.models.registry import default_backend, get_backend
from autow2s.testbed.seeds import DEFAULT_SEEDS
from autow2s.testbed.tasks.dataset import Task
from autow2s.testbed.teachers import WeakTeacher, ceiling_probs, weak_teacher


@dataclass(frozen=True)
class ExperimentSettings:
    strong: str | None = None  # None: the task kind's default (mlp on features, encoder on text)
    weak: str | None = None  # None: the task kind's default (linear on features, tfidf on text)
    device: str = "cpu"
    time_budget_s: float = 600.0
    n_boot: int = 1000

    def for_task(self, task_kind: str, task_name: str | None = None) -> ExperimentSettings:
        """These settings with the task's default backends filled in."""
        return replace(self, strong=self.strong or default_backend(task_kind, "strong", task_name),
                       weak=self.weak or default_backend(task_kind, "weak", task_name))


@dataclass
class SeedResult:
    seed: int
    weak_acc: float
    ceiling_acc: float
    transfer_acc: float
    transfer_auroc: float
    seconds: float


@dataclass
class ExperimentResult:
    task: str
    method: str
    seeds: list[int]
    weak_acc: float
    ceiling_acc: float
    transfer_acc: float
    pgr: float | None
    pgr_ci: list[float] | None
    seconds: float
    transfer_auroc: float
    note: str = ""
    per_seed: list[SeedResult] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def task_info(task: Task) -> TaskInfo:
    sizes = {name: len(split) for name, split in task.splits.items() if name != "train_label"}
    test = task.split("test")
    return TaskInfo(
        name=task.name,
        kind=task.kind,
        description=task.meta.description,
        sizes=sizes,
        strong_dim=None if test.strong is None else int(test.strong.shape[1]),
        weak_dim=None if test.weak is None else int(test.weak.shape[1]),
    )


def build_context(task: Task, teacher: WeakTeacher, seed: int, settings: ExperimentSettings) -> MethodContext:
    """The method's whole world: label-free inputs, the weak teacher's outputs, a student factory."""
    settings = settings.for_task(task.kind, task.name)
    assert settings.strong is not None, "for_task fills in the strong backend"
    strong = get_backend(settings.strong, task.kind)
    weak = get_backend(teacher.backend, task.kind)
    splits = {
        name: PublicSplit(
            strong_inputs=strong.inputs(task.split(name), "strong"),
            weak_inputs=weak.inputs(task.split(name), "weak"),
            weak_soft_labels=teacher.soft_labels[name],
        )
        for name in ("train_unlabel", "test")
    }
    example = splits["test"].strong_inputs

    def make_student(seed: int, **hparams: Any):
        hparams.setdefault("device", settings.device)
        return strong.make(example=example, seed=seed, **hparams)

    return MethodContext(
        task=task_info(task),
        splits=splits,
        weak_predict=teacher.predict_proba,
        make_student=make_student,
        seed=seed,
        time_budget_s=settings.time_budget_s,
    )


def call_method(method: Method, ctx: MethodContext) -> Any:
    """Run a method, turning an exception in its code into one line that says where it happened."""
    try:
        return method.run(ctx)
    except AutoW2SError:
        raise
    except Exception as exc:  # the method's own code: report it, don't crash the caller
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        where = f"{Path(frame.filename).name}:{frame.lineno}"
        raise MethodError(f"method {method.name!r} raised {type(exc).__name__}: {exc} (at {where}, seed {ctx.seed})") from exc


def check_predictions(method: str, predictions: Any, n_test: int) -> np.ndarray:
    """Predictions must be n_test finite probabilities (or 0/1) on the test split."""
    try:
        array = np.asarray(predictions, dtype=np.float64)
    except (TypeError, ValueError):
        raise PredictionError(f"method {method!r} returned {type(predictions).__name__}, not an array of numbers") from None
    if array.ndim == 2 and array.shape[1] == 2:
        array = array[:, 1]
    if array.ndim != 1 or array.shape[0] != n_test:
        raise PredictionError(
            f"method {method!r} returned predictions of shape {array.shape}; expected ({n_test},), one P(label=1) per test item"
        )
    bad = ~np.isfinite(array)
    if bad.any():
        raise PredictionError(f"method {method!r} returned {int(bad.sum())} NaN/inf predictions "
                              f"(first at index {int(np.argmax(bad))})")
    if (array < 0).any() or (array > 1).any():
        raise PredictionError(f"method {method!r} returned values outside [0, 1]; return probabilities of label 1")
    return array


def run_experiment(
    task: Task,
    method: Method,
    seeds: Iterable[int] = DEFAULT_SEEDS,
    *,
    cache: ArtifactCache | None = None,
    settings: ExperimentSettings = ExperimentSettings(),
    progress: Any = None,
) -> ExperimentResult:
    """Run `method` once per seed and score it against seed-averaged weak and ceiling baselines.

    `progress` is an optional callable(str) told about each step, for progress bars.
    """
    cache = cache if cache is not None else ArtifactCache()
    settings = settings.for_task(task.kind, task.name)
    assert settings.strong is not None and settings.weak is not None, "for_task fills in both backends"
    seeds = list(seeds)
    labels = task.labels("test")
    started = time.perf_counter()
    rows: list[SeedResult] = []
    correct: dict[str, list[np.ndarray]] = {"weak": [], "ceiling": [], "transfer": []}
    transfer_probs = []
    for seed in seeds:
        seed_started = time.perf_counter()
        if progress:
            progress(f"seed {seed}: weak teacher and ceiling")
        teacher = weak_teacher(task, seed, cache, backend=settings.weak, device=settings.device)
        ceiling = ceiling_probs(task, seed, cache, backend=settings.strong, device=settings.device)
        if progress:
            progress(f"seed {seed}: {method.name}")
        ctx = build_context(task, teacher, seed, settings)
        predictions = check_predictions(method.name, call_method(method, ctx), len(labels))
        transfer_probs.append(predictions)
        for key, probs in (("weak", teacher.soft_labels["test"]), ("ceiling", ceiling), ("transfer", predictions)):
            correct[key].append(((probs >= 0.5).astype(np.int64) == labels).astype(np.float64))
        rows.append(SeedResult(
            seed=seed,
            weak_acc=accuracy(teacher.soft_labels["test"], labels),
            ceiling_acc=accuracy(ceiling, labels),
            transfer_acc=accuracy(predictions, labels),
            transfer_auroc=auroc(predictions, labels),
            seconds=time.perf_counter() - seed_started,
        ))
    weak_acc = float(np.mean([r.weak_acc for r in rows]))
    ceiling_acc = float(np.mean([r.ceiling_acc for r in rows]))
    transfer_acc = float(np.mean([r.transfer_acc for r in rows]))
    value = pgr(weak_acc, ceiling_acc, transfer_acc)
    interval = None
    if value is not None:
        ci = bootstrap_pgr_ci(*(np.stack(correct[k]) for k in ("weak", "ceiling", "transfer")),
                              n_boot=settings.n_boot, seed=seeds[0])
        interval = None if ci is None else [ci.low, ci.high]
    return ExperimentResult(
        task=task.name,
        method=method.name,
        seeds=seeds,
        weak_acc=weak_acc,
        ceiling_acc=ceiling_acc,
        transfer_acc=transfer_acc,
        pgr=value,
        pgr_ci=interval,
        seconds=time.perf_counter() - started,
        transfer_auroc=float(np.mean([r.transfer_auroc for r in rows])),
        note="" if value is not None else gap_message(weak_acc, ceiling_acc),
        per_seed=rows,
    )
