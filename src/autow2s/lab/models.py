"""The lab's tables. Plain portable SQL types only: SQLite by default, PostgreSQL by URL.

Timestamps are float seconds since the epoch (portable, cheap to compare for rate windows). Those a
window reads (audit.created_at) default to the database's clock (lab/db.py db_epoch), one clock for
every lab host.
A change here needs a migration in lab/migrations/versions/ (tests/test_lab_migrations.py checks).
"""

from __future__ import annotations

from sqlalchemy import Float, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from autow2s.lab.db import db_epoch

MAX_ID = 2**31 - 1  # the largest value of an Integer id column on every database (PostgreSQL's integer)


class Base(DeclarativeBase):
    pass


class LabMeta(Base):
    """Key-value facts about this lab instance (schema version)."""

    __tablename__ = "lab_meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Researcher(Base):
    __tablename__ = "researchers"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 of the token, never the token
    created_at: Mapped[float] = mapped_column(Float)


class BudgetOverride(Base):
    """An admin's budget for one researcher; task '*' applies to every task."""

    __tablename__ = "budget_overrides"
    researcher_id: Mapped[int] = mapped_column(ForeignKey("researchers.id"), primary_key=True)
    task: Mapped[str] = mapped_column(String(200), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)  # evaluate | verify
    total: Mapped[int | None] = mapped_column(Integer, nullable=True)  # None: the task's default
    rate_per_minute: Mapped[int | None] = mapped_column(Integer, nullable=True)
    updated_at: Mapped[float] = mapped_column(Float)


class BudgetSpend(Base):
    """What a researcher has spent on a task, per kind: the number of its charged audit rows, kept in one
    row so that a budget check reads it instead of counting them (lab/budgets.py writes both together)."""

    __tablename__ = "budget_spend"
    researcher_id: Mapped[int] = mapped_column(ForeignKey("researchers.id"), primary_key=True)
    task: Mapped[str] = mapped_column(String(200), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)  # evaluate | verify
    used: Mapped[int] = mapped_column(Integer)


class Baseline(Base):
    """The fixed weak and ceiling accuracies of a task, computed once by the trusted side."""

    __tablename__ = "baselines"
    task: Mapped[str] = mapped_column(String(200), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64), primary_key=True)
    seeds: Mapped[str] = mapped_column(Text)  # JSON list
    weak_dev_acc: Mapped[float] = mapped_column(Float)
    weak_holdout_acc: Mapped[float] = mapped_column(Float)
    ceiling_dev_acc: Mapped[float] = mapped_column(Float)
    ceiling_holdout_acc: Mapped[float] = mapped_column(Float)
    weak_bits: Mapped[bytes] = mapped_column(LargeBinary)  # packed weak predictions on test
    ceiling_bits: Mapped[bytes] = mapped_column(LargeBinary)  # packed ceiling predictions, seed-major
    created_at: Mapped[float] = mapped_column(Float)


class Evaluation(Base):
    """One scored submission. Holdout numbers are stored for the lab and never returned."""

    __tablename__ = "evaluations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    researcher_id: Mapped[int] = mapped_column(ForeignKey("researchers.id"), index=True)
    task: Mapped[str] = mapped_column(String(200))
    snapshot_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    endpoint: Mapped[str] = mapped_column(String(16))  # v1 | anchor
    created_at: Mapped[float] = mapped_column(Float)
    n_dev: Mapped[int] = mapped_column(Integer)
    dev_correct: Mapped[int] = mapped_column(Integer)
    holdout_correct: Mapped[int] = mapped_column(Integer)
    n_holdout: Mapped[int] = mapped_column(Integer)
    reported_accuracy: Mapped[float] = mapped_column(Float)
    reported_pgr: Mapped[float | None] = mapped_column(Float, nullable=True)
    flags: Mapped[str] = mapped_column(String(200), default="")
    pred_bits: Mapped[bytes] = mapped_column(LargeBinary)  # packed p >= 0.5 on all test items
    __table_args__ = (Index("ix_evaluations_researcher_task", "researcher_id", "task"),)


class AuditEntry(Base):
    """Append-only: the application only ever inserts here (there is no update or delete path)."""

    __tablename__ = "audit"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[float] = mapped_column(Float, default=db_epoch())  # the DB's clock, not the lab host's
    researcher_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    actor: Mapped[str] = mapped_column(String(16))  # researcher | admin | anonymous
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(String(300))  # tokens redacted
    status: Mapped[int] = mapped_column(Integer)
    task: Mapped[str | None] = mapped_column(String(200), nullable=True)
    outcome: Mapped[str] = mapped_column(String(32))
    charged: Mapped[str | None] = mapped_column(String(16), nullable=True)  # budget kind charged
    evaluation_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    flags: Mapped[str] = mapped_column(String(200), default="")
    detail: Mapped[str] = mapped_column(String(500), default="")
    # Budget rate windows count a researcher's charged requests on a task since a time.
    __table_args__ = (Index("ix_audit_charged_time", "researcher_id", "task", "charged", "created_at"),)


