"""Spent budgets as one row per researcher, task and kind (issue 29).

- budget_spend (researcher_id, task, kind) -> used: what a budget check reads instead of counting the
  researcher's charged audit rows (lab/budgets.py adds one with every charged audit row). Filled here
  from the audit rows, so every existing lab keeps exactly what its researchers have spent.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "budget_spend",
        sa.Column("researcher_id", sa.Integer(), nullable=False),
        sa.Column("task", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("used", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["researcher_id"], ["researchers.id"]),
        sa.PrimaryKeyConstraint("researcher_id", "task", "kind"),
    )
    op.execute("INSERT INTO budget_spend (researcher_id, task, kind, used) "
               "SELECT researcher_id, task, charged, count(*) FROM audit "
               "WHERE charged IS NOT NULL AND task IS NOT NULL AND researcher_id IN (SELECT id FROM researchers) "
               "GROUP BY researcher_id, task, charged")


def downgrade() -> None:
    op.drop_table("budget_spend")
