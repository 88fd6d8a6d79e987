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
from sqlalchemy import Connection, select

from autow2s.lab.models import Evaluation


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


class History:
    """A researcher's accepted submissions on one task, as packed bit rows compared with XOR + popcount.

    Read from the evaluations table inside the scoring transaction (History.load), so every lab
    worker judges a submission against the same history.
    """

    def __init__(self, rows: np.ndarray, evaluation_ids: list[int], reported: list[float]) -> None:
        self.rows = rows
        self.evaluation_ids = evaluation_ids
        self.reported = reported

    @classmethod
    def load(cls, conn: Connection, researcher_id: int, task: str, n_bytes: int) -> History:
        found = conn.execute(select(Evaluation.id, Evaluation.pred_bits, Evaluation.reported_accuracy)
                             .where(Evaluation.researcher_id == researcher_id, Evaluation.task == task)
                             .order_by(Evaluation.id)).all()
        rows = np.zeros((len(found), n_bytes), dtype=np.uint8)
        for index, (_, bits, _) in enumerate(found):
            rows[index] = np.frombuffer(bits, dtype=np.uint8)
        return cls(rows, [int(r[0]) for r in found], [float(r[2]) for r in found])

    def nearest(self, packed: np.ndarray) -> tuple[int, int]:
        """(index, number of differing items) of the closest earlier submission; (-1, huge) if none."""
        if not self.evaluation_ids:
            return -1, 1 << 30
        distances = np.bitwise_count(np.bitwise_xor(self.rows, packed)).sum(axis=1, dtype=np.int64)
        index = int(distances.argmin())
        return index, int(distances[index])


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
        self._rng = np.random.default_rng(secrets.randbits(128) if noise_seed is None else noise_seed)
        self._rng_lock = threading.Lock()

    def min_changed(self, n_test: int) -> int:
        return max(self.near_duplicate_min_items, math.ceil(self.near_duplicate_fraction * n_test))

    def judge(self, history: History, bits: np.ndarray, exact_dev_accuracy: float, n_dev: int) -> tuple[Verdict, float]:
        """Judge a submission against the history; if it is accepted, its coarsened accuracy.

        The caller holds the researcher's lock (lab/budgets.py), so two concurrent copies of a
        submission cannot both pass, whichever workers they reach.
        """
        degenerate = self.is_degenerate(bits)
        index, distance = history.nearest(np.packbits(bits))
        if distance < self.min_changed(len(bits)):
            return Verdict(history.evaluation_ids[index], distance, history.reported[index], degenerate), float("nan")
        return Verdict(None, min(distance, len(bits)), None, degenerate), self.coarsen(exact_dev_accuracy, n_dev, degenerate)

    @staticmethod
    def identical(history: History, bits: np.ndarray) -> tuple[int, float] | None:
        """(evaluation id, reported accuracy) of an earlier accepted submission with exactly these
        predicted classes, if there is one: it is answered from that evaluation, so resubmitting
        (a deterministic method on several seeds) costs nothing and reveals nothing new."""
        index, distance = history.nearest(np.packbits(bits))
        if distance != 0:
            return None
        return history.evaluation_ids[index], history.reported[index]

    def is_degenerate(self, bits: np.ndarray) -> bool:
        positive = float(bits.mean())
        return max(positive, 1.0 - positive) >= self.degenerate_fraction

    def coarsen(self, exact_accuracy: float, n_dev: int, degenerate: bool) -> float:
        """Noise of `noise_se` standard errors (the worst-case one, so it says nothing about the
        accuracy itself), then rounding; degenerate submissions get the coarse grid."""
        with self._rng_lock:
            draw = float(self._rng.normal())
        noisy = exact_accuracy + draw * self.noise_se * 0.5 / math.sqrt(max(n_dev, 1))
        step = self.degenerate_resolution if degenerate else self.resolution
        if step > 0:
            noisy = round(noisy / step) * step
        return round(min(1.0, max(0.0, noisy)), 6)
