"""Lab DBs from before schema revisions: which release made one, and how it becomes revision 0001.

Before Alembic (git d17047b, 2026-12-01) the lab made its tables with create_all, so a DB records no
revision. Three releases made such DBs, each a subset of the next; the last of them is revision
0001. `release_of` tells them apart by their tables and columns (a DB that matches none is refused,
never guessed at), and `bring_to_first_release` adds what a DB lacks, after which it is stamped 0001
and migrated like any other (lab/schema.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy import Connection, inspect, text

from autow2s.errors import AutoW2SError

FIRST_RELEASE = "0001"


@dataclass(frozen=True)
class PreRevisionRelease:
    """A release older than revision 0001: what it lacks of 0001's tables."""

    label: str  # its date: how messages and SQLite backups name its schema
    commit: str
    missing_tables: frozenset[str] = frozenset()
    missing_columns: Mapping[str, frozenset[str]] = field(default_factory=dict)


_NULL_SUPERVISOR_COLUMNS = frozenset({"supervisor_check", "null_holdout_pgr", "null_ci_low", "null_ci_high"})
RELEASES = (  # newest first
    PreRevisionRelease("2026-11-30", "88f6067", frozenset({"transfer_runs"})),
    PreRevisionRelease("2026-11-26", "f27f04e", frozenset({"transfer_runs"}), {"verify_runs": _NULL_SUPERVISOR_COLUMNS}),
)
LABELS = frozenset(release.label for release in RELEASES)


def describe(label: str) -> str:
    """How a message names a pre-revision schema."""
    release = next(release for release in RELEASES if release.label == label)
    return f"the schema of the lab of {release.label} (git {release.commit}, from before schema revisions)"


def release_of(conn: Connection, first_release: Mapping[str, frozenset[str]]) -> str:
    """FIRST_RELEASE or a release's label for a DB with lab tables and no recorded revision.

    first_release: the columns of each table of revision 0001. Raises AutoW2SError, in one line that
    says what to do, when the tables match no release (a DB half made, or changed by hand).
    """
    inspector = inspect(conn)
    found = {name: frozenset(column["name"] for column in inspector.get_columns(name))
             for name in set(inspector.get_table_names()) & set(first_release)}
    differences: list[str] = []
    for label, missing_tables, missing_columns in ((FIRST_RELEASE, frozenset(), {}),
                                                   *((r.label, r.missing_tables, r.missing_columns) for r in RELEASES)):
        expected = {name: columns - missing_columns.get(name, frozenset())
                    for name, columns in first_release.items() if name not in missing_tables}
        if found == expected:
            return label
        if label == FIRST_RELEASE:
            differences = _differences(found, expected)
    where = conn.engine.url.render_as_string(hide_password=True)
    raise AutoW2SError(f"the lab DB {where} has lab tables but no schema revision, and they match no autow2s release "
                       f"({'; '.join(differences[:4])}): restore it from a backup, or start the lab on an empty "
                       "database")


def _differences(found: Mapping[str, frozenset[str]], expected: Mapping[str, frozenset[str]]) -> list[str]:
    out = [f"no table {name}" for name in sorted(set(expected) - set(found))]
    for name in sorted(set(expected) & set(found)):
        if expected[name] - found[name]:
            out.append(f"{name} lacks {', '.join(sorted(expected[name] - found[name]))}")
        if found[name] - expected[name]:
            out.append(f"{name} has unknown {', '.join(sorted(found[name] - expected[name]))}")
    return out


def bring_to_first_release(conn: Connection, label: str) -> None:
    """Add to a DB of release `label` what revision 0001 has and it lacks; every row stays as it was.

    Runs in the caller's transaction (the whole upgrade is one on PostgreSQL). Verified runs made before
    the null-supervisor check get supervisor_check 'not checked', which is what they were.
    """
    release = next(release for release in RELEASES if release.label == label)
    operations = Operations(MigrationContext.configure(conn))
    added = release.missing_columns.get("verify_runs", frozenset())
    if added:  # ALTER TABLE ADD COLUMN on both databases: SQLite's would-be table copy trips findings' foreign key
        with operations.batch_alter_table("verify_runs") as batch:
            for name in sorted(added):
                if name == "supervisor_check":  # NOT NULL: the default fills the old rows (and stays, harmlessly)
                    batch.add_column(sa.Column(name, sa.String(length=24), nullable=False,
                                               server_default="not checked"))
                else:
                    batch.add_column(sa.Column(name, sa.Float(), nullable=True))
    if "transfer_runs" in release.missing_tables:
        operations.create_table(  # as migration 0001 creates it
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
    if conn.dialect.name == "sqlite" and not inspect(conn).has_table("findings_fts"):
        # Every release made it at start-up; one never started has none: make it and index what is there.
        conn.execute(text("CREATE VIRTUAL TABLE findings_fts USING fts5(title, body, tags, tokenize='porter unicode61')"))
        conn.execute(text("INSERT INTO findings_fts(rowid, title, body, tags) SELECT id, title, body, tags FROM findings"))
