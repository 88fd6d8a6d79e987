"""`autow2s prepare`: split a task into the lab's view (labels) and the researchers' (none)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from autow2s.testbed.cache import ArtifactCache
from autow2s.testbed.models.registry import default_backend
from autow2s.testbed.tasks.dataset import Split, Task
from autow2s.testbed.tasks.schema import SPLIT_FILES
from autow2s.testbed.teachers import weak_teacher


def _label_value(kind: str, label: int) -> Any:
    if kind == "binary":
        return bool(label)
    if kind == "pairwise":
        return "B" if label else "A"
    return int(label)


def _rows(task: Task, split: Split, *, with_labels: bool) -> list[dict[str, Any]]:
    rows = []
    for i, rid in enumerate(split.ids):
        if split.rows is not None:
            row = dict(split.rows[i])
            row["id"] = rid
        else:
            row = {"id": rid, "strong_features": split.strong[i].tolist(), "weak_features": split.weak[i].tolist()}
        if with_labels and split.labels is not None:
            row["label"] = _label_value(task.kind, int(split.labels[i]))
        rows.append(row)
    return rows


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")


def dev_holdout_partition(n_test: int, *, dev_fraction: float = 0.5, seed: int = 0) -> np.ndarray:
    """A boolean mask over test: True marks dev (scored for researchers), False holdout."""
    order = np.random.default_rng(seed).permutation(n_test)
    mask = np.zeros(n_test, dtype=bool)
    mask[order[: int(round(n_test * dev_fraction))]] = True
    return mask


def prepare_task(
    task: Task,
    out: Path,
    *,
    seed: int = 0,
    dev_fraction: float = 0.5,
    cache: ArtifactCache | None = None,
    weak_backend: str | None = None,
) -> dict[str, Path]:
    """Write out/lab (labels, dev/holdout partition) and out/public (no labels, weak artifacts)."""
    lab, public = out / "lab", out / "public"
    for path in (lab, public):
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
    meta = task.meta.to_json()
    for directory in (lab, public):
        (directory / "task.json").write_text(json.dumps(meta, indent=2) + "\n")
    for split, filename in SPLIT_FILES.items():
        _write_jsonl(lab / filename, _rows(task, task.split(split), with_labels=True))
        if split != "train_label":
            _write_jsonl(public / filename, _rows(task, task.split(split), with_labels=False))
    mask = dev_holdout_partition(len(task.split("test")), dev_fraction=dev_fraction, seed=seed)
    test_ids = task.split("test").ids
    partition = {"seed": seed, "dev_fraction": dev_fraction,
                 "dev": [rid for rid, dev in zip(test_ids, mask) if dev],
                 "holdout": [rid for rid, dev in zip(test_ids, mask) if not dev]}
    (lab / "partition.json").write_text(json.dumps(partition) + "\n")
    weak_backend = weak_backend or default_backend(task.kind, "weak")
    teacher = weak_teacher(task, seed, cache or ArtifactCache(), backend=weak_backend)
    weak_dir = public / "weak"
    weak_dir.mkdir()
    for split, probs in teacher.soft_labels.items():
        _write_jsonl(weak_dir / f"{split}.jsonl",
                     [{"id": rid, "p": float(p)} for rid, p in zip(task.split(split).ids, probs)])
    np.savez(weak_dir / "model.npz", **teacher.model_arrays)
    (weak_dir / "model.json").write_text(json.dumps(
        {"backend": weak_backend, "seed": seed}) + "\n")
    return {"lab": lab, "public": public}
