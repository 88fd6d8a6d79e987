"""The probing detector and the coarsened score: what stops researchers reading labels off the scorer.

Attacks it answers (the anchor saw the first two):
- label flipping: resubmit an earlier submission with a few predictions changed and read each
  item's label off the score difference. A submission within `min_changed` items of one of the
  researcher's own earlier ones is answered with that earlier evaluation's figure, free and not
  flagged: the attacker learns nothing new, and an honest ablation learns that its change did nothing
  the lab can measure. Within `min_changed` items of another researcher's, it is refused and flagged
  (colluders cannot flip between them). Either way the answer depends only on the predictions and
  figures already given, so it leaks nothing. What is flagged is a pattern: near-duplicates of many
  different earlier evaluations in a short window (`pattern_size`), the signature of someone trying
  flips against base after base.
- guessing the most frequent answer: a (nearly) constant submission would read the dev class
  balance to the item; it is flagged and its score rounded much more coarsely.
- many large random changes (boosting-style attacks that average over many submissions): the
  reported dev accuracy carries fresh noise of about one standard error of the dev estimate and is
  rounded, and the total budget is bounded relative to the dev size, so the label information
  recoverable within the budget stays small (docs/lab.md has the arithmetic).
"""

from __future__ import annotations

import bisect
import math
import secrets
import threading
from dataclasses import dataclass

import numpy as np
from sqlalchemy import Connection, bindparam, func, select

from autow2s.lab.db import db_epoch
from autow2s.lab.models import AuditEntry, Evaluation

NEAR_DUPLICATE_OUTCOME = "near_duplicate"  # the audit outcome of a near-duplicate answered from an earlier figure
PATTERN_WINDOW_S = 600.0
PATTERN_MIN_EVALUATIONS = 5  # near-duplicates of this many different evaluations within the window are flagged


