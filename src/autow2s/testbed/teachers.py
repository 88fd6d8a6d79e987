"""The trusted baselines: the weak teacher and the ceiling, each cached under its config."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from autow2s.errors import AutoW2SError
from autow2s.testbed.cache import ArtifactCache
from autow2s.testbed.metrics import accuracy
from autow2s.testbed.models.base import Student, subset
from autow2s.testbed.models.registry import get_backend
from autow2s.testbed.tasks.dataset import Task

# Bump when training code changes what a cached artifact would contain.
ARTIFACT_VERSION = 2
# The ceiling is tuned on held-out ground truth so that PGR is not inflated by a weak ceiling.
CEILING_GRID: tuple[dict[str, float], ...] = (
    {"lr": 3e-3, "weight_decay": 1e-4},
    {"lr": 3e-3, "weight_decay": 1e-2},
    {"lr": 1e-3, "weight_decay": 1e-4},
    {"lr": 1e-2, "weight_decay": 1e-3},
)
CEILING_VAL_FRAC = 0.2
TEACHER_SPLITS: tuple[str, ...] = ("train_unlabel", "test")


@dataclass
class WeakTeacher:
    """A trained weak model and its soft labels on the splits the student sees."""

    soft_labels: dict[str, np.ndarray]
    model_arrays: dict[str, np.ndarray]
    backend: str
    task_kind: str
    _model: Student | None = field(default=None, repr=False)

    def predict_proba(self, weak_inputs: Any) -> np.ndarray:
        if self._model is None:
            backend = get_backend(self.backend, self.task_kind)
            self._model = backend.load(example=weak_inputs, arrays=self.model_arrays)
        return self._model.predict_proba(weak_inputs)


def _config(task: Task, role: str, backend: str, seed: int) -> dict[str, Any]:
    return {"version": ARTIFACT_VERSION, "role": role, "task": task.fingerprint(),
            "model": get_backend(backend, task.kind).cache_config(), "seed": seed}


def _fit_weak(task: Task, seed: int, backend: str, device: str, rows: np.ndarray | None,
              labels: np.ndarray | None) -> dict[str, np.ndarray]:
    """The weak model's arrays and its soft labels, as the cache stores them (soft.SPLIT, model.KEY)."""
    model_backend = get_backend(backend, task.kind)
    train_inputs = model_backend.inputs(task.split("train_label"), "weak")
    targets = task.labels("train_label") if labels is None else labels
    if rows is not None:
        train_inputs, targets = subset(train_inputs, rows), targets[rows]
    model = model_backend.make(example=train_inputs, seed=seed, device=device)
    model.fit(train_inputs, np.asarray(targets, dtype=np.float32))
    arrays = {f"soft.{split}": model.predict_proba(model_backend.inputs(task.split(split), "weak"))
              for split in TEACHER_SPLITS}
    arrays.update({f"model.{k}": v for k, v in model.state_arrays().items()})
    return arrays


def _teacher(task: Task, backend: str, arrays: dict[str, np.ndarray]) -> WeakTeacher:
    return WeakTeacher(
        soft_labels={k[len("soft.") :]: v for k, v in arrays.items() if k.startswith("soft.")},
        model_arrays={k[len("model.") :]: v for k, v in arrays.items() if k.startswith("model.")},
        backend=backend,
        task_kind=task.kind,
    )


def weak_teacher(task: Task, seed: int, cache: ArtifactCache, *, backend: str = "linear",
                 device: str = "cpu") -> WeakTeacher:
    """Train the weak model on train_label (weak view) and label train_unlabel and test."""
    config = _config(task, "weak", backend, seed)
    arrays = cache.load("weak", config)
    if arrays is None:
        arrays = _fit_weak(task, seed, backend, device, None, None)
        cache.store("weak", config, arrays)
    return _teacher(task, backend, arrays)


