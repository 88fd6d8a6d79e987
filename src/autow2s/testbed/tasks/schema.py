"""Row validation for the task format (README.md, "Tasks") (compatible with the anchor's jsonl files)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

TaskKind = Literal["binary", "pairwise", "features"]
TASK_KINDS: tuple[str, ...] = ("binary", "pairwise", "features")
SPLIT_FILES: dict[str, str] = {
    "train_label": "train_label.jsonl",
    "train_unlabel": "train_unlabel.jsonl",
    "test": "test.jsonl",
}


@dataclass(frozen=True)
class TaskMeta:
    """What task.json says about a task."""

    name: str
    kind: str
    description: str = ""
    source: str = ""
    # True when a label can be computed from the input (run the code, do the arithmetic): such a
    # task is not a fair research task, since a method can skip the weak supervisor altogether.
    labels_computable: bool = False

    @classmethod
    def from_json(cls, data: Any) -> TaskMeta:
        if not isinstance(data, dict):
            raise ValueError("task.json must hold a JSON object")
        name = data.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError("task.json: 'name' must be a non-empty string")
        kind = data.get("kind")
        if kind not in TASK_KINDS:
            raise ValueError(f"task.json: 'kind' must be one of {', '.join(TASK_KINDS)}, got {kind!r}")
        for key in ("description", "source"):
            if key in data and not isinstance(data[key], str):
                raise ValueError(f"task.json: '{key}' must be a string")
        computable = data.get("labels_computable", False)
        if not isinstance(computable, bool):
            raise ValueError(f"task.json: 'labels_computable' must be true or false, got {computable!r}")
        return cls(name=name, kind=kind, description=data.get("description", ""), source=data.get("source", ""),
                   labels_computable=computable)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "kind": self.kind, "description": self.description,
                               "source": self.source}
        if self.labels_computable:
            out["labels_computable"] = True
        return out


def _check_id(row: dict[str, Any]) -> str:
    if "id" not in row:
        raise ValueError("missing field 'id'")
    rid = row["id"]
    if isinstance(rid, bool) or not isinstance(rid, (str, int)):
        raise ValueError(f"field 'id' must be a string or integer, got {type(rid).__name__}")
    return str(rid)


def _check_str(row: dict[str, Any], key: str) -> None:
    if key not in row:
        raise ValueError(f"missing field '{key}'")
    if not isinstance(row[key], str):
        raise ValueError(f"field '{key}' must be a string, got {type(row[key]).__name__}")


def _finite_sum(values: list[float]) -> bool:
    try:
        return math.isfinite(sum(values))  # inf - inf is NaN; an overflow only sends finite rows to the slow path
    except OverflowError:  # an int too large for a float
        return False


def _check_vector(row: dict[str, Any], key: str) -> list[float]:
    if key not in row:
        raise ValueError(f"missing field '{key}'")
    vec = row[key]
    if not isinstance(vec, list) or not vec:
        raise ValueError(f"field '{key}' must be a non-empty list of numbers")
    # Fast path (task loading checks ~10^6 numbers): only ints and floats, and a finite sum means no inf
    # or NaN among them. Anything else goes through the loop below, which names the offending item.
    if set(map(type, vec)) <= {float, int} and _finite_sum(vec):
        return vec
    for i, value in enumerate(vec):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"field '{key}[{i}]' must be a number, got {value!r}")
        if not _finite_sum([value]):
            raise ValueError(f"field '{key}[{i}]' is not finite ({str(value)[:40]})")
    return vec


def parse_label(kind: str, value: Any) -> int:
    """Normalise a row's label to 0/1 (True, 'B' and 1 are the positive class)."""
    if kind == "binary":
        if isinstance(value, bool):
            return int(value)
        raise ValueError(f"field 'label' must be true or false for a binary task, got {value!r}")
    if kind == "pairwise":
        if value in ("A", "B"):
            return int(value == "B")
        raise ValueError(f"field 'label' must be \"A\" or \"B\" for a pairwise task, got {value!r}")
    if isinstance(value, bool) or value not in (0, 1):
        raise ValueError(f"field 'label' must be 0 or 1 for a features task, got {value!r}")
    return int(value)


def validate_row(kind: str, row: Any, *, need_label: bool) -> tuple[str, int | None]:
    """Check one row; return its id and its 0/1 label (None when absent). Raises ValueError."""
    if not isinstance(row, dict):
        raise ValueError(f"each line must be a JSON object, got {type(row).__name__}")
    rid = _check_id(row)
    if kind == "binary":
        _check_str(row, "question")
        _check_str(row, "choice")
    elif kind == "pairwise":
        for key in ("prompt", "first", "second"):
            _check_str(row, key)
    else:
        _check_vector(row, "strong_features")
        _check_vector(row, "weak_features")
    if "label" not in row or row["label"] is None:
        if need_label:
            raise ValueError("missing field 'label'")
        return rid, None
    return rid, parse_label(kind, row["label"])
