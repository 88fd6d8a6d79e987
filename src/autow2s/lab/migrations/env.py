"""Alembic's entry point: runs on the connection that lab/schema.py hands over (no alembic.ini)."""

from __future__ import annotations

from alembic import context

from autow2s.lab.migrations.schema_filter import include_in_schema_diff
from autow2s.lab.models import TABLES

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=TABLES, render_as_batch=True,
                  include_object=include_in_schema_diff, compare_type=True)
with context.begin_transaction():
    context.run_migrations()
