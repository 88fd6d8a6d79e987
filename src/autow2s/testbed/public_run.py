"""Run a method against a public task view (what `prepare` wrote): the code path sandboxed jobs use.

Nothing here can read labels: the public directory has none, and the loader is told so.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from autow2s.errors import TaskFormatError
from autow2s.testbed.experiment import ExperimentSettings, build_context, call_method, check_predictions
from autow2s.testbed.methods.registry import Method
from autow2s.testbed.tasks.dataset import Task
from autow2s.testbed.tasks.loader import load_task_dir
from autow2s.testbed.teachers import WeakTeacher


def _read_soft_labels(path: Path, ids: list[str]) -> np.ndarray:
    if not path.is_file():
        raise TaskFormatError(f"{path}: missing; run `autow2s prepare` to write the weak artifacts")
    by_id: dict[str, float] = {}
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        try:
            row = json.loads(line)
            by_id[str(row["id"])] = float(row["p"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise TaskFormatError(f"{path}:{lineno}: expected {{\"id\": ..., \"p\": ...}} ({exc})") from None
    missing = [rid for rid in ids if rid not in by_id]
    if missing:
        raise TaskFormatError(f"{path}: no weak label for {len(missing)} ids (first: {missing[0]!r})")
    return np.array([by_id[rid] for rid in ids], dtype=np.float64)


def load_public(public_dir: str | Path) -> tuple[Task, WeakTeacher]:
    """The label-free task and the weak teacher's artifacts from a public directory."""
    public_dir = Path(public_dir)
    task = load_task_dir(public_dir, require_labels=False)
    weak_dir = public_dir / "weak"
    model_meta_path = weak_dir / "model.json"
    if not model_meta_path.is_file():
        raise TaskFormatError(f"{model_meta_path}: missing; run `autow2s prepare` to write the weak artifacts")
    model_meta = json.loads(model_meta_path.read_text())
    with np.load(weak_dir / "model.npz", allow_pickle=False) as data:
        model_arrays = {name: data[name] for name in data.files}
    soft = {split: _read_soft_labels(weak_dir / f"{split}.jsonl", task.split(split).ids)
            for split in ("train_unlabel", "test")}
    teacher = WeakTeacher(soft_labels=soft, model_arrays=model_arrays, backend=model_meta["backend"],
                          task_kind=task.kind)
    return task, teacher


def predict_public(public_dir: str | Path, method: Method, seed: int,
                   settings: ExperimentSettings = ExperimentSettings()) -> tuple[list[str], np.ndarray]:
    """Run `method` on the public view; returns test ids and checked P(label = 1)."""
    task, teacher = load_public(public_dir)
    ctx = build_context(task, teacher, seed, settings)
    test_ids = task.split("test").ids
    return test_ids, check_predictions(method.name, call_method(method, ctx), len(test_ids))
