"""The engine and the single writer: every write goes through one thread that group-commits.

Why one writer: SQLite serialises writers anyway, and a commit with synchronous=FULL costs an
fsync (milliseconds). Queued jobs are committed together in one transaction, and each caller
is answered only after that commit, so an acknowledged write survives kill -9 while 32
concurrent clients share each fsync.

Several lab processes (`serve --workers N`, or labs on several hosts sharing PostgreSQL) each
have their own writer. Their check-then-write jobs stay atomic through the database: row locks
on PostgreSQL (lab/budgets.py lock_task and lock_researcher), BEGIN IMMEDIATE on SQLite (make_engine).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, CursorResult, Engine, Float, Insert, Table, create_engine, event, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

log = logging.getLogger("autow2s.lab")
T = TypeVar("T")
Job = Callable[[Connection], Any]
Settle = Callable[[bool, Any], None]
MAX_BATCH = 256


def inserted_id(result: CursorResult[Any]) -> int:
    """The primary key of the row an INSERT just wrote."""
    key = result.inserted_primary_key
    if key is None:
        raise RuntimeError("the INSERT reported no primary key")
    return int(key[0])


class db_epoch(FunctionElement[float]):
    """The database's clock in epoch seconds, as SQL: every time window (rates, heartbeats) reads this one clock.

    Lab workers on several hosts disagree about time.time() by their clocks' skew; the database is the
    one clock they share. PostgreSQL: clock_timestamp() (the real time, not the transaction's start).
    SQLite lives in the lab's own process, so its clock is that host's (milliseconds).
    """

    type = Float()
    inherit_cache = True


@compiles(db_epoch, "postgresql")
def _db_epoch_postgresql(element: db_epoch, compiler: SQLCompiler, **kw: Any) -> str:
    return "CAST(extract(epoch from clock_timestamp()) AS DOUBLE PRECISION)"


@compiles(db_epoch, "sqlite")
def _db_epoch_sqlite(element: db_epoch, compiler: SQLCompiler, **kw: Any) -> str:
    return "((julianday('now') - 2440587.5) * 86400.0)"


def db_now(conn: Connection) -> float:
    """The database's clock now (see db_epoch)."""
    return float(conn.execute(select(db_epoch())).scalar_one())


def insert_or_ignore(table: type[Any] | Table, dialect: str) -> Insert:
    """INSERT that skips a row whose key is already there (ON CONFLICT DO NOTHING): for rows that several
    lab processes may write at once with the same content, such as a task's baselines at start-up."""
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    if dialect == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing()
    raise NotImplementedError(f"the lab supports SQLite and PostgreSQL, not {dialect}")


def make_engine(url: str, *, synchronous: str = "FULL", immediate: bool = False) -> Engine:
    """An engine with WAL and the chosen fsync level on SQLite; other databases as given.

    immediate (SQLite only): every transaction begins IMMEDIATE, taking the database's write lock
    before its first read. The writer uses it, so a check-then-write (a budget, a queue claim) is
    atomic across lab processes sharing the file; readers keep the default, lock-free BEGIN.
    """
    parsed = make_url(url)
    if parsed.drivername == "postgresql":  # plain postgresql:// would ask for psycopg2; the lab ships psycopg 3
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True, pool_size=8, max_overflow=8)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, pool_size=8,
                           max_overflow=8)
    level = synchronous.upper()
    if level not in {"FULL", "NORMAL", "EXTRA"}:
        raise ValueError(f"sqlite synchronous must be FULL, NORMAL or EXTRA, not {synchronous!r}")

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={level}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()
        if immediate:
            dbapi_connection.isolation_level = None  # the driver's own BEGIN off: ours below replaces it

    if immediate:
        @event.listens_for(engine, "begin")
        def _begin_immediate(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


class Writer:
    """One thread, one connection, one transaction per batch of queued jobs."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._queue: queue.SimpleQueue[tuple[Job, Settle] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="lab-writer", daemon=True)
        self.batches = 0
        self.jobs = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)

    async def run(self, job: Callable[[Connection], T]) -> T:
        """Run `job` in the next committed batch; returns once its transaction is durable."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()

        def settle(ok: bool, value: Any) -> None:  # called on the writer thread
            loop.call_soon_threadsafe(_settle, future, ok, value)

        self._queue.put((job, settle))
        return await future

    def run_sync(self, job: Callable[[Connection], T]) -> T:
        """The same from a worker thread (sync endpoints, the verify runner)."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def settle(ok: bool, value: Any) -> None:
            future.set_result(value) if ok else future.set_exception(value)

        self._queue.put((job, settle))
        return future.result()

    def _loop(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            batch = [first]
            while len(batch) < MAX_BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            self._commit(batch)

    def _commit(self, batch: list[tuple[Job, Settle]]) -> None:
        with self._engine.connect() as conn:
            transaction = conn.begin()
            try:
                results = [job(conn) for job, _ in batch]
            except Exception as exc:  # one bad job must not sink its neighbours: retry them one by one
                transaction.rollback()
                if len(batch) == 1:
                    batch[0][1](False, exc)
                    return
                for item in batch:
                    self._commit([item])
                return
            try:
                transaction.commit()
            except Exception as exc:  # noqa: BLE001 - the commit may or may not have happened: never run it twice
                log.exception("a commit of %d job(s) failed; their callers get the error", len(batch))
                for _, settle in batch:
                    settle(False, exc)
                return
        self.batches += 1
        self.jobs += len(batch)
        for (_, settle), result in zip(batch, results):
            settle(True, result)


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.cancelled():  # the client went away; the write happened all the same
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)

