"""In-memory tasks: splits of inputs with (lab-side only) labels."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from autow2s.testbed.tasks.schema import TaskMeta

SPLITS: tuple[str, ...] = ("train_label", "train_unlabel", "test")


@dataclass
class Split:
    """One split. Features tasks fill strong/weak; text tasks fill rows (labels removed)."""

    ids: list[str]
    labels: np.ndarray | None = None
    strong: np.ndarray | None = None
    weak: np.ndarray | None = None
    rows: list[dict[str, Any]] | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def without_labels(self) -> Split:
        return Split(ids=list(self.ids), labels=None, strong=self.strong, weak=self.weak, rows=self.rows)


@dataclass
class Task:
    """A whole task as the lab sees it. Only the trusted side ever holds one with labels."""

    meta: TaskMeta
    splits: dict[str, Split]
    _fingerprint: str | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.meta.name

    @property
    def kind(self) -> str:
        return self.meta.kind

    def split(self, name: str) -> Split:
        if name not in self.splits:
            raise KeyError(f"task {self.name!r} has no split {name!r}; it has {sorted(self.splits)}")
        return self.splits[name]

    def labels(self, split: str) -> np.ndarray:
        labels = self.split(split).labels
        if labels is None:
            raise ValueError(f"split {split!r} of task {self.name!r} carries no labels")
        return labels

    def fingerprint(self) -> str:
        """A content hash of every split: the cache key's notion of 'the same task'."""
        if self._fingerprint is None:
            digest = hashlib.sha256(repr(self.meta.to_json()).encode())
            for name in sorted(self.splits):
                split = self.splits[name]
                digest.update(name.encode())
                digest.update("\x00".join(split.ids).encode())
                for array in (split.labels, split.strong, split.weak):
                    if array is not None:
                        digest.update(np.ascontiguousarray(array).tobytes())
                if split.rows is not None:
                    digest.update(repr(split.rows).encode())
            self._fingerprint = digest.hexdigest()
        return self._fingerprint


def features_split(ids: list[str], strong: np.ndarray, weak: np.ndarray, labels: np.ndarray | None) -> Split:
    return Split(
        ids=ids,
        strong=np.ascontiguousarray(strong, dtype=np.float32),
        weak=np.ascontiguousarray(weak, dtype=np.float32),
        labels=None if labels is None else np.asarray(labels, dtype=np.int64),
    )