@dataclass(frozen=True)
class Verdict:
    near_duplicate_of: int | None  # evaluation id of the earlier submission it is too close to
    distance: int  # items that differ from the closest earlier submission (n_test when none is near)
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
    """Researchers' accepted submissions on one task, as packed bit rows compared with XOR + popcount.

    All researchers' rows, not only the submitter's: otherwise two colluding researchers could
    flip labels between them (one submits, the other resubmits with an item changed). A History
    accounts for every row of the task up to evaluation `covered_to`: it holds them all, or, when
    `limit` is set, only those within `limit` items of one submission (HistoryCache.candidates), the
    rest being known to be farther. Completed under the task's lock inside the scoring transaction
    (HistoryCache.read), so every lab worker judges a submission against the same history.
    """

    def __init__(self, blocks: list[np.ndarray], evaluation_ids: list[int], researcher_ids: list[int],
                 reported: list[float], *, covered_to: int | None = None, limit: int | None = None) -> None:
        self.blocks = blocks
        self.evaluation_ids = evaluation_ids
        self.researcher_ids = researcher_ids
        self.reported = reported
        self.covered_to = covered_to if covered_to is not None else (evaluation_ids[-1] if evaluation_ids else 0)
        self.limit = limit  # None: every row is here; else only those within `limit` items of one submission
        self._last: tuple[bytes, int, list[tuple[int, int]]] | None = None  # close_to's last answer, to filter

    @classmethod
    def empty(cls) -> History:
        return cls([], [], [], [])

    def extended(self, later: History) -> History:
        """This history and the rows after it (`later` holds every row after covered_to)."""
        return History(self.blocks + later.blocks, self.evaluation_ids + later.evaluation_ids,
                       self.researcher_ids + later.researcher_ids, self.reported + later.reported,
                       covered_to=max(self.covered_to, later.covered_to), limit=self.limit)

    def close_to(self, packed: np.ndarray, limit: int) -> list[tuple[int, int]]:
        """(index, number of differing items) of every row that differs from `packed` in fewer than `limit` items.

        A row's distance on a prefix of the bytes is at most its whole distance, so only the rows
        whose prefix differs in fewer than `limit` bits are compared in full: exact, and about eight
        times cheaper than comparing every row in full, which matters once many researchers share a task.
        """
        if self.limit is not None and limit > self.limit:
            raise ValueError(f"this history holds only the rows within {self.limit} items of one submission")
        key = packed.tobytes()  # one submission is checked several ways (identical, near-duplicate): compare it once
        if self._last is not None and self._last[0] == key and limit <= self._last[1]:
            return [(index, distance) for index, distance in self._last[2] if distance < limit]
        asked, limit = limit, max(limit, self.limit or 0)
        close = self._compare(packed, limit)
        self._last = (key, limit, close)
        return [(index, distance) for index, distance in close if distance < asked]

    def _compare(self, packed: np.ndarray, limit: int) -> list[tuple[int, int]]:
        prefix = min(len(packed), max(8, len(packed) // 8))
        close: list[tuple[int, int]] = []
        offset = 0
        for rows in self.blocks:
            if len(rows):
                partial = np.bitwise_count(np.bitwise_xor(rows[:, :prefix], packed[:prefix])).sum(axis=1,
                                                                                                 dtype=np.int64)
                for index in np.flatnonzero(partial < limit):
                    distance = int(np.bitwise_count(np.bitwise_xor(rows[index], packed)).sum())
                    if distance < limit:
                        close.append((offset + int(index), distance))
            offset += len(rows)
        return close

    def subset(self, indices: list[int], *, covered_to: int, limit: int) -> History:
        """These rows alone (copied), standing for every row up to covered_to within `limit` items."""
        rows = np.concatenate(self.blocks) if len(self.blocks) > 1 else self.blocks[0] if self.blocks else None
        picked = rows[indices] if rows is not None else np.zeros((0, 0), dtype=np.uint8)
        return History([picked], [self.evaluation_ids[i] for i in indices], [self.researcher_ids[i] for i in indices],
                       [self.reported[i] for i in indices], covered_to=covered_to, limit=limit)


class _TaskRows:
    """One task's committed rows in a growing buffer (appended in place; earlier views stay valid).

    Beside each row, its first bytes as 64-bit words (`prefix`): the whole-history pass compares a few
    words per row instead of a byte at a time.
    """

    def __init__(self, n_bytes: int) -> None:
        self.buffer = np.zeros((64, n_bytes), dtype=np.uint8)
        self.words = max(1, round(n_bytes / 64)) if n_bytes >= 16 else 0  # about an eighth of the row, as close_to
        self.prefix = np.zeros((64, self.words), dtype=np.uint64)
        self.count = 0
        self.evaluation_ids: list[int] = []
        self.researcher_ids: list[int] = []
        self.reported: list[float] = []

    def view(self, start: int = 0) -> History:
        """Rows from position `start` on, without copying: the lists are the live ones, read up to `count`
        (the caller holds the cache's lock while it takes the view; appends never change earlier rows)."""
        count = self.count
        return History([self.buffer[start:count]], self.evaluation_ids[start:count], self.researcher_ids[start:count],
                       self.reported[start:count], covered_to=self.evaluation_ids[count - 1] if count else 0)

    def append(self, delta: History) -> None:
        last = self.evaluation_ids[-1] if self.evaluation_ids else 0
        index = 0
        for rows in delta.blocks:
            for row in rows:
                if delta.evaluation_ids[index] > last:  # rows the cache already has are skipped
                    if self.count == len(self.buffer):
                        self.buffer = np.concatenate([self.buffer, np.zeros_like(self.buffer)])
                        self.prefix = np.concatenate([self.prefix, np.zeros_like(self.prefix)])
                    self.buffer[self.count] = row
                    self.prefix[self.count] = _words(row, self.words)
                    self.count += 1
                    self.evaluation_ids.append(delta.evaluation_ids[index])
                    self.researcher_ids.append(delta.researcher_ids[index])
                    self.reported.append(delta.reported[index])
                    last = delta.evaluation_ids[index]
                index += 1


def _words(packed: np.ndarray, words: int) -> np.ndarray:
    return np.frombuffer(packed[: 8 * words].tobytes(), dtype=np.uint64)


_NEWER_ROWS = (select(Evaluation.id, Evaluation.researcher_id, Evaluation.pred_bits, Evaluation.reported_accuracy)
               .where(Evaluation.task == bindparam("task"), Evaluation.id > bindparam("after"))
               .order_by(Evaluation.id))


class HistoryCache:
    """The committed part of each task's history, kept in this process, compared incrementally.

    A submission is compared with the cached rows before the scoring transaction (`candidates`: the
    whole, O(history) pass, outside the task's lock), and under the lock only with the rows committed
    since (`read`), so the serialised part of scoring does not grow with the history. Sound because
    evaluations of one task are inserted under the task's lock (lab/budgets.py lock_task): when a
    reader holds it, every row of the task with a smaller id is committed. A transaction's delta is
    merged only after it commits (`merge`), so a rolled-back row never enters the cache.
    """

    def __init__(self) -> None:
        self._tasks: dict[str, _TaskRows] = {}
        self._lock = threading.Lock()

    def candidates(self, task: str, packed: np.ndarray, limit: int) -> History:
        """The cached rows within `limit` items of `packed` (and the few others whose prefix is as close), standing
        for every cached row (covered_to)."""
        with self._lock:  # the first `count` rows and list entries never change: read them after letting go
            stored = self._tasks.get(task)
            if stored is None:
                return History([], [], [], [], covered_to=0, limit=limit)
            count, words, prefix = stored.count, stored.words, stored.prefix[: stored.count]
            cached = History([stored.buffer[:count]], stored.evaluation_ids, stored.researcher_ids, stored.reported,
                             covered_to=stored.evaluation_ids[count - 1] if count else 0)
        if words:  # a row whose prefix already differs in `limit` items is farther; keep the rest (a few) whole
            counts = np.bitwise_count(np.bitwise_xor(prefix, _words(packed, words)))
            partial = counts[:, 0].astype(np.int32)
            for word in range(1, words):  # column by column: numpy's row sums are slow over a few columns
                partial += counts[:, word]
            close = [int(index) for index in np.flatnonzero(partial < limit)]
        else:
            close = [index for index, _ in cached.close_to(packed, limit)]
        return cached.subset(close, covered_to=cached.covered_to, limit=limit)

    def read(self, conn: Connection, task: str, n_bytes: int, since: History | None = None) -> tuple[History, History]:
        """(`since` completed with every row after it, the rows read from the database now); call with the task
        locked. Rows this process cached meanwhile come from the cache, the rest from the database.

        Without `since`: the whole history, every row held.
        """
        with self._lock:
            stored = self._tasks.get(task)
            if since is None:
                since = stored.view() if stored is not None else History.empty()
                cached = History.empty()
            elif stored is not None:
                cached = stored.view(bisect.bisect_right(stored.evaluation_ids, since.covered_to, 0, stored.count))
            else:
                cached = History.empty()
        after = max(since.covered_to, cached.covered_to)
        found = conn.execute(_NEWER_ROWS, {"task": task, "after": after}).all()
        rows = np.zeros((len(found), n_bytes), dtype=np.uint8)
        for index, row in enumerate(found):
            rows[index] = np.frombuffer(row.pred_bits, dtype=np.uint8)
        delta = History([rows], [int(r.id) for r in found], [int(r.researcher_id) for r in found],
                        [float(r.reported_accuracy) for r in found], covered_to=int(found[-1].id) if found else after)
        return since.extended(cached).extended(delta), delta

    def merge(self, task: str, delta: History) -> None:
        """Add a committed transaction's delta."""
        if not delta.evaluation_ids:
            return
        with self._lock:
            stored = self._tasks.get(task)
            if stored is None:
                stored = self._tasks[task] = _TaskRows(delta.blocks[0].shape[1])
            stored.append(delta)


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

    def widest(self, n_test: int) -> int:
        """The largest distance any check here looks within (identical: 1; near-duplicates: min_changed), so a
        history of only the rows this close to a submission (HistoryCache.candidates) judges it exactly."""
        return max(1, self.min_changed(n_test))

    def judge(self, history: History, bits: np.ndarray, exact_dev_accuracy: float, n_dev: int) -> tuple[Verdict, float]:
        """Judge a submission against the history; if it is accepted, its coarsened accuracy.

        The caller holds the task's lock (lab/budgets.py lock_task), so two concurrent copies of a
        submission cannot both pass, whichever workers they reach.
        """
        degenerate = self.is_degenerate(bits)
        close = history.close_to(np.packbits(bits), self.min_changed(len(bits)))
        if close:
            index, distance = min(close, key=lambda pair: pair[1])
            return Verdict(history.evaluation_ids[index], distance, history.reported[index], degenerate,
                           history.researcher_ids[index]), float("nan")
        return Verdict(None, len(bits), None, degenerate), self.coarsen(exact_dev_accuracy, n_dev, degenerate)

    def own_near_duplicate(self, history: History, bits: np.ndarray, researcher_id: int) -> tuple[int, int] | None:
        """(history index, items changed) of the researcher's own earlier submission closest to this one, when
        it is within `min_changed` items (the closest, then the earliest); None when none is that close."""
        close = [(distance, index) for index, distance in history.close_to(np.packbits(bits), self.min_changed(len(bits)))
                 if history.researcher_ids[index] == researcher_id]
        if not close:
            return None
        distance, index = min(close)
        return index, distance

    @staticmethod
    def pattern_size(conn: Connection, researcher_id: int, task: str, earlier_id: int) -> int:
        """How many different earlier evaluations this researcher's near-duplicates (this one included) were
        close to in the last PATTERN_WINDOW_S: one ablated method gives 1; flips tried base after base give many.
        Counted from the audit rows, in the scoring transaction, on the database's clock (which stamps
        them), so every lab worker counts the same, whatever its host's clock says."""
        earlier = set(conn.execute(select(func.distinct(AuditEntry.evaluation_id)).where(
            AuditEntry.researcher_id == researcher_id, AuditEntry.task == task, AuditEntry.charged.is_(None),
            AuditEntry.outcome == NEAR_DUPLICATE_OUTCOME,
            AuditEntry.created_at > db_epoch() - PATTERN_WINDOW_S)).scalars())
        return len(earlier | {earlier_id})

    @staticmethod
    def identical(history: History, bits: np.ndarray, researcher_id: int) -> int | None:
        """The history index of an earlier accepted submission, by anyone, with exactly these predicted
        classes (the researcher's own first, so repeating never adds rows): the answer is that
        evaluation's, so resubmitting (a deterministic method on several seeds, or a baseline another
        researcher ran too) costs nothing and reveals nothing new."""
        same = [index for index, _ in history.close_to(np.packbits(bits), 1)]
        own = [index for index in same if history.researcher_ids[index] == researcher_id]
        chosen = own or same
        return chosen[0] if chosen else None

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
