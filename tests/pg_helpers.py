"""A real PostgreSQL for the lab's tests, and the fixture that runs a lab module on SQLite and PostgreSQL.

The server: $AUTOW2S_TEST_PG_URL when set (.ci/run starts one cluster and exports it, so every
pytest-xdist worker shares it); otherwise a throwaway cluster that scripts/test_postgres.sh starts
under a temporary folder for this session. Without PostgreSQL the PostgreSQL variants are skipped,
except in CI (CI=true), where they fail. Every lab gets a database of its own.

Use it from a test module:

    from pg_helpers import lab_db, pg_server  # noqa: F401 - fixtures

    @pytest.fixture(scope="module")
    def lab(lab_data, tmp_path_factory, lab_db):
        with start_lab(lab_data, tmp_path_factory.mktemp("state"), db_url=lab_db()) as server:
            yield server
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

PG_URL_ENV = "AUTOW2S_TEST_PG_URL"
SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "test_postgres.sh"
INSTALL_HINT = (f"PostgreSQL is not installed: `sudo apt-get install postgresql` (Debian/Ubuntu), or point {PG_URL_ENV} "
                "at a server (postgresql+psycopg://user@host:port/postgres)")
BACKENDS = ["sqlite", "postgresql"]


def postgres_installed() -> bool:
    return bool(glob.glob("/usr/lib/postgresql/*/bin/initdb")) or shutil.which("pg_ctl") is not None


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI must run the PostgreSQL tests)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """The URL of a PostgreSQL server (its `postgres` database) that lets this user create databases."""
    given = os.environ.get(PG_URL_ENV)
    if given:
        yield given
        return
    if not postgres_installed():
        _unavailable(INSTALL_HINT)
    # Under /tmp, not pytest's tmp_path: PostgreSQL runs as another user, who cannot enter root's 0700 folders.
    cluster = Path(tempfile.mkdtemp(prefix="autow2s-pg-"))
    started = subprocess.run([str(SCRIPT), "start", str(cluster)], capture_output=True, text=True, timeout=120)
    if started.returncode != 0:
        shutil.rmtree(cluster, ignore_errors=True)
        pytest.fail(f"could not start a test PostgreSQL: {started.stderr[-2000:]}")
    try:
        yield started.stdout.strip()
    finally:
        subprocess.run([str(SCRIPT), "stop", str(cluster)], capture_output=True, timeout=120)
        shutil.rmtree(cluster, ignore_errors=True)


def _admin_dsn(server_url: str) -> str:
    """psycopg's own DSN for the server URL (SQLAlchemy's driver suffix removed)."""
    from sqlalchemy.engine import make_url

    url = make_url(server_url)
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def create_database(server_url: str) -> str:
    """A new, empty database on the server; returns its SQLAlchemy URL."""
    import psycopg
    from sqlalchemy.engine import make_url

    name = "autow2s_test_" + secrets.token_hex(6)
    with psycopg.connect(_admin_dsn(server_url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def drop_database(server_url: str, db_url: str) -> None:
    import psycopg
    from sqlalchemy.engine import make_url

    name = make_url(db_url).database
    with psycopg.connect(_admin_dsn(server_url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def fresh_databases(server_url: str) -> Iterator[Callable[[], str]]:
    """A factory of fresh databases; each one it made is dropped afterwards."""
    made: list[str] = []

    def make() -> str:
        made.append(create_database(server_url))
        return made[-1]

    try:
        yield make
    finally:
        for url in made:
            drop_database(server_url, url)


@pytest.fixture(scope="module", params=BACKENDS)
def lab_db(request: pytest.FixtureRequest) -> Iterator[Callable[[], str | None]]:
    """Runs the module once per backend. Call it once per lab: None (SQLite in the lab's state folder,
    the default) or the URL of a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield lambda: None
        return
    with fresh_databases(request.getfixturevalue("pg_server")) as make:
        yield make
