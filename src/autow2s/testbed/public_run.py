"""Run a method against a public task view (what `prepare` wrote): the code path sandboxed jobs use.

Nothing here can read labels: the public directory has none, and the loader is told so.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from autow2s.errors import TaskFormatError
from autow2s.testbed.experiment import ExperimentSettings, build_context, call_method, check_predictions
from autow2s.testbed.methods.registry import Method
from autow2s.testbed.tasks.dataset import Split, Task
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


FEATURES_DIR = "features"


def load_public(public_dir: str | Path) -> tuple[Task, WeakTeacher]:
    """The label-free task and the weak teacher's artifacts from a public directory."""
    public_dir = Path(public_dir)
    task = load_task_dir(public_dir, require_labels=False)
    if (public_dir / FEATURES_DIR).is_dir():  # the view's own texts, encoded by `prepare` (embed_cache.py)
        from autow2s.testbed.models.text.embed_cache import add_readonly_root

        add_readonly_root(public_dir / FEATURES_DIR)
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


def subsample_train(task: Task, teacher: WeakTeacher, fraction: float, seed: int) -> tuple[Task, WeakTeacher]:
    """Keep a seeded fraction of train_unlabel (quick experiments); test stays whole for scoring."""
    if not 0 < fraction <= 1:
        raise TaskFormatError(f"train fraction must be in (0, 1], got {fraction}")
    split = task.split("train_unlabel")
    keep = np.sort(np.random.default_rng(seed).permutation(len(split))[: max(1, int(len(split) * fraction))])
    small = Split(ids=[split.ids[i] for i in keep],
                  strong=None if split.strong is None else split.strong[keep],
                  weak=None if split.weak is None else split.weak[keep],
                  rows=None if split.rows is None else [split.rows[i] for i in keep])
    splits = dict(task.splits) | {"train_unlabel": small}
    soft = dict(teacher.soft_labels) | {"train_unlabel": teacher.soft_labels["train_unlabel"][keep]}
    return Task(meta=task.meta, splits=splits), replace(teacher, soft_labels=soft, _model=None)


def predict_public(public_dir: str | Path, method: Method, seed: int,
                   settings: ExperimentSettings = ExperimentSettings(),
                   train_fraction: float = 1.0) -> tuple[list[str], np.ndarray]:
    """Run `method` on the public view; returns test ids and checked P(label = 1)."""
    task, teacher = load_public(public_dir)
    if train_fraction < 1.0:
        task, teacher = subsample_train(task, teacher, train_fraction, seed)
    # A neutral view (a transfer task's: testbed.prepare.write_neutral_view) names no task, so it names the
    # student its task's ceiling used, which a task's name otherwise implies.
    named = json.loads((Path(public_dir) / "weak" / "model.json").read_text()).get("strong")
    if settings.strong is None and isinstance(named, str):
        settings = replace(settings, strong=named)
    ctx = build_context(task, teacher, seed, settings)
    test_ids = task.split("test").ids
    return test_ids, check_predictions(method.name, call_method(method, ctx), len(test_ids))
