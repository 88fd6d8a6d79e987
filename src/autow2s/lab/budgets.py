"""Per-researcher, per-task budgets: a total and a rate (a sliding one-minute window).

The book lives in memory for speed (an evaluation costs no budget query) and is rebuilt from
the audit table at startup, where every charged request has its row. That is why the lab runs
as one server process per database.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, func, select

from autow2s.lab.models import AuditEntry, BudgetOverride

WINDOW_S = 60.0
KINDS = ("evaluate", "verify")
Key = tuple[int, str, str]  # researcher id, task, kind


@dataclass(frozen=True)
class Limit:
    total: int
    rate_per_minute: int


@dataclass(frozen=True)
class Override:
    """An admin's limit; a None field keeps the task's default."""

    total: int | None
    rate_per_minute: int | None


@dataclass(frozen=True)
class Standing:
    """What is left after (or instead of) a charge."""

    allowed: bool
    total_left: int
    rate_left: int
    resets_at: float | None = None  # when the next request would be allowed; None: never
    reason: str = ""


class BudgetBook:
    def __init__(self, default_limit: Callable[[str, str], Limit]) -> None:
        self._default_limit = default_limit  # (task, kind) -> Limit
        self._overrides: dict[Key, Override] = {}
        self._used: dict[Key, int] = defaultdict(int)
        self._recent: dict[Key, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def load(self, conn: Connection, now: float | None = None) -> None:
        """Rebuild totals and the current rate window from the audit table."""
        now = time.time() if now is None else now
        for row in conn.execute(select(BudgetOverride)):
            self._overrides[(row.researcher_id, row.task, row.kind)] = Override(row.total, row.rate_per_minute)
        counts = conn.execute(select(AuditEntry.researcher_id, AuditEntry.task, AuditEntry.charged, func.count())
                              .where(AuditEntry.charged.is_not(None))
                              .group_by(AuditEntry.researcher_id, AuditEntry.task, AuditEntry.charged))
        for researcher_id, task, kind, count in counts:
            self._used[(researcher_id, task, kind)] = int(count)
        recent = conn.execute(select(AuditEntry.researcher_id, AuditEntry.task, AuditEntry.charged, AuditEntry.created_at)
                              .where(AuditEntry.charged.is_not(None), AuditEntry.created_at > now - WINDOW_S)
                              .order_by(AuditEntry.created_at))
        for researcher_id, task, kind, created_at in recent:
            self._recent[(researcher_id, task, kind)].append(float(created_at))

    def set_override(self, researcher_id: int, task: str, kind: str, override: Override) -> None:
        with self._lock:
            self._overrides[(researcher_id, task, kind)] = override

    def limit(self, researcher_id: int, task: str, kind: str) -> Limit:
        """The task's override, then the researcher's all-task override, then the default; field by field."""
        limit = self._default_limit(task, kind)
        total, rate = limit.total, limit.rate_per_minute
        for override in (self._overrides.get((researcher_id, "*", kind)), self._overrides.get((researcher_id, task, kind))):
            if override is not None:
                total = total if override.total is None else override.total
                rate = rate if override.rate_per_minute is None else override.rate_per_minute
        return Limit(total, rate)

    def _standing(self, key: Key, now: float, *, charge: bool) -> Standing:
        limit = self.limit(*key)
        recent = self._recent[key]
        while recent and recent[0] <= now - WINDOW_S:
            recent.popleft()
        used = self._used[key]
        if used >= limit.total:
            return Standing(False, 0, max(0, limit.rate_per_minute - len(recent)), None,
                            f"the total budget of {limit.total} {key[2]} requests on task {key[1]!r} is spent; "
                            "it does not reset by itself: ask the lab admin to raise it")
        if len(recent) >= limit.rate_per_minute:
            resets_at = recent[0] + WINDOW_S
            return Standing(False, limit.total - used, 0, resets_at,
                            f"rate limit: at most {limit.rate_per_minute} {key[2]} requests per minute on task "
                            f"{key[1]!r}; retry after {max(0.0, resets_at - now):.1f}s")
        if charge:
            self._used[key] = used + 1
            recent.append(now)
            used += 1
        return Standing(True, limit.total - used, max(0, limit.rate_per_minute - len(recent)))

    def try_charge(self, researcher_id: int, task: str, kind: str, now: float | None = None) -> Standing:
        """Charge one request if both the total and the rate allow it; otherwise say why not."""
        with self._lock:
            return self._standing((researcher_id, task, kind), time.time() if now is None else now, charge=True)

    def peek(self, researcher_id: int, task: str, kind: str, now: float | None = None) -> Standing:
        with self._lock:
            return self._standing((researcher_id, task, kind), time.time() if now is None else now, charge=False)
