"""The task loader validates every row and names file:line for anything malformed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from autow2s.errors import TaskFormatError
from autow2s.testbed.tasks.loader import load_task_dir
from testbed_helpers import features_rows, write_task_dir


def _features_dir(tmp_path: Path, bad_test_line: str | None = None) -> Path:
    test_rows: list = features_rows(4, start=100)
    if bad_test_line is not None:
        test_rows.insert(2, bad_test_line)
    return write_task_dir(tmp_path / "task", "features", {
        "train_label": features_rows(6), "train_unlabel": features_rows(8, start=10), "test": test_rows,
    })


def test_valid_features_task_loads_with_arrays(tmp_path: Path) -> None:
    task = load_task_dir(_features_dir(tmp_path))
    test = task.split("test")
    assert test.strong.shape == (4, 3) and test.weak.shape == (4, 1)
    assert test.labels.tolist() == [0, 1, 0, 1]
    assert test.ids == ["100", "101", "102", "103"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "invalid JSON"),
        ('[1, 2]', "must be a JSON object"),
        (json.dumps({"id": 9, "weak_features": [1.0], "label": 0}), "missing field 'strong_features'"),
        (json.dumps({"id": 9, "strong_features": [1, 2, 3], "weak_features": [1.0], "label": 2}), "must be 0 or 1"),
        (json.dumps({"id": 9, "strong_features": [1, 2], "weak_features": [1.0], "label": 0}), "has 2 values"),
        ('{"id": 9, "strong_features": [1, NaN, 3], "weak_features": [1.0], "label": 0}', "not finite"),
        ('{"id": 9, "strong_features": [1, Infinity, -Infinity], "weak_features": [1.0], "label": 0}',
         "'strong_features[1]' is not finite"),
        ('{"id": 9, "strong_features": [1, 1' + "0" * 400 + ', 3], "weak_features": [1.0], "label": 0}',
         "'strong_features[1]' is not finite"),
        (json.dumps({"id": 9, "strong_features": [1, True, 3], "weak_features": [1.0], "label": 0}),
         "'strong_features[1]' must be a number, got True"),
        (json.dumps({"id": 9, "strong_features": [1, "x", 3], "weak_features": [1.0], "label": 0}), "must be a number"),
        (json.dumps({"id": 100, "strong_features": [1, 2, 3], "weak_features": [1.0], "label": 0}), "duplicate id"),
        (json.dumps({"strong_features": [1, 2, 3], "weak_features": [1.0], "label": 0}), "missing field 'id'"),
        (json.dumps({"id": 9, "strong_features": [1, 2, 3], "weak_features": [1.0]}), "missing field 'label'"),
    ],
)
def test_malformed_row_is_reported_with_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    task_dir = _features_dir(tmp_path, bad_test_line=line)
    with pytest.raises(TaskFormatError) as info:
        load_task_dir(task_dir)
    text = str(info.value)
    assert f"{task_dir / 'test.jsonl'}:3:" in text
    assert message in text


def test_binary_and_pairwise_rows_in_the_anchor_format(tmp_path: Path) -> None:
    binary = [{"id": f"b{i}", "question": "2+2?", "choice": str(i), "label": i == 4} for i in range(6)]
    task = load_task_dir(write_task_dir(tmp_path / "bin", "binary", {
        "train_label": binary, "train_unlabel": binary, "test": binary}))
    assert task.labels("test").tolist() == [0, 0, 0, 0, 1, 0]
    assert all("label" not in row for row in task.split("test").rows)

    pairwise = [{"id": i, "prompt": "p", "first": "a", "second": "b", "label": "AB"[i % 2]} for i in range(4)]
    task = load_task_dir(write_task_dir(tmp_path / "pair", "pairwise", {
        "train_label": pairwise, "train_unlabel": pairwise, "test": pairwise}))
    assert task.labels("test").tolist() == [0, 1, 0, 1]


def test_wrong_label_type_for_kind_is_named(tmp_path: Path) -> None:
    rows = [{"id": 1, "prompt": "p", "first": "a", "second": "b", "label": True}]
    task_dir = write_task_dir(tmp_path / "pair", "pairwise", {"train_label": rows, "train_unlabel": rows, "test": rows})
    with pytest.raises(TaskFormatError, match=r'train_label.jsonl:1: field .label. must be "A" or "B"'):
        load_task_dir(task_dir)


def test_task_json_problems_are_explained(tmp_path: Path) -> None:
    task_dir = _features_dir(tmp_path)
    (task_dir / "task.json").write_text(json.dumps({"name": "x", "kind": "images"}))
    with pytest.raises(TaskFormatError, match="'kind' must be one of binary, pairwise, features"):
        load_task_dir(task_dir)
    (task_dir / "task.json").unlink()
    with pytest.raises(TaskFormatError, match=r"task\.json: missing"):
        load_task_dir(task_dir)


def test_missing_split_and_dimension_mismatch_across_files(tmp_path: Path) -> None:
    task_dir = _features_dir(tmp_path)
    rows = [{"id": i, "strong_features": [1.0, 2.0], "weak_features": [1.0], "label": 0} for i in range(3)]
    (task_dir / "test.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    with pytest.raises(TaskFormatError, match="different length in each split"):
        load_task_dir(task_dir)
    (task_dir / "test.jsonl").unlink()
    with pytest.raises(TaskFormatError, match=r"test\.jsonl: missing"):
        load_task_dir(task_dir)


def test_public_view_loads_without_labels(tmp_path: Path) -> None:
    task_dir = write_task_dir(tmp_path / "pub", "features", {
        "train_unlabel": features_rows(5, label=False), "test": features_rows(3, start=50, label=False)})
    task = load_task_dir(task_dir, require_labels=False)
    assert task.split("test").labels is None
    assert np.isfinite(task.split("train_unlabel").strong).all()
    with pytest.raises(TaskFormatError, match=r"train_label\.jsonl: missing"):
        load_task_dir(task_dir)
