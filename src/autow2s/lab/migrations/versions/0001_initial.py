"""The lab schema of the first release (models.py at 884007f), plus SQLite's FTS5 index of findings.

A lab DB made before migrations by the release of 2026-12-01 has exactly this schema; lab/schema.py
treats such a DB (the lab's tables, no alembic_version) as this revision, and brings one of an older
release to it first (lab/migrations/pre_alembic.py).

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lab_meta",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_table(
        "researchers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_table(
        "budget_overrides",
        sa.Column("researcher_id", sa.Integer(), nullable=False),
        sa.Column("task", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("total", sa.Integer(), nullable=True),
        sa.Column("rate_per_minute", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["researcher_id"], ["researchers.id"]),
        sa.PrimaryKeyConstraint("researcher_id", "task", "kind"),
    )
    op.create_table(
        "baselines",
        sa.Column("task", sa.String(length=200), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("seeds", sa.Text(), nullable=False),
        sa.Column("weak_dev_acc", sa.Float(), nullable=False),
        sa.Column("weak_holdout_acc", sa.Float(), nullable=False),
        sa.Column("ceiling_dev_acc", sa.Float(), nullable=False),
        sa.Column("ceiling_holdout_acc", sa.Float(), nullable=False),
        sa.Column("weak_bits", sa.LargeBinary(), nullable=False),
        sa.Column("ceiling_bits", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("task", "fingerprint"),
    )
    op.create_table(
        "evaluations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("researcher_id", sa.Integer(), nullable=False),
        sa.Column("task", sa.String(length=200), nullable=False),
        sa.Column("snapshot_id", sa.String(length=40), nullable=True),
        sa.Column("endpoint", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("n_dev", sa.Integer(), nullable=False),
        sa.Column("dev_correct", sa.Integer(), nullable=False),
        sa.Column("holdout_correct", sa.Integer(), nullable=False),
        sa.Column("n_holdout", sa.Integer(), nullable=False),
        sa.Column("reported_accuracy", sa.Float(), nullable=False),
        sa.Column("reported_pgr", sa.Float(), nullable=True),
        sa.Column("flags", sa.String(length=200), nullable=False),
        sa.Column("pred_bits", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["researcher_id"], ["researchers.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_evaluations_researcher_id", "evaluations", ["researcher_id"])
    op.create_index("ix_evaluations_researcher_task", "evaluations", ["researcher_id", "task"])
    op.create_table(
        "audit",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("researcher_id", sa.Integer(), nullable=True),
        sa.Column("actor", sa.String(length=16), nullable=False),
        sa.Column("method", sa.String(length=8), nullable=False),
        sa.Column("path", sa.String(length=300), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("task", sa.String(length=200), nullable=True),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("charged", sa.String(length=16), nullable=True),
        sa.Column("evaluation_id", sa.Integer(), nullable=True),
        sa.Column("flags", sa.String(length=200), nullable=False),
        sa.Column("detail", sa.String(length=500), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_audit_charged", "audit", ["researcher_id", "task", "charged"])
    op.create_table(
        "snapshots",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("researcher_id", sa.Integer(), nullable=False),
        sa.Column("parent_id", sa.String(length=40), nullable=True),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["researcher_id"], ["researchers.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_snapshots_parent_id", "snapshots", ["parent_id"])
    op.create_index("ix_snapshots_researcher_id", "snapshots", ["researcher_id"])
    op.create_table(
        "verify_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("researcher_id", sa.Integer(), nullable=False),
        sa.Column("snapshot_id", sa.String(length=40), nullable=False),
        sa.Column("task", sa.String(length=200), nullable=False),
        sa.Column("seeds", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("dev_accuracy", sa.Float(), nullable=True),
        sa.Column("holdout_accuracy", sa.Float(), nullable=True),
        sa.Column("dev_pgr", sa.Float(), nullable=True),
        sa.Column("holdout_pgr", sa.Float(), nullable=True),
        sa.Column("holdout_ci_low", sa.Float(), nullable=True),
        sa.Column("holdout_ci_high", sa.Float(), nullable=True),
        sa.Column("supervisor_check", sa.String(length=24), nullable=False),
        sa.Column("null_holdout_pgr", sa.Float(), nullable=True),
        sa.Column("null_ci_low", sa.Float(), nullable=True),
        sa.Column("null_ci_high", sa.Float(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("finished_at", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["researcher_id"], ["researchers.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_verify_runs_researcher_id", "verify_runs", ["researcher_id"])
    op.create_index("ix_verify_runs_task", "verify_runs", ["task"])
    op.create_table(
        "transfer_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("snapshot_id", sa.String(length=40), nullable=False),
        sa.Column("task", sa.String(length=200), nullable=False),
        sa.Column("seeds", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("holdout_accuracy", sa.Float(), nullable=True),
        sa.Column("holdout_pgr", sa.Float(), nullable=True),
        sa.Column("holdout_ci_low", sa.Float(), nullable=True),
        sa.Column("holdout_ci_high", sa.Float(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("finished_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("snapshot_id", "task"),
    )
    op.create_table(
        "findings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("researcher_id", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("tags", sa.Text(), nullable=False),
        sa.Column("task", sa.String(length=200), nullable=True),
        sa.Column("evaluation_id", sa.Integer(), nullable=True),
        sa.Column("verify_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["evaluation_id"], ["evaluations.id"]),
        sa.ForeignKeyConstraint(["researcher_id"], ["researchers.id"]),
        sa.ForeignKeyConstraint(["verify_id"], ["verify_runs.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_findings_researcher_id", "findings", ["researcher_id"])
    op.create_table(
        "comments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("finding_id", sa.Integer(), nullable=False),
        sa.Column("researcher_id", sa.Integer(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["finding_id"], ["findings.id"]),
        sa.ForeignKeyConstraint(["researcher_id"], ["researchers.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_comments_finding_id", "comments", ["finding_id"])
    op.create_table(
        "votes",
        sa.Column("finding_id", sa.Integer(), nullable=False),
        sa.Column("researcher_id", sa.Integer(), nullable=False),
        sa.Column("value", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["finding_id"], ["findings.id"]),
        sa.ForeignKeyConstraint(["researcher_id"], ["researchers.id"]),
        sa.PrimaryKeyConstraint("finding_id", "researcher_id"),
        sa.UniqueConstraint("finding_id", "researcher_id"),
    )
    if op.get_bind().dialect.name == "sqlite":  # what SqliteFts5Search.setup created in that release
        op.execute("CREATE VIRTUAL TABLE IF NOT EXISTS findings_fts "
                   "USING fts5(title, body, tags, tokenize='porter unicode61')")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE IF EXISTS findings_fts")
    for table in ("votes", "comments", "findings", "transfer_runs", "verify_runs", "snapshots", "audit", "evaluations",
                  "baselines", "budget_overrides", "researchers", "lab_meta"):
        op.drop_table(table)
