"""The lab's schema: created on a fresh database, checked against the code on an existing one.

Alembic manages it (lab/migrations, configured here in code: no alembic.ini). `serve` creates a
fresh DB at the newest revision and refuses an older or newer one; `autow2s lab upgrade` migrates,
backing a SQLite file up first. A DB from before revisions is recognised by its tables
(lab/migrations/pre_alembic.py) and migrated from the release that made it; one that matches no
release is refused.
"""

from __future__ import annotations

import functools
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, inspect, text
from sqlalchemy.engine import make_url

from autow2s.errors import AutoW2SError
from autow2s.lab.migrations import pre_alembic
from autow2s.lab.models import TABLES

MIGRATIONS = Path(__file__).parent / "migrations"
PRE_ALEMBIC_REVISION = pre_alembic.FIRST_RELEASE  # the newest schema made before migrations existed
PG_LOCK_KEY = 7_170_017  # one migrating process at a time when several lab workers start together


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "lab/migrations/versions has no revision"
    return head


def known_revisions() -> list[str]:
    """Oldest first."""
    return [script.revision for script in reversed(list(ScriptDirectory.from_config(alembic_config()).walk_revisions()))]


def current_revision(conn: Connection) -> str | None:
    """The DB's revision; None for an empty DB.

    Lab tables without a recorded revision are from before migrations: 0001, or the label of an older
    release (pre_alembic.RELEASES), told apart by their tables; AutoW2SError if they match none.
    """
    tables = set(inspect(conn).get_table_names())
    if "alembic_version" in tables:
        revision = MigrationContext.configure(conn).get_current_revision()
        if revision is not None:
            return revision
    if tables & set(TABLES.tables):
        return pre_alembic.release_of(conn, first_release_columns())
    return None


@functools.cache
def first_release_columns() -> dict[str, frozenset[str]]:
    """Each table of revision 0001 with its columns, read off migration 0001 run on an in-memory SQLite."""
    engine = create_engine("sqlite://")
    try:
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), PRE_ALEMBIC_REVISION)
            inspector = inspect(conn)
            return {name: frozenset(column["name"] for column in inspector.get_columns(name))
                    for name in inspector.get_table_names() if name in TABLES.tables}
    finally:
        engine.dispose()


def _schema_named(revision: str) -> str:
    return pre_alembic.describe(revision) if revision in pre_alembic.LABELS else f"schema revision {revision}"


def upgrade_command(engine: Engine) -> str:
    """The command that migrates this DB, with any password hidden."""
    url = engine.url
    if url.get_backend_name() == "sqlite" and url.database and Path(url.database).name == "lab.sqlite":
        return f"autow2s lab upgrade --state {Path(url.database).parent}"
    return f"autow2s lab upgrade --db {url.render_as_string(hide_password=True)}"


def ensure_schema(engine: Engine) -> None:
    """A fresh DB is migrated to the newest revision; an existing one must already be there."""
    head = head_revision()
    with engine.begin() as conn:
        _lock(conn)
        revision = current_revision(conn)
        if revision is None:
            _upgrade(conn, from_revision=None)
            return
    if revision == head:
        return
    where = engine.url.render_as_string(hide_password=True)
    if revision not in known_revisions() and revision not in pre_alembic.LABELS:
        raise AutoW2SError(f"the lab DB {where} has schema revision {revision}, newer than this autow2s knows "
                           f"(its newest is {head}): upgrade autow2s to the version that wrote it")
    raise AutoW2SError(f"the lab DB {where} has {_schema_named(revision)} but this autow2s needs schema revision "
                       f"{head}: run `{upgrade_command(engine)}` (it backs a SQLite DB up first), then start the lab "
                       "again")


@dataclass(frozen=True)
class UpgradeResult:
    from_revision: str | None  # None: the DB was empty
    to_revision: str
    backup: Path | None  # the SQLite copy taken before migrating

    @property
    def changed(self) -> bool:
        return self.from_revision != self.to_revision


def upgrade_database(engine: Engine, *, on_backup: Callable[[Path], None] | None = None) -> UpgradeResult:
    """Migrate to the newest revision; a SQLite file is copied (sqlite3 backup API) before anything changes.

    on_backup hears of the copy before the migration starts, so a failed migration can name it.
    """
    head = head_revision()
    with engine.connect() as conn:
        revision = current_revision(conn)
    if revision == head:
        return UpgradeResult(revision, head, None)
    if revision is not None and revision not in known_revisions() and revision not in pre_alembic.LABELS:
        raise AutoW2SError(f"the lab DB has schema revision {revision}, newer than this autow2s knows (its newest "
                           f"is {head}): upgrade autow2s instead")
    backup = _backup_sqlite(engine, revision) if revision is not None else None
    if backup is not None and on_backup is not None:
        on_backup(backup)
    with engine.begin() as conn:
        _lock(conn)
        _upgrade(conn, from_revision=current_revision(conn))
    return UpgradeResult(revision, head, backup)


def _upgrade(conn: Connection, *, from_revision: str | None) -> None:
    config = alembic_config(conn)
    if from_revision is not None and MigrationContext.configure(conn).get_current_revision() is None:
        if from_revision in pre_alembic.LABELS:  # an older release's tables: first what 0001 added to them
            pre_alembic.bring_to_first_release(conn, from_revision)
        command.stamp(config, PRE_ALEMBIC_REVISION)  # lab tables but no recorded revision: now 0001's
    command.upgrade(config, "head")


def _lock(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_LOCK_KEY})


def _backup_sqlite(engine: Engine, revision: str) -> Path | None:
    url = make_url(str(engine.url))
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    source_path = Path(url.database)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = source_path.with_name(f"{source_path.name}.bak-{revision}-{stamp}")
    with sqlite3.connect(source_path) as source, sqlite3.connect(target) as copy:
        source.backup(copy)  # consistent even with the WAL, unlike copying the file
    source.close()
    copy.close()
    return target
