"""Schema migrations on SQLite and PostgreSQL: a lab DB of the first release, full of rows, survives
`autow2s lab upgrade` intact; `serve` refuses it until then; and models.py matches the newest migration.
DBs of the releases before revisions (2026-11-26, 2026-11-30) are recognised and upgraded too, and one
that matches no release is refused in one line."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, MetaData, create_engine, inspect, select, text

import first_release_models
import models_2026_11_26
import models_2026_11_30
from autow2s.errors import AutoW2SError
from autow2s.lab.db import make_engine
from autow2s.lab.migrations.schema_filter import include_in_schema_diff
from autow2s.lab.models import TABLES
from autow2s.lab.schema import (
    alembic_config,
    current_revision,
    ensure_schema,
    head_revision,
    upgrade_command,
)
from autow2s.lab.search import make_search
from lab_helpers import free_port, lab_data, start_lab  # noqa: F401 - lab_data is a fixture
from pg_helpers import BACKENDS, fresh_databases, pg_server  # noqa: F401 - pg_server is a fixture

FIRST_RELEASE = "0001"
TOKEN = "researcher-token-from-the-first-release"


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database: a SQLite file in a state folder, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        (tmp_path / "state").mkdir()
        yield f"sqlite:///{tmp_path / 'state' / 'lab.sqlite'}"
        return
    with fresh_databases(request.getfixturevalue("pg_server")) as make:
        yield make()


@pytest.fixture()
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


def migrate(engine: Engine, revision: str) -> None:
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), revision)


def first_release_rows() -> dict[str, list[dict[str, Any]]]:
    """A row or more in every table of the first release's schema, with awkward values where they fit."""
    bits = np.packbits(np.arange(400) % 3 == 0).tobytes()  # 400 items: the `mini` task
    return {
        "lab_meta": [{"key": "created_by", "value": "autow2s 0.1.0"}],
        "researchers": [{"id": 1, "name": "ada", "token_hash": hashlib.sha256(TOKEN.encode()).hexdigest(),
                         "created_at": 1_700_000_000.25},
                        {"id": 2, "name": "bob", "token_hash": "b" * 64, "created_at": 1_700_000_001.5}],
        "budget_overrides": [{"researcher_id": 1, "task": "*", "kind": "evaluate", "total": 40, "rate_per_minute": None,
                              "updated_at": 1_700_000_002.0},
                             {"researcher_id": 2, "task": "mini", "kind": "verify", "total": None,
                              "rate_per_minute": 3, "updated_at": 1_700_000_003.0}],
        "baselines": [{"task": "retired", "fingerprint": "f" * 64, "seeds": "[0, 1, 2]", "weak_dev_acc": 0.61,
                       "weak_holdout_acc": 0.6, "ceiling_dev_acc": 0.9, "ceiling_holdout_acc": 0.89,
                       "weak_bits": b"\x00\xff\x10", "ceiling_bits": bytes(range(256)), "created_at": 1_700_000_004.0}],
        "evaluations": [{"id": 1, "researcher_id": 1, "task": "mini", "snapshot_id": None, "endpoint": "v1",
                         "created_at": 1_700_000_005.0, "n_dev": 200, "dev_correct": 150, "holdout_correct": 140,
                         "n_holdout": 200, "reported_accuracy": 0.75, "reported_pgr": 0.4, "flags": "",
                         "pred_bits": bits},
                        {"id": 2, "researcher_id": 2, "task": "mini", "snapshot_id": "a" * 40, "endpoint": "anchor",
                         "created_at": 1_700_000_006.0, "n_dev": 200, "dev_correct": 100, "holdout_correct": 101,
                         "n_holdout": 200, "reported_accuracy": 0.5, "reported_pgr": None, "flags": "degenerate",
                         "pred_bits": bytes(50)}],
        "audit": [{"id": 1, "created_at": 1_700_000_005.0, "researcher_id": 1, "actor": "researcher", "method": "POST",
                   "path": "/api/v1/evaluate", "status": 200, "task": "mini", "outcome": "scored", "charged": "evaluate",
                   "evaluation_id": 1, "flags": "", "detail": ""},
                  {"id": 2, "created_at": 1_700_000_007.0, "researcher_id": None, "actor": "anonymous",
                   "method": "GET", "path": "/r/<redacted>/api/v1/me", "status": 401, "task": None,
                   "outcome": "unauthorized", "charged": None, "evaluation_id": None, "flags": "",
                   "detail": "no token ünïcode"}],
        "snapshots": [{"id": "a" * 40, "researcher_id": 2, "parent_id": None, "name": "root", "message": "first",
                       "size_bytes": 1234, "created_at": 1_700_000_008.0},
                      {"id": "c" * 40, "researcher_id": 2, "parent_id": "a" * 40, "name": "child",
                       "message": "multi\nline", "size_bytes": 99, "created_at": 1_700_000_009.0}],
        "verify_runs": [{"id": 1, "researcher_id": 2, "snapshot_id": "a" * 40, "task": "mini", "seeds": "[7, 8]",
                         "status": "done", "error": "", "dev_accuracy": 0.7, "holdout_accuracy": 0.69, "dev_pgr": 0.3,
                         "holdout_pgr": 0.28, "holdout_ci_low": 0.1, "holdout_ci_high": 0.4,
                         "supervisor_check": "passed", "null_holdout_pgr": 0.01, "null_ci_low": -0.1,
                         "null_ci_high": 0.1, "created_at": 1_700_000_010.0, "finished_at": 1_700_000_020.0},
                        {"id": 2, "researcher_id": 2, "snapshot_id": "c" * 40, "task": "mini", "seeds": "[1]",
                         "status": "queued", "error": "", "dev_accuracy": None, "holdout_accuracy": None,
                         "dev_pgr": None, "holdout_pgr": None, "holdout_ci_low": None, "holdout_ci_high": None,
                         "supervisor_check": "not checked", "null_holdout_pgr": None, "null_ci_low": None,
                         "null_ci_high": None, "created_at": 1_700_000_011.0, "finished_at": None}],
        "transfer_runs": [{"id": 1, "snapshot_id": "a" * 40, "task": "held-out", "seeds": "[3]", "status": "failed",
                           "error": "Traceback: boom", "holdout_accuracy": None, "holdout_pgr": None,
                           "holdout_ci_low": None, "holdout_ci_high": None, "created_at": 1_700_000_012.0,
                           "finished_at": 1_700_000_013.0}],
        "findings": [{"id": 1, "researcher_id": 1, "type": "result", "title": "Bootstrapping the student helps",
                      "body": "Confidence filtering on the weak labels, then retraining.", "tags": "bootstrap filtering",
                      "task": "mini", "evaluation_id": 1, "verify_id": None, "created_at": 1_700_000_014.0},
                     {"id": 2, "researcher_id": 2, "type": "insight", "title": "Auxiliary losses",
                      "body": "An entropy term keeps the student confident.", "tags": "loss",
                      "task": None, "evaluation_id": None, "verify_id": 1, "created_at": 1_700_000_015.0}],
        "comments": [{"id": 1, "finding_id": 1, "researcher_id": 2, "body": "reproduced", "created_at": 1_700_000_016.0}],
        "votes": [{"finding_id": 1, "researcher_id": 2, "value": 1, "created_at": 1_700_000_017.0},
                  {"finding_id": 2, "researcher_id": 1, "value": -1, "created_at": 1_700_000_018.0}],
    }


