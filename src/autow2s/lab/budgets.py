"""Per-researcher, per-task budgets: a total and a rate (a sliding one-minute window).

The database is the book. What a researcher has spent on a task is one row of budget_spend
(researcher, task, kind) -> used; `charge` writes the request's audit row (`audit.charged`) and
adds one to that row (UPDATE ... WHERE used < total RETURNING used) in the same transaction, so the
row is always the count of the charged audit rows (migration 0003 built it from them) and a check
reads one row instead of counting them. The rate window counts the charged audit rows of the
database's last minute (lab/db.py db_epoch stamps them) off an index; a check reads the spend row,
the window and the admin's overrides in one statement.

Check and charge run in one write transaction under the lock of whoever can charge that row: the
task's (scoring, lock_task) or the researcher's (verify, lock_researcher); on SQLite the writer's
transactions begin IMMEDIATE and hold the file's write lock. So any number of lab workers, on one
host or several, with clocks that disagree, enforce exactly what one does. The charge is also
conditional on the total at the row itself, so even a caller without the lock cannot overspend.

The statements are built once, here: building a SQLAlchemy statement per request cost more than
running it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Insert, bindparam, func, insert, select, update

from autow2s.lab.db import db_epoch, db_now, insert_or_ignore
from autow2s.lab.models import AuditEntry, BudgetOverride, BudgetSpend, Researcher

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
    resets_at: float | None = None  # when the next request would be allowed, on the caller's clock; None: never
    reason: str = ""
    used: int = 0  # what was spent when it was read
    limit: Limit = Limit(0, 0)  # the limit in force

    def charged(self) -> Standing:
        """The standing once this request is charged."""
        return Standing(True, self.total_left - 1, max(0, self.rate_left - 1), used=self.used + 1, limit=self.limit)


class BudgetRace(RuntimeError):
    """A charge found the total already spent: the caller did not hold the lock its check needs."""


def _override(column: Any, task: Any) -> Any:
    return (select(column).where(BudgetOverride.researcher_id == bindparam("b_rid"),
                                 BudgetOverride.kind == bindparam("b_kind"), BudgetOverride.task == task)
            .scalar_subquery())


_SPEND_KEY = ((BudgetSpend.researcher_id == bindparam("b_rid")) & (BudgetSpend.task == bindparam("b_task"))
              & (BudgetSpend.kind == bindparam("b_kind")))
_MINE = ((AuditEntry.researcher_id == bindparam("b_rid")) & (AuditEntry.task == bindparam("b_task"))
         & (AuditEntry.charged == bindparam("b_kind")))
_IN_WINDOW = _MINE & (AuditEntry.created_at > db_epoch() - WINDOW_S)
_STANDING = select(  # one round trip: what is spent, what the last minute holds, and the admin's overrides
    select(BudgetSpend.used).where(_SPEND_KEY).scalar_subquery().label("used"),
    select(func.count()).select_from(AuditEntry).where(_IN_WINDOW).scalar_subquery().label("recent"),
    _override(BudgetOverride.total, "*").label("all_total"),
    _override(BudgetOverride.rate_per_minute, "*").label("all_rate"),
    _override(BudgetOverride.total, bindparam("b_task")).label("task_total"),
    _override(BudgetOverride.rate_per_minute, bindparam("b_task")).label("task_rate"))
_NTH_NEWEST = (select(AuditEntry.created_at).where(_IN_WINDOW).order_by(AuditEntry.created_at.desc())
               .offset(bindparam("b_nth")).limit(1))  # the charge whose leaving the window frees the next one
_CHARGE = (update(BudgetSpend).where(_SPEND_KEY, BudgetSpend.used < bindparam("b_total"))
           .values(used=BudgetSpend.used + 1).returning(BudgetSpend.used))
_AUDIT = insert(AuditEntry)
_AUDIT_COLUMNS = [column for column in AuditEntry.__table__.columns if column.name != "id"]
# PostgreSQL: the charge and its audit row in one round trip (an audit row only if the spend row took the charge).
_SPENT = _CHARGE.cte("spent")
_CHARGE_AND_AUDIT = (insert(AuditEntry).add_cte(_SPENT).from_select(
    [column.name for column in _AUDIT_COLUMNS],
    select(*(db_epoch() if column.name == "created_at" else bindparam(f"a_{column.name}", type_=column.type)
             for column in _AUDIT_COLUMNS)).select_from(_SPENT))
    .returning(AuditEntry.id))
_NEW_SPEND: dict[str, Insert] = {}
_TASK_LOCK = select(func.pg_advisory_xact_lock(func.hashtext(bindparam("b_lock"))))
_HELD = "autow2s_task_locks"  # conn.info: (the transaction, the tasks whose lock it holds)


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
    if conn.dialect.name != "postgresql":
        return
    transaction = conn.get_transaction()
    held = conn.info.get(_HELD)
    if held is None or held[0] is not transaction:  # a new transaction holds no lock yet
        tasks: set[str] = set()
        held = conn.info[_HELD] = (transaction, tasks)
    if task not in held[1]:  # the writer's batch decides many evaluations in one transaction: lock once
        conn.execute(_TASK_LOCK, {"b_lock": "autow2s-evaluate:" + task})
        held[1].add(task)


class BudgetBook:
    def __init__(self, default_limit: Callable[[str, str], Limit]) -> None:  # (task, kind) -> Limit
        self._default_limit = default_limit

    def standing(self, conn: Connection, researcher_id: int, task: str, kind: str, now: float) -> Standing:
        """Whether one more request may be charged now.

        In a write transaction that holds lock_task or lock_researcher; if allowed and the request is
        accepted, `charge` in the same one. The window is the database's last minute, whatever this
        host's clock says; `now` is the caller's clock, on which `resets_at` is given (so `resets_at -
        now` is the wait).
        """
        key = {"b_rid": researcher_id, "b_task": task, "b_kind": kind}
        row = conn.execute(_STANDING, key).one()
        if row.used is None:  # the first request of its kind: the row a charge adds to
            conn.execute(self._new_spend(conn), {"researcher_id": researcher_id, "task": task, "kind": kind, "used": 0})
        return self._judge(conn, key, row, now)

    def charge(self, conn: Connection, audit: dict[str, Any], standing: Standing) -> int:
        """Write a charged request's audit row (audit["charged"] is the kind) and add it to the spend row.

        `standing` is what `standing` allowed in this transaction. The one place a charge is written, so the
        spend row and the charged audit rows cannot disagree. Returns what is now used; raises BudgetRace
        (the transaction must roll back) if the total was spent meanwhile, which the caller's lock prevents.
        """
        kind, researcher_id, task = audit["charged"], audit["researcher_id"], audit["task"]
        if kind not in KINDS or researcher_id is None or task is None or not standing.allowed:
            raise ValueError(f"a charge needs an allowed standing, a kind of {KINDS}, a researcher and a task, "
                             f"not {audit!r}")
        key = {"b_rid": researcher_id, "b_task": task, "b_kind": kind, "b_total": standing.limit.total}
        if conn.dialect.name == "postgresql":
            unknown = set(audit) - {column.name for column in _AUDIT_COLUMNS} - {"created_at"}
            if unknown:
                raise ValueError(f"the audit table has no column {sorted(unknown)}")
            values = {f"a_{column.name}": audit.get(column.name) for column in _AUDIT_COLUMNS}
            charged = conn.execute(_CHARGE_AND_AUDIT, key | values).first() is not None
            used = standing.used + 1 if charged else None
        else:
            used = conn.execute(_CHARGE, key).scalar()
            if used is not None:
                conn.execute(_AUDIT, audit)
        if used is None:
            raise BudgetRace(f"researcher {researcher_id}'s {kind} budget on {task!r} was spent by a concurrent charge")
        return int(used)

    def summary(self, conn: Connection, researcher_id: int, task: str, kind: str, now: float) -> dict[str, int]:
        """The limit and what is left of it, for status pages (read-only: nothing is locked or charged)."""
        key = {"b_rid": researcher_id, "b_task": task, "b_kind": kind}
        standing = self._judge(conn, key, conn.execute(_STANDING, key).one(), now)
        return {"total": standing.limit.total, "rate_per_minute": standing.limit.rate_per_minute,
                "total_left": standing.total_left, "rate_left": standing.rate_left}

    def _judge(self, conn: Connection, key: dict[str, Any], row: Any, now: float) -> Standing:
        """The standing from one _STANDING row: the task's override, then the all-task one, then the default."""
        task, kind = key["b_task"], key["b_kind"]
        default = self._default_limit(task, kind)
        total = next((value for value in (row.task_total, row.all_total) if value is not None), default.total)
        rate = next((value for value in (row.task_rate, row.all_rate) if value is not None), default.rate_per_minute)
        limit, used, recent = Limit(int(total), int(rate)), int(row.used or 0), int(row.recent or 0)
        rate_left = max(0, limit.rate_per_minute - recent)
        if used >= limit.total:
            return Standing(False, 0, rate_left, None,
                            f"the total budget of {limit.total} {kind} requests on task {task!r} is spent; "
                            "it does not reset by itself: ask the lab admin to raise it", used=used, limit=limit)
        if recent >= limit.rate_per_minute:
            if limit.rate_per_minute <= 0:
                return Standing(False, limit.total - used, 0, None, f"rate limit: no {kind} requests on task {task!r} "
                                "are allowed; ask the lab admin to raise it", used=used, limit=limit)
            # The next one is allowed when the rate-th newest charge leaves the window.
            nth = conn.execute(_NTH_NEWEST, key | {"b_nth": limit.rate_per_minute - 1}).scalar_one()
            wait = max(0.0, float(nth) + WINDOW_S - db_now(conn))
            return Standing(False, limit.total - used, 0, now + wait,
                            f"rate limit: at most {limit.rate_per_minute} {kind} requests per minute on task "
                            f"{task!r}; retry after {wait:.1f}s", used=used, limit=limit)
        return Standing(True, limit.total - used, rate_left, used=used, limit=limit)

    @staticmethod
    def _new_spend(conn: Connection) -> Insert:
        dialect = conn.dialect.name
        if dialect not in _NEW_SPEND:
            _NEW_SPEND[dialect] = insert_or_ignore(BudgetSpend, dialect)
        return _NEW_SPEND[dialect]