def fresh_weak_teacher(task: Task, seed: int, *, backend: str, rows: np.ndarray,
                       labels: np.ndarray | None = None, device: str = "cpu") -> WeakTeacher:
    """A weak model trained on the given rows of train_label (repeats allowed: a bootstrap resample), with
    `labels` in place of the true ones when given (a null supervisor). Never cached: the lab draws one per
    verified run, and a stored copy would be one more place it could be read from."""
    return _teacher(task, backend, _fit_weak(task, seed, backend, device, rows, labels))


def tempered(teacher: WeakTeacher, factor: float, task: Task) -> WeakTeacher:
    """The same weak model with its logit multiplied by `factor` (temperature 1/factor): the same predicted
    classes, more or less confident. The soft labels are recomputed by loading the scaled arrays, as a method
    calling ctx.weak_model() would, so the two agree exactly."""
    arrays = dict(teacher.model_arrays)
    if "weight" in arrays and "bias" in arrays:  # tfidf: one linear layer over the TF-IDF rows
        last = ["weight", "bias"]
    else:  # a torch head: its last Linear is the one with the highest index
        layers = sorted({int(key.split(".")[1]) for key in arrays
                         if key.startswith("param.") and key.endswith((".weight", ".bias"))})
        if not layers:
            raise AutoW2SError(f"cannot scale the logit of a {teacher.backend!r} weak model: no final linear layer "
                               "found in its arrays")
        last = [f"param.{layers[-1]}.weight", f"param.{layers[-1]}.bias"]
    for key in last:
        arrays[key] = (np.asarray(arrays[key]) * factor).astype(np.asarray(arrays[key]).dtype)
    model_backend = get_backend(teacher.backend, task.kind)
    model = model_backend.load(example=model_backend.inputs(task.split("test"), "weak"), arrays=arrays)
    soft = {split: model.predict_proba(model_backend.inputs(task.split(split), "weak")) for split in TEACHER_SPLITS}
    return WeakTeacher(soft_labels=soft, model_arrays=arrays, backend=teacher.backend, task_kind=teacher.task_kind)


def ceiling_probs(task: Task, seed: int, cache: ArtifactCache, *, backend: str = "mlp",
                  device: str = "cpu") -> np.ndarray:
    """The strong model trained on train_unlabel's ground truth, tuned on a held-out slice of it."""
    model_backend = get_backend(backend, task.kind)
    # A backend may carry its own grid (LoRA wants far smaller learning rates than a head).
    grid = tuple(getattr(model_backend, "ceiling_grid", None) or CEILING_GRID)
    config = _config(task, "ceiling", backend, seed) | {"grid": list(grid)}
    arrays = cache.load("ceiling", config)
    if arrays is not None:
        return arrays["test_probs"]
    split = task.split("train_unlabel")
    if split.labels is None:
        raise AutoW2SError(
            f"task {task.name!r}: train_unlabel has no labels, so the ceiling cannot be trained; "
            "the lab's copy of train_unlabel.jsonl must carry ground-truth labels"
        )
    inputs = model_backend.inputs(split, "strong")
    order = np.random.default_rng(seed).permutation(len(split))
    n_val = int(len(split) * CEILING_VAL_FRAC)
    val, train = order[:n_val], order[n_val:]
    best_acc, best_model = -1.0, None
    for index, hparams in enumerate(grid):
        model = model_backend.make(example=inputs, seed=seed * 100 + index, device=device, **hparams)
        model.fit(subset(inputs, train), split.labels[train].astype(np.float32))
        val_acc = accuracy(model.predict_proba(subset(inputs, val)), split.labels[val])
        if val_acc > best_acc:
            best_acc, best_model = val_acc, model
    assert best_model is not None
    probs = best_model.predict_proba(model_backend.inputs(task.split("test"), "strong"))
    cache.store("ceiling", config, {"test_probs": probs, "val_acc": np.array(best_acc)})
    return probs
