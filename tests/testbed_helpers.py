"""Small tasks for fast testbed tests (same generators as the presets, fewer rows)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from autow2s.testbed.tasks.dataset import Task
from autow2s.testbed.tasks.registry import PRESETS
from autow2s.testbed.tasks.synthetic import generate

SMALL = {"n_train_label": 300, "n_train_unlabel": 1200, "n_test": 600}


def small_task(preset: str = "synth-linear", **knobs: Any) -> Task:
    return generate(preset, PRESETS[preset].with_overrides(**(SMALL | knobs)))


def write_task_dir(path: Path, kind: str, splits: dict[str, list[Any]], name: str = "t") -> Path:
    """Write task.json and the three jsonl files; rows may be dicts or raw strings (for bad lines)."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "task.json").write_text(json.dumps({"name": name, "kind": kind}))
    for split, rows in splits.items():
        lines = [row if isinstance(row, str) else json.dumps(row) for row in rows]
        (path / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    return path


def features_rows(n: int, start: int = 0, label: bool = True) -> list[dict[str, Any]]:
    rows = []
    for i in range(start, start + n):
        row: dict[str, Any] = {"id": i, "strong_features": [float(i), 1.0, -1.0], "weak_features": [float(i % 3)]}
        if label:
            row["label"] = i % 2
        rows.append(row)
    return rows
