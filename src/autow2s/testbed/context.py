"""The method contract: what `run(ctx)` may see. ctx is built from a label-free view only."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from autow2s.errors import AutoW2SError
from autow2s.testbed.job_clock import job_seconds_left
from autow2s.testbed.models.base import Student

PUBLIC_SPLITS: tuple[str, ...] = ("train_unlabel", "test")


@dataclass(frozen=True)
class TaskInfo:
    """Public metadata about the task a method runs on."""

    name: str
    kind: str
    description: str
    sizes: dict[str, int]
    strong_dim: int | None
    weak_dim: int | None


@dataclass(frozen=True)
class PublicSplit:
    """Inputs of one split with labels stripped, and the weak teacher's soft labels on it."""

    strong_inputs: Any
    weak_inputs: Any
    weak_soft_labels: np.ndarray


class WeakModel:
    """The trained weak teacher, usable on the weak view of any public split."""

    def __init__(self, predict: Callable[[Any], np.ndarray], splits: dict[str, PublicSplit]) -> None:
        self._predict = predict
        self._splits = splits

    def predict_proba(self, split_or_inputs: str | Any) -> np.ndarray:
        if isinstance(split_or_inputs, str):
            if split_or_inputs not in self._splits:
                raise AutoW2SError(f"unknown split {split_or_inputs!r}; use one of {list(self._splits)}")
            split_or_inputs = self._splits[split_or_inputs].weak_inputs
        return self._predict(split_or_inputs)


class MethodContext:
    """Everything a method may use. Holds no labels, by construction (see tests/test_context.py)."""

    def __init__(
        self,
        *,
        task: TaskInfo,
        splits: dict[str, PublicSplit],
        weak_predict: Callable[[Any], np.ndarray],
        make_student: Callable[..., Student],
        seed: int,
        time_budget_s: float = 600.0,
    ) -> None:
        self.task = task
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.time_budget_s = time_budget_s
        self.metrics: list[dict[str, Any]] = []
        self._splits = splits
        self._weak = WeakModel(weak_predict, splits)
        self._make_student = make_student
        self._started = time.monotonic()
        self._students_made = 0

    def _split(self, split: str) -> PublicSplit:
        if split not in self._splits:
            raise AutoW2SError(f"unknown split {split!r}; methods see {', '.join(self._splits)}")
        return self._splits[split]

    def inputs(self, split: str) -> Any:
        """The strong model's inputs for a split ('train_unlabel' or 'test')."""
        return self._split(split).strong_inputs

    def weak_inputs(self, split: str) -> Any:
        """The weak model's view of a split."""
        return self._split(split).weak_inputs

    def weak_soft_labels(self, split: str) -> np.ndarray:
        """The weak teacher's P(label = 1) on a split (a copy: edit it freely)."""
        return np.array(self._split(split).weak_soft_labels, dtype=np.float64, copy=True)

    def weak_model(self) -> WeakModel:
        return self._weak

    def strong_model(self, **hparams: Any) -> Student:
        """A fresh, untrained strong student. Each call gets its own derived seed."""
        seed = hparams.pop("seed", None)
        if seed is None:
            seed = self.seed * 1000 + self._students_made
        self._students_made += 1
        return self._make_student(seed=seed, **hparams)

    def log(self, **metrics: Any) -> None:
        self.metrics.append(dict(metrics))

    def time_left(self) -> float:
        """Seconds left: the method's own budget, or less when the sandbox will kill the job sooner."""
        own = self.time_budget_s - (time.monotonic() - self._started)
        job = job_seconds_left()
        return own if job is None else min(own, job)