def fill(engine: Engine, rows: dict[str, list[dict[str, Any]]]) -> None:
    """Insert through the DB's own (reflected) tables, and index the findings as that release did."""
    metadata = MetaData()
    metadata.reflect(engine, only=list(rows))
    search = make_search(engine)
    with engine.begin() as conn:
        for table in TABLES.sorted_tables:  # parents first
            if table.name in rows:
                conn.execute(metadata.tables[table.name].insert(), rows[table.name])
        for finding in rows["findings"]:
            search.index(conn, finding["id"], finding["title"], finding["body"], finding["tags"])
        if conn.dialect.name == "postgresql":  # ids were given: move the sequences past them, as inserts would
            for name in ("researchers", "evaluations", "audit", "verify_runs", "transfer_runs", "findings", "comments"):
                if name in rows:
                    conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), (SELECT max(id) FROM {name}))"))


def dump(engine: Engine, rows: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """Every row of those tables, the first release's columns only, in primary key order."""
    metadata = MetaData()
    metadata.reflect(engine, only=list(rows))
    out = {}
    with engine.connect() as conn:
        for name, given in rows.items():
            table = metadata.tables[name]
            columns = [table.c[column] for column in given[0]]
            found = conn.execute(select(*columns).order_by(*table.primary_key.columns)).mappings()
            out[name] = [{key: (bytes(value) if isinstance(value, memoryview) else value) for key, value in row.items()}
                         for row in found]
    return out


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "autow2s.cli", *args], capture_output=True, text=True, timeout=120)


