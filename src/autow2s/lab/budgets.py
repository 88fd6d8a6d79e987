"""Per-researcher, per-task budgets: a total and a rate (a sliding one-minute window).

The database is the book: a request is charged by its audit row (`audit.charged`), and the
check and the charge happen in one write transaction that holds the researcher's lock
(`lock_researcher`). So any number of lab workers, on one host or several, enforce exactly what
one does: no memory of spending lives in a process. The rate window is read on the database's
clock (lab/db.py db_epoch), which also stamps every audit row, so hosts whose clocks disagree
still count the same minute.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, func, select

from autow2s.lab.db import db_now
from autow2s.lab.models import AuditEntry, BudgetOverride, Researcher

WINDOW_S = 60.0
KINDS = ("evaluate", "verify")


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

    def charged(self) -> Standing:
        """The standing once this request's audit row is written."""
        return Standing(True, self.total_left - 1, max(0, self.rate_left - 1))


def lock_researcher(conn: Connection, researcher_id: int) -> None:
    """Serialise one researcher's check-then-charge across every worker of the lab.

    PostgreSQL: a row lock on the researcher, held to the end of the transaction (other
    researchers are not blocked). SQLite: the lab's write transactions begin IMMEDIATE (lab/db.py),
    so the database's one write lock already serialises them, and FOR UPDATE is not emitted.
    """
    conn.execute(select(Researcher.id).where(Researcher.id == researcher_id).with_for_update())


def lock_task(conn: Connection, task: str) -> None:
    """Serialise scoring on one task across every worker: budgets and the probing history (which
    compares a submission with every researcher's) are then checked against committed rows only.

    PostgreSQL: a transaction-scoped advisory lock on the task's name. SQLite: BEGIN IMMEDIATE
    (lab/db.py) already holds the database's one write lock.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(select(func.pg_advisory_xact_lock(func.hashtext("autow2s-evaluate:" + task))))


class BudgetBook:
    def __init__(self, default_limit: Callable[[str, str], Limit]) -> None:  # (task, kind) -> Limit
        self._default_limit = default_limit

    def limit(self, conn: Connection, researcher_id: int, task: str, kind: str) -> Limit:
        """The task's override, then the researcher's all-task override, then the default; field by field."""
        limit = self._default_limit(task, kind)
        total, rate = limit.total, limit.rate_per_minute
        rows = {row.task: row for row in conn.execute(
            select(BudgetOverride).where(BudgetOverride.researcher_id == researcher_id, BudgetOverride.kind == kind,
                                         BudgetOverride.task.in_(("*", task))))}
        for override in (rows.get("*"), rows.get(task)):
            if override is not None:
                total = total if override.total is None else override.total
                rate = rate if override.rate_per_minute is None else override.rate_per_minute
        return Limit(total, rate)

    def standing(self, conn: Connection, researcher_id: int, task: str, kind: str, now: float) -> Standing:
        """Whether one more request may be charged now, from the audit rows alone.

        The window is the database's last minute (db_now), whatever this host's clock says; `now` is the
        caller's clock, on which `resets_at` is given (so `resets_at - now` is the wait). To charge, call
        this inside a write transaction after lock_researcher and write the request's audit row
        (charged=kind) in the same transaction.
        """
        limit = self.limit(conn, researcher_id, task, kind)
        db_clock = db_now(conn)
        mine = (AuditEntry.researcher_id == researcher_id) & (AuditEntry.task == task) & (AuditEntry.charged == kind)
        used = int(conn.execute(select(func.count()).select_from(AuditEntry).where(mine)).scalar() or 0)
        recent, oldest = conn.execute(select(func.count(), func.min(AuditEntry.created_at))
                                      .where(mine, AuditEntry.created_at > db_clock - WINDOW_S)).one()
        recent = int(recent or 0)
        rate_left = max(0, limit.rate_per_minute - recent)
        if used >= limit.total:
            return Standing(False, 0, rate_left, None,
                            f"the total budget of {limit.total} {kind} requests on task {task!r} is spent; "
                            "it does not reset by itself: ask the lab admin to raise it")
        if recent >= limit.rate_per_minute:
            wait = max(0.0, float(oldest) + WINDOW_S - db_clock)
            return Standing(False, limit.total - used, 0, now + wait,
                            f"rate limit: at most {limit.rate_per_minute} {kind} requests per minute on task "
                            f"{task!r}; retry after {wait:.1f}s")
        return Standing(True, limit.total - used, rate_left)

    def summary(self, conn: Connection, researcher_id: int, task: str, kind: str, now: float) -> dict[str, int]:
        """The limit and what is left of it, for status pages (read-only: nothing is charged)."""
        limit = self.limit(conn, researcher_id, task, kind)
        standing = self.standing(conn, researcher_id, task, kind, now)
        return {"total": limit.total, "rate_per_minute": limit.rate_per_minute, "total_left": standing.total_left,
                "rate_left": standing.rate_left}
