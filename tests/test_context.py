"""The method contract: nothing reachable from ctx reveals a label."""

from __future__ import annotations

import inspect
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from autow2s.testbed.cache import ArtifactCache
from autow2s.testbed.context import MethodContext
from autow2s.testbed.experiment import ExperimentSettings, build_context
from autow2s.testbed.prepare import prepare_task
from autow2s.testbed.public_run import load_public
from autow2s.testbed.tasks.dataset import Split, Task
from autow2s.testbed.teachers import weak_teacher
from testbed_helpers import small_task

SPLITS = ("train_unlabel", "test")


def _children(obj: Any) -> Iterator[Any]:
    """Everything an object holds: attributes (private too), items, closure cells, bound selves."""
    if isinstance(obj, (types.ModuleType, type, str, bytes, int, float, bool, type(None))):
        return
    if isinstance(obj, dict):
        yield from obj.keys()
        yield from obj.values()
    elif isinstance(obj, (list, tuple, set, frozenset)):
        yield from obj
    if isinstance(obj, types.MethodType):
        yield obj.__self__
        yield obj.__func__
    if isinstance(obj, types.FunctionType):
        for cell in obj.__closure__ or ():
            yield cell.cell_contents
        yield from (obj.__defaults__ or ())
    if hasattr(obj, "__dict__") and not isinstance(obj, types.FunctionType):
        yield from vars(obj).values()
    for slot in getattr(type(obj), "__slots__", ()):
        if hasattr(obj, slot):
            yield getattr(obj, slot)


def _call_public_api(ctx: MethodContext) -> list[Any]:
    """Call every public method of ctx, and of what it hands out, with each split."""
    results: list[Any] = []
    for name in dir(ctx):
        if name.startswith("_"):
            continue
        member = getattr(ctx, name)
        results.append(member)
        if not callable(member):
            continue
        params = [p for p in inspect.signature(member).parameters.values()
                  if p.default is p.empty and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
        if not params:
            results.append(member())
        elif len(params) == 1:
            results.extend(member(split) for split in SPLITS)
    weak = ctx.weak_model()
    results.extend(weak.predict_proba(split) for split in SPLITS)
    student = ctx.strong_model()
    results.append(student.features(ctx.inputs("test")))
    student.fit(ctx.inputs("train_unlabel"), ctx.weak_soft_labels("train_unlabel"))
    results.extend([student.predict_proba(ctx.inputs("test")), student.state_arrays()])
    return results


def _assert_no_label_reachable(roots: list[Any], task: Task) -> int:
    labels = {name: task.labels(name) for name in task.splits}
    seen: set[int] = set()
    stack = list(roots)
    visited = 0
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        visited += 1
        assert not isinstance(obj, Task), "a Task object is reachable from ctx"
        if isinstance(obj, Split):
            assert obj.labels is None, "a Split with labels is reachable from ctx"
        if isinstance(obj, np.ndarray) and obj.ndim == 1:
            for name, truth in labels.items():
                if obj.shape == truth.shape:
                    agreement = np.mean((obj >= 0.5) == truth) if obj.dtype != bool else np.mean(obj == truth)
                    assert agreement < 0.95, f"an array agreeing {agreement:.0%} with {name} labels is reachable"
        if isinstance(obj, dict):
            assert "label" not in obj and "labels" not in obj, "a dict with a 'label' key is reachable"
        stack.extend(_children(obj))
    return visited


def test_nothing_reachable_from_the_experiment_ctx_is_a_label(tmp_path: Path) -> None:
    task = small_task()
    teacher = weak_teacher(task, 1, ArtifactCache(tmp_path))
    ctx = build_context(task, teacher, 1, ExperimentSettings())
    roots = [ctx, *_call_public_api(ctx)]
    assert _assert_no_label_reachable(roots, task) > 50


def test_the_walk_catches_a_planted_label(tmp_path: Path) -> None:
    task = small_task()
    teacher = weak_teacher(task, 1, ArtifactCache(tmp_path))
    ctx = build_context(task, teacher, 1, ExperimentSettings())
    ctx._oops = {"cache": [task.labels("test").astype(float)]}
    try:
        _assert_no_label_reachable([ctx], task)
    except AssertionError as exc:
        assert "test labels" in str(exc)
    else:
        raise AssertionError("the walk missed a planted label array")


def test_public_view_has_no_labels_and_still_runs_a_method(tmp_path: Path) -> None:
    task = small_task()
    paths = prepare_task(task, tmp_path / "prepared", cache=ArtifactCache(tmp_path / "cache"))
    public = paths["public"]
    assert not (public / "train_label.jsonl").exists()
    for path in public.rglob("*.jsonl"):
        assert '"label"' not in path.read_text(), f"{path} carries labels"
    public_task, teacher = load_public(public)
    ctx = build_context(public_task, teacher, 1, ExperimentSettings())
    assert _assert_no_label_reachable_public(ctx) > 50


def _assert_no_label_reachable_public(ctx: MethodContext) -> int:
    # The public task has no labels at all; any Split reachable must say so.
    seen: set[int] = set()
    stack: list[Any] = [ctx, *_call_public_api(ctx)]
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, Split):
            assert obj.labels is None
        stack.extend(_children(obj))
    return len(seen)


def test_time_left_is_the_sooner_of_the_methods_budget_and_the_jobs_wall_limit(tmp_path: Path, monkeypatch) -> None:
    from autow2s.testbed.job_clock import JOB_DEADLINE_ENV, deadline_env

    task = small_task()
    teacher = weak_teacher(task, 1, ArtifactCache(tmp_path))
    monkeypatch.delenv(JOB_DEADLINE_ENV, raising=False)
    ctx = build_context(task, teacher, 1, ExperimentSettings(time_budget_s=600.0))
    assert 590 < ctx.time_left() <= 600  # outside a sandboxed job: the method's own budget
    monkeypatch.setenv(JOB_DEADLINE_ENV, deadline_env(300.0)[JOB_DEADLINE_ENV])
    assert 290 < ctx.time_left() <= 300  # a research job is killed at 300 s: that is what is left
    short = build_context(task, teacher, 1, ExperimentSettings(time_budget_s=60.0))
    assert short.time_left() <= 60