def schema_diff(engine: Engine, models: MetaData = TABLES) -> list[Any]:
    """What autogenerate would write to make the DB match the models: nothing, when they agree."""
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_object": include_in_schema_diff, "compare_type": True})
        return list(compare_metadata(context, models))


def test_upgrade_keeps_every_row_and_serve_waits_for_it(engine: Engine, db_url: str, lab_data: Path,
                                                        tmp_path: Path) -> None:
    migrate(engine, FIRST_RELEASE)
    rows = first_release_rows()
    fill(engine, rows)
    assert dump(engine, rows) == rows
    state = tmp_path / "state"
    data = tmp_path / "data"  # only `mini`: the lab below computes no baselines it does not need
    data.mkdir()
    (data / "mini").symlink_to(lab_data / "mini")
    (data / ".cache").symlink_to(lab_data / ".cache")
    serve_args = ["serve", "--data", str(data), "--state", str(state), "--port", str(free_port()), "--db", db_url]

    # The new code refuses the old schema before it computes anything, and says what to run.
    refused = subprocess.run([sys.executable, "-m", "autow2s.cli", *serve_args], capture_output=True, text=True,
                             timeout=120, env={**_env(), "AUTOW2S_ADMIN_TOKEN": "admin-" + "x" * 20})
    assert refused.returncode == 2, refused.stderr[-2000:]
    needed = f"schema revision {FIRST_RELEASE} but this autow2s needs schema revision {head_revision()}"
    assert needed in refused.stderr and "autow2s lab upgrade --" in refused.stderr
    assert dump(engine, rows) == rows

    upgraded = cli("lab", "upgrade", "--db", db_url)
    assert upgraded.returncode == 0, upgraded.stderr
    assert f"{FIRST_RELEASE} -> {head_revision()}" in upgraded.stdout
    assert dump(engine, rows) == rows  # nothing lost, nothing changed
    with engine.connect() as conn:
        assert current_revision(conn) == head_revision()
        for table in ("verify_runs", "transfer_runs"):
            new = conn.execute(text(f"SELECT claimed_by, heartbeat_at FROM {table}")).all()
            assert new and all(row == (None, None) for row in new)
        audit_indexes = {index["name"] for index in inspect(conn).get_indexes("audit")}
        assert "ix_audit_charged_time" in audit_indexes and "ix_audit_charged" not in audit_indexes
        # What each researcher had spent, counted once from the charged audit rows (0003), is what budgets read.
        spent = conn.execute(text("SELECT researcher_id, task, kind, used FROM budget_spend")).all()
        assert [tuple(row) for row in spent] == [(1, "mini", "evaluate", 1)]
        search = make_search(engine)
        assert search.search(conn, "bootstrapping", 10) == [1]  # indexed before the upgrade, found after it
        assert search.search(conn, "entropy student", 10) == [2]
    assert schema_diff(engine) == []

    if engine.dialect.name == "sqlite":
        backup = Path(upgraded.stdout.split("backed up ")[1].split(" to ")[1].split("\n")[0].strip())
        assert backup.parent == state and backup.name.startswith(f"lab.sqlite.bak-{FIRST_RELEASE}-")
        with sqlite3.connect(backup) as old:
            assert old.execute("SELECT count(*) FROM findings").fetchone() == (2,)
            assert "claimed_by" not in {row[1] for row in old.execute("PRAGMA table_info(verify_runs)")}
        old.close()
    again = cli("lab", "upgrade", "--db", db_url)
    assert again.returncode == 0 and "already at schema revision" in again.stdout

    # The upgraded DB serves: the first release's researcher signs in and finds the old findings.
    with start_lab(data, state, db_url=db_url) as server:
        found = server.client(TOKEN).get("/api/v1/findings", params={"q": "bootstrapping"})
        assert found.status_code == 200, found.text
        assert [finding["title"] for finding in found.json()] == ["Bootstrapping the student helps"]


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("AUTOW2S_")} | {"PYTHONUNBUFFERED": "1"}