class Snapshot(Base):
    __tablename__ = "snapshots"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # the git commit
    researcher_id: Mapped[int] = mapped_column(ForeignKey("researchers.id"), index=True)
    parent_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    name: Mapped[str] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(Text)
    size_bytes: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[float] = mapped_column(Float)


class VerifyRun(Base):
    __tablename__ = "verify_runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    researcher_id: Mapped[int] = mapped_column(ForeignKey("researchers.id"), index=True)
    snapshot_id: Mapped[str] = mapped_column(String(40))
    task: Mapped[str] = mapped_column(String(200), index=True)
    seeds: Mapped[str] = mapped_column(Text)  # JSON list chosen by the lab
    status: Mapped[str] = mapped_column(String(16))  # queued | running | done | failed
    error: Mapped[str] = mapped_column(Text, default="")
    dev_accuracy: Mapped[float | None] = mapped_column(Float, nullable=True)
    holdout_accuracy: Mapped[float | None] = mapped_column(Float, nullable=True)
    dev_pgr: Mapped[float | None] = mapped_column(Float, nullable=True)
    holdout_pgr: Mapped[float | None] = mapped_column(Float, nullable=True)
    holdout_ci_low: Mapped[float | None] = mapped_column(Float, nullable=True)
    holdout_ci_high: Mapped[float | None] = mapped_column(Float, nullable=True)
    # The supervisor-dependence check: the same seeds again with a null supervisor (docs/lab.md).
    supervisor_check: Mapped[str] = mapped_column(String(24), default="not checked")  # passed | flagged | ...
    null_holdout_pgr: Mapped[float | None] = mapped_column(Float, nullable=True)
    null_ci_low: Mapped[float | None] = mapped_column(Float, nullable=True)
    null_ci_high: Mapped[float | None] = mapped_column(Float, nullable=True)
    # Which holdout items each seed, the run's weak supervisor and the ceiling got right (lab/outcomes.py):
    # for comparisons with vanilla paired by item. Never served to researchers.
    outcome: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    created_at: Mapped[float] = mapped_column(Float)
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    claimed_by: Mapped[str | None] = mapped_column(String(120), nullable=True)  # the lab worker running it
    heartbeat_at: Mapped[float | None] = mapped_column(Float, nullable=True)  # that worker's last sign of life


class TransferRun(Base):
    """A snapshot run unchanged on a held-out transfer task, by the admin only (lab/transfer.py).

    Kept apart from verify_runs so that no researcher-facing query, id sequence or count can show it.
    """

    __tablename__ = "transfer_runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    snapshot_id: Mapped[str] = mapped_column(String(40))
    task: Mapped[str] = mapped_column(String(200))
    seeds: Mapped[str] = mapped_column(Text)  # JSON list chosen by the lab
    status: Mapped[str] = mapped_column(String(16))  # queued | running | done | failed
    error: Mapped[str] = mapped_column(Text, default="")
    holdout_accuracy: Mapped[float | None] = mapped_column(Float, nullable=True)
    holdout_pgr: Mapped[float | None] = mapped_column(Float, nullable=True)
    holdout_ci_low: Mapped[float | None] = mapped_column(Float, nullable=True)
    holdout_ci_high: Mapped[float | None] = mapped_column(Float, nullable=True)
    outcome: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)  # as VerifyRun.outcome
    created_at: Mapped[float] = mapped_column(Float)
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    claimed_by: Mapped[str | None] = mapped_column(String(120), nullable=True)  # the lab worker running it
    heartbeat_at: Mapped[float | None] = mapped_column(Float, nullable=True)  # that worker's last sign of life
    __table_args__ = (UniqueConstraint("snapshot_id", "task"),)


class Finding(Base):
    __tablename__ = "findings"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    researcher_id: Mapped[int] = mapped_column(ForeignKey("researchers.id"), index=True)
    type: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    tags: Mapped[str] = mapped_column(Text)  # space-separated, normalised
    task: Mapped[str | None] = mapped_column(String(200), nullable=True)
    evaluation_id: Mapped[int | None] = mapped_column(ForeignKey("evaluations.id"), nullable=True)
    verify_id: Mapped[int | None] = mapped_column(ForeignKey("verify_runs.id"), nullable=True)
    created_at: Mapped[float] = mapped_column(Float)


class Comment(Base):
    __tablename__ = "comments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    finding_id: Mapped[int] = mapped_column(ForeignKey("findings.id"), index=True)
    researcher_id: Mapped[int] = mapped_column(ForeignKey("researchers.id"))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Float)


class Vote(Base):
    __tablename__ = "votes"
    finding_id: Mapped[int] = mapped_column(ForeignKey("findings.id"), primary_key=True)
    researcher_id: Mapped[int] = mapped_column(ForeignKey("researchers.id"), primary_key=True)
    value: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[float] = mapped_column(Float)
    __table_args__ = (UniqueConstraint("finding_id", "researcher_id"),)


TABLES = Base.metadata
