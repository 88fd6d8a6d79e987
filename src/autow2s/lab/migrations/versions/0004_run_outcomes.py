"""Per-item outcomes of verified and transfer runs, for comparisons with vanilla paired by item (issue 27).

- verify_runs.outcome, transfer_runs.outcome: packed bits of which holdout items each seed, the run's
  weak supervisor and the task's ceiling got right (lab/outcomes.py). Runs finished before this
  revision have none: their comparisons with vanilla are left out, not guessed.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("verify_runs", "transfer_runs"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("outcome", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    for table in ("verify_runs", "transfer_runs"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("outcome")