def test_a_db_from_before_migrations_is_the_first_release(engine: Engine, db_url: str) -> None:
    """Every lab DB made before Alembic: the first release's create_all (and FTS5 table), no alembic_version."""
    first_release_models.TABLES.create_all(engine)
    if engine.dialect.name == "sqlite":  # what the first release's SqliteFts5Search.setup made
        with engine.begin() as conn:
            conn.execute(text("CREATE VIRTUAL TABLE findings_fts USING fts5(title, body, tags, "
                              "tokenize='porter unicode61')"))
    rows = first_release_rows()
    fill(engine, rows)
    with engine.connect() as conn:
        assert not inspect(conn).has_table("alembic_version")
        assert current_revision(conn) == FIRST_RELEASE
    upgraded = cli("lab", "upgrade", "--db", db_url)
    assert upgraded.returncode == 0, upgraded.stderr
    assert f"{FIRST_RELEASE} -> {head_revision()}" in upgraded.stdout
    assert dump(engine, rows) == rows
    with engine.connect() as conn:
        assert make_search(engine).search(conn, "bootstrapping", 10) == [1]
    assert schema_diff(engine) == []


NULL_SUPERVISOR_COLUMNS = ("supervisor_check", "null_holdout_pgr", "null_ci_low", "null_ci_high")
OLDER_RELEASES = {"2026-11-26": models_2026_11_26, "2026-11-30": models_2026_11_30}


def pre_revision_db(engine: Engine, models: Any) -> None:
    """A lab DB as an older release made it: its create_all, and on SQLite the FTS5 table its search made."""
    models.TABLES.create_all(engine)
    if engine.dialect.name == "sqlite":
        with engine.begin() as conn:
            conn.execute(text("CREATE VIRTUAL TABLE findings_fts USING fts5(title, body, tags, "
                              "tokenize='porter unicode61')"))


