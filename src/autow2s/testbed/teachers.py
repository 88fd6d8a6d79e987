"""The trusted baselines: the weak teacher and the ceiling, each cached under its config."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from autow2s.errors import AutoW2SError
from autow2s.testbed.cache import ArtifactCache
from autow2s.testbed.metrics import accuracy
from autow2s.testbed.models.registry import get_backend
from autow2s.testbed.tasks.dataset import Task

# Bump when training code changes what a cached artifact would contain.
ARTIFACT_VERSION = 1
# The ceiling is tuned on held-out ground truth so that PGR is not inflated by a weak ceiling.
CEILING_GRID: tuple[dict[str, float], ...] = (
    {"lr": 3e-3, "weight_decay": 1e-4},
    {"lr": 3e-3, "weight_decay": 1e-2},
    {"lr": 1e-3, "weight_decay": 1e-4},
    {"lr": 1e-2, "weight_decay": 1e-3},
)
CEILING_VAL_FRAC = 0.2


@dataclass(frozen=True)
class WeakTeacher:
    """A trained weak model and its soft labels on the splits the student sees."""

    soft_labels: dict[str, np.ndarray]
    model_arrays: dict[str, np.ndarray]
    backend: str
    input_dim: int

    def predict_proba(self, weak_inputs: Any) -> np.ndarray:
        model = get_backend(self.backend, "features").load(input_dim=self.input_dim, arrays=self.model_arrays)
        return model.predict_proba(weak_inputs)


def _config(task: Task, role: str, backend: str, seed: int, device: str) -> dict[str, Any]:
    head = get_backend(backend, task.kind).config(device=device).to_dict()
    head.pop("device")  # results do not depend on where they were computed
    return {"version": ARTIFACT_VERSION, "role": role, "task": task.fingerprint(), "backend": backend,
            "head": head, "seed": seed}


def weak_teacher(task: Task, seed: int, cache: ArtifactCache, *, backend: str = "linear",
                 device: str = "cpu") -> WeakTeacher:
    """Train the weak model on train_label (weak view) and label train_unlabel and test."""
    config = _config(task, "weak", backend, seed, device)
    input_dim = task.split("train_label").weak.shape[1]
    arrays = cache.load("weak", config)
    if arrays is None:
        model = get_backend(backend, task.kind).make(input_dim=input_dim, seed=seed, device=device)
        train = task.split("train_label")
        model.fit(train.weak, task.labels("train_label").astype(np.float32))
        arrays = {f"soft.{split}": model.predict_proba(task.split(split).weak) for split in ("train_unlabel", "test")}
        arrays.update({f"model.{k}": v for k, v in model.state_arrays().items()})
        cache.store("weak", config, arrays)
    return WeakTeacher(
        soft_labels={k[len("soft.") :]: v for k, v in arrays.items() if k.startswith("soft.")},
        model_arrays={k[len("model.") :]: v for k, v in arrays.items() if k.startswith("model.")},
        backend=backend,
        input_dim=input_dim,
    )


def ceiling_probs(task: Task, seed: int, cache: ArtifactCache, *, backend: str = "mlp",
                  device: str = "cpu") -> np.ndarray:
    """The strong model trained on train_unlabel's ground truth, tuned on a held-out slice of it."""
    config = _config(task, "ceiling", backend, seed, device) | {"grid": list(CEILING_GRID)}
    arrays = cache.load("ceiling", config)
    if arrays is not None:
        return arrays["test_probs"]
    split = task.split("train_unlabel")
    if split.labels is None:
        raise AutoW2SError(
            f"task {task.name!r}: train_unlabel has no labels, so the ceiling cannot be trained; "
            "the lab's copy of train_unlabel.jsonl must carry ground-truth labels"
        )
    order = np.random.default_rng(seed).permutation(len(split))
    n_val = int(len(split) * CEILING_VAL_FRAC)
    val, train = order[:n_val], order[n_val:]
    best_acc, best_model = -1.0, None
    for index, hparams in enumerate(CEILING_GRID):
        model = get_backend(backend, task.kind).make(
            input_dim=split.strong.shape[1], seed=seed * 100 + index, device=device, **hparams
        )
        model.fit(split.strong[train], split.labels[train].astype(np.float32))
        val_acc = accuracy(model.predict_proba(split.strong[val]), split.labels[val])
        if val_acc > best_acc:
            best_acc, best_model = val_acc, model
    assert best_model is not None
    probs = best_model.predict_proba(task.split("test").strong)
    cache.store("ceiling", config, {"test_probs": probs, "val_acc": np.array(best_acc)})
    return probs
