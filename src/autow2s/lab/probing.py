"""The probing detector and the coarsened score: what stops researchers reading labels off the scorer.

Attacks it answers (the anchor saw the first two):
- label flipping: resubmit an earlier submission with a few predictions changed and read each
  item's label off the score difference. A submission within `min_changed` items of any earlier
  one by the same researcher on the task is refused and flagged; the refusal depends only on the
  predictions, so it leaks nothing.
- guessing the most frequent answer: a (nearly) constant submission would read the dev class
  balance to the item; it is flagged and its score rounded much more coarsely.
- many large random changes (boosting-style attacks that average over many submissions): the
  reported dev accuracy carries fresh noise of about one standard error of the dev estimate and is
  rounded, and the total budget is bounded relative to the dev size, so the label information
  recoverable within the budget stays small (docs/lab.md has the arithmetic).
"""

from __future__ import annotations

import math
import secrets
import threading
from dataclasses import dataclass

import numpy as np

Key = tuple[int, str]  # researcher id, task


@dataclass(frozen=True)
class Verdict:
    near_duplicate_of: int | None  # evaluation id of the earlier submission it is too close to
    distance: int  # items that differ from the closest earlier submission (n_test if none)
    earlier_reported: float | None
    degenerate: bool

    @property
    def flags(self) -> list[str]:
        flags = []
        if self.near_duplicate_of is not None:
            flags.append("near_duplicate")
        if self.degenerate:
            flags.append("degenerate")
        return flags


class _History:
    """A researcher's earlier submissions on one task as packed bit rows, compared with XOR + popcount."""

    def __init__(self, n_bytes: int) -> None:
        self.rows = np.zeros((16, n_bytes), dtype=np.uint8)
        self.count = 0
        self.evaluation_ids: list[int] = []
        self.reported: list[float] = []

    def nearest(self, packed: np.ndarray) -> tuple[int, int]:
        if self.count == 0:
            return -1, 1 << 30
        distances = np.bitwise_count(np.bitwise_xor(self.rows[: self.count], packed)).sum(axis=1, dtype=np.int64)
        index = int(distances.argmin())
        return index, int(distances[index])

    def add(self, packed: np.ndarray, evaluation_id: int, reported: float) -> None:
        if self.count == len(self.rows):
            self.rows = np.concatenate([self.rows, np.zeros_like(self.rows)])
        self.rows[self.count] = packed
        self.count += 1
        self.evaluation_ids.append(evaluation_id)
        self.reported.append(reported)


class ProbeDetector:
    def __init__(self, *, near_duplicate_fraction: float, near_duplicate_min_items: int, noise_se: float,
                 resolution: float, degenerate_fraction: float, degenerate_resolution: float,
                 noise_seed: int | None = None) -> None:
        self.near_duplicate_fraction = near_duplicate_fraction
        self.near_duplicate_min_items = near_duplicate_min_items
        self.noise_se = noise_se
        self.resolution = resolution
        self.degenerate_fraction = degenerate_fraction
        self.degenerate_resolution = degenerate_resolution
        self._histories: dict[Key, _History] = {}
        self._rng = np.random.default_rng(secrets.randbits(128) if noise_seed is None else noise_seed)
        self._lock = threading.Lock()

    def min_changed(self, n_test: int) -> int:
        return max(self.near_duplicate_min_items, math.ceil(self.near_duplicate_fraction * n_test))

    def check_and_record(self, key: Key, bits: np.ndarray, evaluation_id: int, exact_dev_accuracy: float,
                         n_dev: int) -> tuple[Verdict, float]:
        """Judge a submission; if it is accepted, record it and return its reported accuracy.

        Checking and recording happen under one lock, so two concurrent copies of a submission
        cannot both pass.
        """
        packed = np.packbits(bits)
        degenerate = self.is_degenerate(bits)
        with self._lock:
            history = self._histories.get(key)
            if history is None:
                history = self._histories[key] = _History(len(packed))
            index, distance = history.nearest(packed)
            if distance < self.min_changed(len(bits)):
                return Verdict(history.evaluation_ids[index], distance, history.reported[index], degenerate), float("nan")
            reported = self.coarsen(exact_dev_accuracy, n_dev, degenerate)
            history.add(packed, evaluation_id, reported)
            return Verdict(None, min(distance, len(bits)), None, degenerate), reported

    def identical(self, key: Key, bits: np.ndarray) -> tuple[int, float] | None:
        """(evaluation id, reported accuracy) of an earlier accepted submission with exactly these
        predicted classes, if there is one: it is answered from that evaluation, so resubmitting
        (a deterministic method on several seeds) costs nothing and reveals nothing new."""
        packed = np.packbits(bits)
        with self._lock:
            history = self._histories.get(key)
            if history is None or history.rows.shape[1] != len(packed):
                return None
            index, distance = history.nearest(packed)
            if distance != 0:
                return None
            return history.evaluation_ids[index], history.reported[index]

    def is_degenerate(self, bits: np.ndarray) -> bool:
        positive = float(bits.mean())
        return max(positive, 1.0 - positive) >= self.degenerate_fraction

    def coarsen(self, exact_accuracy: float, n_dev: int, degenerate: bool) -> float:
        """Noise of `noise_se` standard errors (the worst-case one, so it says nothing about the
        accuracy itself), then rounding; degenerate submissions get the coarse grid."""
        noisy = exact_accuracy + float(self._rng.normal()) * self.noise_se * 0.5 / math.sqrt(max(n_dev, 1))
        step = self.degenerate_resolution if degenerate else self.resolution
        if step > 0:
            noisy = round(noisy / step) * step
        return round(min(1.0, max(0.0, noisy)), 6)

    def restore(self, key: Key, packed: bytes, evaluation_id: int, reported: float) -> None:
        """Reload one earlier submission at startup."""
        row = np.frombuffer(packed, dtype=np.uint8)
        with self._lock:
            history = self._histories.get(key)
            if history is None:
                history = self._histories[key] = _History(len(row))
            history.add(row, evaluation_id, reported)