@pytest.mark.parametrize("release", sorted(OLDER_RELEASES))
def test_a_db_from_an_older_release_is_recognised_and_upgraded_with_every_row(engine: Engine, db_url: str,
                                                                             release: str) -> None:
    """Issue 29: a 2026-11-30 DB was taken for 0001 and then failed in 0002 with "no such table: transfer_runs"."""
    models = OLDER_RELEASES[release]
    pre_revision_db(engine, models)
    rows = {name: table_rows for name, table_rows in first_release_rows().items() if name in models.TABLES.tables}
    assert "transfer_runs" not in rows
    if "supervisor_check" not in models.TABLES.tables["verify_runs"].c:
        rows["verify_runs"] = [{k: v for k, v in row.items() if k not in NULL_SUPERVISOR_COLUMNS}
                               for row in rows["verify_runs"]]
    fill(engine, rows)
    with engine.connect() as conn:
        assert current_revision(conn) == release
    with pytest.raises(AutoW2SError) as refused:
        ensure_schema(engine)  # what serve does first
    message = str(refused.value)
    assert f"the schema of the lab of {release}" in message and f"needs schema revision {head_revision()}" in message
    assert "`autow2s lab upgrade --" in message and "\n" not in message
    assert dump(engine, rows) == rows

    upgraded = cli("lab", "upgrade", "--db", db_url)
    assert upgraded.returncode == 0, upgraded.stderr
    assert f"{release} -> {head_revision()}" in upgraded.stdout
    assert dump(engine, rows) == rows
    ensure_schema(engine)  # serve's check passes now
    with engine.connect() as conn:
        assert current_revision(conn) == head_revision()
        checks = conn.execute(text("SELECT id, supervisor_check, null_holdout_pgr FROM verify_runs ORDER BY id")).all()
        if release == "2026-11-26":  # runs made before the null-supervisor check existed were not checked
            assert [tuple(row) for row in checks] == [(1, "not checked", None), (2, "not checked", None)]
        else:
            assert [tuple(row) for row in checks] == [(1, "passed", 0.01), (2, "not checked", None)]
        assert conn.execute(text("SELECT count(*) FROM transfer_runs")).scalar() == 0
        assert make_search(engine).search(conn, "bootstrapping", 10) == [1]
    assert schema_diff(engine) == []
    with engine.begin() as conn:  # the lab can write what it could not before
        conn.execute(text("INSERT INTO transfer_runs (snapshot_id, task, seeds, status, error, created_at) "
                          "VALUES ('" + "a" * 40 + "', 'held-out', '[1]', 'queued', '', 1.0)"))
        conn.execute(text("INSERT INTO verify_runs (researcher_id, snapshot_id, task, seeds, status, error, "
                          "supervisor_check, created_at) VALUES (1, '" + "c" * 40 + "', 'mini', '[2]', 'queued', '', "
                          "'not checked', 2.0)"))


def test_a_db_that_matches_no_release_is_refused_in_one_line(engine: Engine, db_url: str) -> None:
    """Lab tables, no revision, and a shape no release made (here: a table gone): refused, never guessed at."""
    pre_revision_db(engine, models_2026_11_30)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE votes"))
    with pytest.raises(AutoW2SError) as refused:
        ensure_schema(engine)
    message = str(refused.value)
    assert "has lab tables but no schema revision, and they match no autow2s release" in message
    assert "no table votes" in message and "restore it from a backup" in message and "\n" not in message
    upgrade = cli("lab", "upgrade", "--db", db_url)
    assert upgrade.returncode == 2 and "match no autow2s release" in upgrade.stderr
    assert len(upgrade.stderr.strip().splitlines()) == 1, upgrade.stderr
    with engine.connect() as conn:
        assert not inspect(conn).has_table("alembic_version")  # nothing was changed


def test_the_first_migration_is_the_first_releases_schema(engine: Engine) -> None:
    """So that treating a pre-Alembic DB as 0001 is right."""
    migrate(engine, FIRST_RELEASE)
    assert schema_diff(engine, first_release_models.TABLES) == []


def test_models_match_the_newest_migration(engine: Engine) -> None:
    """A change to models.py without a migration fails here, on both databases."""
    migrate(engine, "head")
    assert schema_diff(engine) == []


def test_a_db_newer_than_the_code_is_refused(engine: Engine, db_url: str) -> None:
    migrate(engine, "head")
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(AutoW2SError, match="has schema revision 9999, newer than this autow2s knows"):
        ensure_schema(engine)
    refused = cli("lab", "upgrade", "--db", db_url)
    assert refused.returncode == 2 and "upgrade autow2s" in refused.stderr


def test_the_upgrade_command_in_messages_hides_the_password() -> None:
    engine = create_engine("postgresql+psycopg://lab:s3cret@db.example:5432/lab")
    assert upgrade_command(engine) == "autow2s lab upgrade --db postgresql+psycopg://lab:***@db.example:5432/lab"
