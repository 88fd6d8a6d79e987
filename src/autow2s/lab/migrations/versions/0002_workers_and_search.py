"""Multi-worker labs and PostgreSQL full-text search (issue 17).

- verify_runs and transfer_runs: claimed_by (the lab worker running it) and heartbeat_at;
- audit: ix_audit_charged gains created_at (budget rate windows read it) as ix_audit_charged_time;
- PostgreSQL only: findings.search_vector, a generated tsvector (title A, tags B, body C) with a GIN
  index. SQLite keeps its FTS5 table from 0001.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("verify_runs", "transfer_runs"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("claimed_by", sa.String(length=120), nullable=True))
            batch.add_column(sa.Column("heartbeat_at", sa.Float(), nullable=True))
    op.drop_index("ix_audit_charged", table_name="audit")
    op.create_index("ix_audit_charged_time", "audit", ["researcher_id", "task", "charged", "created_at"])
    if op.get_bind().dialect.name == "postgresql":
        # Generated, so every insert and every existing finding is indexed with no code on the write path.
        op.execute("ALTER TABLE findings ADD COLUMN search_vector tsvector GENERATED ALWAYS AS ("
                   "setweight(to_tsvector('english'::regconfig, coalesce(title, '')), 'A') || "
                   "setweight(to_tsvector('english'::regconfig, coalesce(tags, '')), 'B') || "
                   "setweight(to_tsvector('english'::regconfig, coalesce(body, '')), 'C')) STORED")
        op.execute("CREATE INDEX ix_findings_search_vector ON findings USING gin (search_vector)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_findings_search_vector")
        op.execute("ALTER TABLE findings DROP COLUMN IF EXISTS search_vector")
    op.drop_index("ix_audit_charged_time", table_name="audit")
    op.create_index("ix_audit_charged", "audit", ["researcher_id", "task", "charged"])
    for table in ("verify_runs", "transfer_runs"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("heartbeat_at")
            batch.drop_column("claimed_by")
