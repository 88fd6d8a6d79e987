"""The probing detector and the coarsened score: what stops researchers reading labels off the scorer.

Attacks it answers (the anchor saw the first two):
- label flipping: resubmit an earlier submission with a few predictions changed and read each
  item's label off the score difference. A submission within `min_changed` items of any earlier
  one on the task, by any researcher (so colluders cannot flip between them), is refused and
  flagged; the refusal depends only on the predictions, so it leaks nothing.
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
    earlier_researcher: int | None = None  # who made the earlier submission

    @property
    def flags(self) -> list[str]:
        flags = []
        if self.near_duplicate_of is not None:
            flags.append("near_duplicate")
        if self.degenerate:
            flags.append("degenerate")
        return flags


class History:
    """Every researcher's accepted submissions on one task, as packed bit rows compared with XOR + popcount.

    All researchers' rows, not only the submitter's: otherwise two colluding researchers could
    flip labels between them (one submits, the other resubmits with an item changed). Read under
    the task's lock inside the scoring transaction (HistoryCache.read), so every lab worker judges
    a submission against the same history.
    """

    def __init__(self, rows: np.ndarray, evaluation_ids: list[int], researcher_ids: list[int],
                 reported: list[float]) -> None:
        self.rows = rows
        self.evaluation_ids = evaluation_ids
        self.researcher_ids = researcher_ids
        self.reported = reported

    @classmethod
    def empty(cls, n_bytes: int) -> History:
        return cls(np.zeros((0, n_bytes), dtype=np.uint8), [], [], [])

    @property
    def last_id(self) -> int:
        return self.evaluation_ids[-1] if self.evaluation_ids else 0

    def extended(self, later: History) -> History:
        if not later.evaluation_ids:
            return self
        return History(np.concatenate([self.rows, later.rows]), self.evaluation_ids + later.evaluation_ids,
                       self.researcher_ids + later.researcher_ids, self.reported + later.reported)

    def nearest(self, packed: np.ndarray) -> tuple[int, int]:
        """(index, number of differing items) of the closest earlier submission; (-1, huge) if none."""
        if not self.evaluation_ids:
            return -1, 1 << 30
        distances = np.bitwise_count(np.bitwise_xor(self.rows, packed)).sum(axis=1, dtype=np.int64)
        index = int(distances.argmin())
        return index, int(distances[index])


class HistoryCache:
    """The committed part of each task's history, kept in this process; only newer rows are read per request.

    Sound because evaluations of one task are inserted under the task's lock (lab/budgets.py
    lock_task): when a reader holds it, every row of the task with a smaller id is committed. A
    transaction's delta is merged only after it commits (`merge`), so a rolled-back row never
    enters the cache.
    """

    def __init__(self) -> None:
        self._tasks: dict[str, History] = {}
        self._lock = threading.Lock()

    def read(self, conn: Connection, task: str, n_bytes: int) -> tuple[History, History]:
        """(the whole history, the rows read from the database now); call with the task locked."""
        with self._lock:
            cached = self._tasks.get(task) or History.empty(n_bytes)
        found = conn.execute(select(Evaluation.id, Evaluation.researcher_id, Evaluation.pred_bits,
                                    Evaluation.reported_accuracy)
                             .where(Evaluation.task == task, Evaluation.id > cached.last_id)
                             .order_by(Evaluation.id)).all()
        rows = np.zeros((len(found), n_bytes), dtype=np.uint8)
        for index, row in enumerate(found):
            rows[index] = np.frombuffer(row.pred_bits, dtype=np.uint8)
        delta = History(rows, [int(r.id) for r in found], [int(r.researcher_id) for r in found],
                        [float(r.reported_accuracy) for r in found])
        return cached.extended(delta), delta

    def merge(self, task: str, delta: History) -> None:
        """Add a committed transaction's delta (rows the cache already has are skipped)."""
        with self._lock:
            cached = self._tasks.get(task) or History.empty(delta.rows.shape[1])
            keep = [i for i, evaluation_id in enumerate(delta.evaluation_ids) if evaluation_id > cached.last_id]
            if keep:
                self._tasks[task] = cached.extended(History(
                    delta.rows[keep], [delta.evaluation_ids[i] for i in keep],
                    [delta.researcher_ids[i] for i in keep], [delta.reported[i] for i in keep]))


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

        The caller holds the task's lock (lab/budgets.py lock_task), so two concurrent copies of a
        submission cannot both pass, whichever workers they reach.
        """
        degenerate = self.is_degenerate(bits)
        index, distance = history.nearest(np.packbits(bits))
        if distance < self.min_changed(len(bits)):
            return Verdict(history.evaluation_ids[index], distance, history.reported[index], degenerate,
                           history.researcher_ids[index]), float("nan")
        return Verdict(None, min(distance, len(bits)), None, degenerate), self.coarsen(exact_dev_accuracy, n_dev, degenerate)

    @staticmethod
    def identical(history: History, bits: np.ndarray, researcher_id: int) -> int | None:
        """The history index of an earlier accepted submission, by anyone, with exactly these predicted
        classes (the researcher's own first, so repeating never adds rows): the answer is that
        evaluation's, so resubmitting (a deterministic method on several seeds, or a baseline another
        researcher ran too) costs nothing and reveals nothing new."""
        if not history.evaluation_ids:
            return None
        same = np.flatnonzero(~np.bitwise_xor(history.rows, np.packbits(bits)).any(axis=1))
        if not len(same):
            return None
        own = [int(i) for i in same if history.researcher_ids[i] == researcher_id]
        return own[0] if own else int(same[0])

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
