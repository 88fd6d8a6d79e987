"""Load a task directory (task.json + three jsonl files), validating every row."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from autow2s.errors import TaskFormatError
from autow2s.testbed.tasks.dataset import Split, Task
from autow2s.testbed.tasks.schema import SPLIT_FILES, TaskMeta, validate_row

MAX_REPORTED_ERRORS = 10


def read_meta(task_dir: Path) -> TaskMeta:
    path = task_dir / "task.json"
    if not path.is_file():
        raise TaskFormatError(f"{path}: missing; a task directory needs task.json (the task format: README.md, 'Tasks')")
    try:
        return TaskMeta.from_json(json.loads(path.read_text()))
    except json.JSONDecodeError as exc:
        raise TaskFormatError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from None
    except ValueError as exc:
        raise TaskFormatError(f"{path}: {exc}") from None


def _read_jsonl(path: Path, kind: str, *, need_label: bool) -> tuple[list[str], list[int | None], list[dict[str, Any]]]:
    ids: list[str] = []
    labels: list[int | None] = []
    rows: list[dict[str, Any]] = []
    errors: list[str] = []
    seen: dict[str, int] = {}
    dims: dict[str, int] = {}
    with path.open(encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                rid, label = validate_row(kind, row, need_label=need_label)
                if rid in seen:
                    raise ValueError(f"duplicate id {rid!r} (first seen on line {seen[rid]})")
                if kind == "features":
                    for key in ("strong_features", "weak_features"):
                        expected = dims.setdefault(key, len(row[key]))
                        if len(row[key]) != expected:
                            raise ValueError(f"field '{key}' has {len(row[key])} values; earlier rows have {expected}")
            except json.JSONDecodeError as exc:
                errors.append(f"{path}:{lineno}: invalid JSON ({exc.msg} at column {exc.colno})")
            except ValueError as exc:
                errors.append(f"{path}:{lineno}: {exc}")
            else:
                seen[rid] = lineno
                ids.append(rid)
                labels.append(label)
                rows.append(row)
            if len(errors) >= MAX_REPORTED_ERRORS:
                break
    if errors:
        more = " (stopped at the first 10)" if len(errors) >= MAX_REPORTED_ERRORS else ""
        raise TaskFormatError("; ".join(errors) + more)
    if not ids:
        raise TaskFormatError(f"{path}: no rows; each split needs at least one")
    return ids, labels, rows


def _to_split(kind: str, ids: list[str], labels: list[int | None], rows: list[dict[str, Any]]) -> Split:
    label_array = None if any(label is None for label in labels) else np.asarray(labels, dtype=np.int64)
    if kind == "features":
        return Split(
            ids=ids,
            labels=label_array,
            strong=np.asarray([row["strong_features"] for row in rows], dtype=np.float32),
            weak=np.asarray([row["weak_features"] for row in rows], dtype=np.float32),
        )
    public_rows = [{key: value for key, value in row.items() if key != "label"} for row in rows]
    return Split(ids=ids, labels=label_array, rows=public_rows)


def load_task_dir(task_dir: str | Path, *, require_labels: bool = True) -> Task:
    """Read and validate a task directory. Public views (labels stripped) pass require_labels=False."""
    task_dir = Path(task_dir)
    if not task_dir.is_dir():
        raise TaskFormatError(f"{task_dir}: not a directory; pass a registered task name or a task directory")
    meta = read_meta(task_dir)
    splits: dict[str, Split] = {}
    for split, filename in SPLIT_FILES.items():
        path = task_dir / filename
        if not path.is_file():
            if split == "train_label" and not require_labels:
                continue
            raise TaskFormatError(f"{path}: missing; a task directory needs {', '.join(SPLIT_FILES.values())}")
        need_label = require_labels and split != "train_unlabel"
        splits[split] = _to_split(meta.kind, *_read_jsonl(path, meta.kind, need_label=need_label))
    if meta.kind == "features":
        _check_dims_agree(task_dir, splits)
    return Task(meta=meta, splits=splits)


def _check_dims_agree(task_dir: Path, splits: dict[str, Split]) -> None:
    for attr in ("strong", "weak"):
        widths = {name: getattr(split, attr).shape[1] for name, split in splits.items()}
        if len(set(widths.values())) > 1:
            raise TaskFormatError(
                f"{task_dir}: '{attr}_features' has a different length in each split ({widths}); they must agree"
            )
