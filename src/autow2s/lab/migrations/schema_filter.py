"""What alembic's autogenerate and the schema check compare: objects of the lab's own that are not in models.py
are left out. In the migrations package (which env.py loads), so that it needs nothing of lab/schema.py."""

from __future__ import annotations

from typing import Any


def include_in_schema_diff(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Alembic's filter: the search adapters' own objects (lab/search.py) are not in models.py: they
    differ by dialect.

    Also skipped: a unique constraint on a table's primary key columns (votes), which PostgreSQL drops
    as redundant when it creates the table, so it can never match.
    """
    if type_ == "unique_constraint" and obj.table is not None and obj.table.primary_key is not None:
        primary = {column.name for column in obj.table.primary_key.columns}
        if primary and {column.name for column in obj.columns} == primary:
            return False
    if type_ == "table" and name is not None and name.startswith("findings_fts"):  # FTS5 and its shadow tables
        return False
    if type_ == "column" and name == "search_vector":
        return False
    return not (type_ == "index" and name == "ix_findings_search_vector")

__all__ = ["include_in_schema_diff"]
