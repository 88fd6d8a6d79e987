"""Verified runs: the lab re-runs a snapshot's method on seeds it chooses and scores dev and holdout.

Each run gets a weak supervisor drawn afresh for it, and two null ones (lab/supervisor.py), so nothing
a method pinned during research recognises the real one. How a snapshot executes is the runner's
business (lab/runners.py: sandboxed jobs, or in process for trusted code). Runs execute on background
threads; clients poll.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import wait
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import Connection, select, update

from autow2s.lab.errors import RunTakenOver
from autow2s.lab.leaderboard import is_baseline_researcher
from autow2s.lab.models import Researcher, VerifyRun
from autow2s.lab.runners import (
    VerifyRunner,
    vanilla_alongside,
    yield_cpu_to_research,
)
from autow2s.lab.supervisor import (
    RunSupervisors,
    draw_supervisors,
    gain_lower_bound,
    null_plan,
    run_outcome,
    supervisor_check,
    verified_metrics,
)
from autow2s.lab.tasks import LabTask

if TYPE_CHECKING:
    from autow2s.lab.core import Lab

log = logging.getLogger("autow2s.lab")


STALE_AFTER_S = 90.0  # a running run whose worker has not beaten for this long is taken over
HEARTBEAT_S = 15.0
POLL_S = 2.0  # how often an idle worker looks for runs queued through another worker
STOP_GRACE_S = 0.5  # at shutdown, how long a worker thread may take to notice; a run in flight is requeued
PENDING = ("queued", "running")


def _pid_namespace() -> str:
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        return "0"


def worker_identity() -> str:
    """host:pid-namespace:pid:nonce, written into the runs a worker claims.

    The pid namespace tells containers that share a hostname apart; the nonce tells a reused pid
    apart. The host name is cut so the identity fits `claimed_by`.
    """
    return f"{socket.gethostname()[:60]}:{_pid_namespace()}:{os.getpid()}:{secrets.token_hex(3)}"


def _dead_on_this_host(claimed_by: str | None) -> bool:
    """True when the claim names a process of this host and pid namespace that no longer exists."""
    if not claimed_by:
        return True
    parts = claimed_by.split(":")
    if len(parts) != 4 or parts[0] != socket.gethostname()[:60] or parts[1] != _pid_namespace() \
            or not parts[2].isdigit():
        return False
    try:
        os.kill(int(parts[2]), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def db_now(conn: Connection) -> float:
    """The database's clock in epoch seconds: heartbeats and staleness use one clock, whatever the hosts' skew."""
    if conn.dialect.name == "postgresql":
        expression = "SELECT extract(epoch from clock_timestamp())"
    else:
        expression = "SELECT (julianday('now') - 2440587.5) * 86400.0"
    return float(conn.exec_driver_sql(expression).scalar_one())


class VerifyService:
    """Runs verified and transfer runs queued in the database, on `workers` threads of this lab process.

    The queue is the database: a run is claimed by a conditional update (status queued -> running,
    claimed_by this worker; on PostgreSQL the candidate row is picked with FOR UPDATE SKIP LOCKED), so
    any number of lab processes on any number of hosts share it and each run executes once. A running
    run's worker beats every HEARTBEAT_S; a run whose worker died (a dead pid on this host, or no beat
    for STALE_AFTER_S) is taken over by another worker, or by this one after a restart.
    """

    def __init__(self, lab: Lab, runner: VerifyRunner, *, workers: int = 1) -> None:
        self.lab = lab
        self.runner = runner
        self.workers = workers
        self.identity = worker_identity()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for index in range(self.workers):
            thread = threading.Thread(target=self._loop, name=f"lab-verify-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Stop claiming. A run still in flight goes back to the queue for the next worker (or this lab after a
        restart) instead of being waited for: its job dies with this process, and the thread's late result is
        refused (RunTakenOver), since the claim is no longer this worker's."""
        self._stopping.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout=STOP_GRACE_S)
        if any(thread.is_alive() for thread in self._threads):
            self._release_claims()

    def _release_claims(self) -> None:
        def release(conn: Connection) -> int:
            released = 0
            for _, table in self._tables():
                released += conn.execute(update(table).where(table.claimed_by == self.identity,
                                                             table.status == "running")
                                         .values(status="queued", claimed_by=None, heartbeat_at=None)).rowcount
            return released

        try:
            released = self.lab.writer.run_sync(release)
        except Exception:  # noqa: BLE001 - the database may be gone; a dead worker's runs are taken over anyway
            log.exception("could not hand this worker's running runs back to the queue")
            return
        if released:
            log.info("stopping: %d running run(s) handed back to the queue", released)

    def wake(self) -> None:
        """A run was queued through this worker: look now rather than at the next poll."""
        self._wake.set()

    # -- the queue in the database ---------------------------------------------------------------
    def _tables(self) -> tuple[tuple[str, Any], ...]:
        from autow2s.lab.models import TransferRun

        return (("verify", VerifyRun), ("transfer", TransferRun))

    def _abandoned(self, claimed_by: str | None, heartbeat_at: float | None, now: float) -> bool:
        if claimed_by == self.identity:
            return False  # one of this worker's own threads is running it
        return _dead_on_this_host(claimed_by) or heartbeat_at is None or heartbeat_at < now - STALE_AFTER_S

    def _anything_to_claim(self) -> bool:
        """A read-only look first, so an idle lab does not open write transactions every poll."""
        with self.lab.engine.connect() as conn:
            now = db_now(conn)
            for _, table in self._tables():
                for status, claimed_by, heartbeat_at in conn.execute(
                        select(table.status, table.claimed_by, table.heartbeat_at).where(table.status.in_(PENDING))):
                    if status == "queued" or self._abandoned(claimed_by, heartbeat_at, now):
                        return True
        return False

    def _claim(self, conn: Connection) -> tuple[str, int] | None:
        """Take the oldest queued run, else an abandoned running one; None when there is neither."""
        now = db_now(conn)
        claim = {"status": "running", "claimed_by": self.identity, "heartbeat_at": now}
        for kind, table in self._tables():
            run_id = conn.execute(select(table.id).where(table.status == "queued").order_by(table.id).limit(1)
                                  .with_for_update(skip_locked=True)).scalar()
            if run_id is not None and conn.execute(update(table).where(table.id == run_id, table.status == "queued")
                                                   .values(**claim)).rowcount == 1:
                return kind, int(run_id)
        for kind, table in self._tables():
            running = conn.execute(select(table.id, table.claimed_by, table.heartbeat_at)
                                   .where(table.status == "running").order_by(table.id)).all()
            for run_id, claimed_by, heartbeat_at in running:
                if not self._abandoned(claimed_by, heartbeat_at, now):
                    continue
                # Only the claim as it was read: a beat committed since then means its worker is alive.
                same_claim = table.claimed_by.is_(None) if claimed_by is None else table.claimed_by == claimed_by
                same_beat = table.heartbeat_at.is_(None) if heartbeat_at is None else table.heartbeat_at == heartbeat_at
                if conn.execute(update(table).where(table.id == run_id, table.status == "running", same_claim,
                                                    same_beat).values(**claim)).rowcount == 1:
                    log.info("%s run %d: taking it over from %s (its worker is gone)", kind, run_id,
                             claimed_by or "a worker of an earlier lab")
                    return kind, int(run_id)
        return None

    def _beat(self, kind: str, run_id: int, done: threading.Event) -> None:
        table = dict(self._tables())[kind]
        while not done.wait(HEARTBEAT_S):
            try:
                beaten = self.lab.writer.run_sync(lambda conn: conn.execute(
                    update(table).where(table.id == run_id, table.claimed_by == self.identity)
                    .values(heartbeat_at=db_now(conn))).rowcount)
            except Exception:  # noqa: BLE001 - a missed beat is survivable; the run goes on
                log.exception("%s run %d: heartbeat failed", kind, run_id)
                continue
            if not beaten:
                log.warning("%s run %d was taken over by another worker; this one's result will be dropped",
                            kind, run_id)
                return

    def finish(self, table: Any, run_id: int, **values: Any) -> None:
        """Write a run's outcome, only while this worker still holds its claim (see RunTakenOver)."""
        written = self.lab.writer.run_sync(lambda conn: conn.execute(
            update(table).where(table.id == run_id, table.claimed_by == self.identity).values(**values)).rowcount)
        if not written:
            raise RunTakenOver(f"run {run_id} was taken over by another worker")

    def _loop(self) -> None:
        from autow2s.lab.transfer import run_transfer

        yield_cpu_to_research()  # the supervisors it trains in process yield to the lab's event loop
        while not self._stopping.is_set():
            claimed = None
            try:
                if self._anything_to_claim():
                    claimed = self.lab.writer.run_sync(self._claim)
            except Exception:  # noqa: BLE001 - the database may be restarting; try again at the next poll
                log.exception("could not claim a run from the queue")
            if claimed is None:
                self._wake.wait(POLL_S)
                self._wake.clear()
                continue
            kind, run_id = claimed
            done = threading.Event()
            beat = threading.Thread(target=self._beat, args=(kind, run_id, done), name=f"lab-beat-{run_id}",
                                    daemon=True)
            beat.start()
            try:
                if kind == "transfer":
                    run_transfer(self.lab, run_id)  # records its own failures
                else:
                    self._run_verify(run_id)
            except RunTakenOver as exc:
                log.warning("%s run %d: %s; its result is the other worker's to write", kind, run_id, exc)
            finally:
                done.set()

    def _run_verify(self, run_id: int) -> None:
        try:
            self._run(run_id)
        except RunTakenOver:
            raise
        except Exception as exc:  # the method's failure is the run's result, not the server's
            message = f"{type(exc).__name__}: {exc}".splitlines()[0][:1000] if str(exc) else type(exc).__name__
            log.info("verify run %d failed: %s", run_id, message)
            self._set(run_id, status="failed", error=message, finished_at=time.time())

    def _set(self, run_id: int, **values: Any) -> None:
        self.finish(VerifyRun, run_id, **values)

    def _null_check(self, run_id: int, snapshot_dir: Path, task: LabTask, seeds: Sequence[int],
                    real: dict[str, Any], supervisors: RunSupervisors) -> dict[str, Any]:
        """The same seeds with this run's null supervisors. A run that fails there is scored as chance (0.5 on
        every item): what a method that gave up would score, so neither a crash nor a deliberate failure helps."""
        plan = null_plan(supervisors.nulls, seeds)
        by_run: dict[tuple[Path, int], np.ndarray] = {}
        for view in dict.fromkeys(view for view, _ in plan):
            chosen = [seed for v, seed in plan if v == view]
            try:
                by_run.update(((view, seed), p) for seed, p in zip(chosen, self.runner.run(snapshot_dir, view, chosen)))
            except Exception as exc:  # noqa: BLE001 - the method's failure is a result, not the server's
                log.info("verify run %d: the null-supervisor run on %s failed, scored as chance: %s", run_id,
                         view.name, str(exc)[:300])
                by_run.update(((view, seed), np.full(task.n_test, 0.5)) for seed in chosen)
        predictions = [by_run[key] for key in plan]
        null = verified_metrics(task, predictions, ci_seed=run_id, weak=supervisors.weak)
        return supervisor_check(real, null, weak_holdout_acc=supervisors.weak.holdout_acc,
                                null_gain_low=gain_lower_bound(task, predictions, supervisors.weak))

    def _run(self, run_id: int) -> None:
        """The snapshot on this run's own fresh supervisor (lab/supervisor.py), then on its null ones."""
        with self.lab.session() as session:
            run = session.execute(select(VerifyRun).where(VerifyRun.id == run_id)).scalar_one()
            researcher = session.execute(select(Researcher.name).where(Researcher.id == run.researcher_id)).scalar_one()
        task = self.lab.tasks.get(run.task)
        if task is None:
            raise ValueError(f"task {run.task!r} is no longer served by this lab")
        seeds = json.loads(run.seeds)
        started = time.perf_counter()
        check = self.lab.settings.dependence_check
        with tempfile.TemporaryDirectory(prefix="autow2s-verify-") as tmp:
            snapshot_dir = self.lab.snapshots.checkout(run.snapshot_id, Path(tmp))
            supervisors = draw_supervisors(task, Path(tmp) / "supervisors", with_nulls=check)
            # vanilla on the same supervisor and seeds: what "beats vanilla" is judged against (the campaign's own
            # vanilla is the reference itself). A fresh supervisor moves PGR by more than item and seed noise.
            # It trains in process while the snapshot's sandboxed jobs run.
            reference = None if is_baseline_researcher(researcher) else vanilla_alongside(supervisors.real, seeds)
            try:
                predictions = self.runner.run(snapshot_dir, supervisors.real, seeds)
                metrics = verified_metrics(task, predictions, ci_seed=run_id, weak=supervisors.weak)
                if check:
                    metrics |= self._null_check(run_id, snapshot_dir, task, seeds, metrics, supervisors)
            finally:
                if reference is not None:
                    wait([reference])  # it reads this run's views: let it end before tmp goes, also after a failure
            vanilla = None if reference is None else reference.result()
            metrics["outcome"] = run_outcome(task, predictions, supervisors.weak, vanilla)
        self._set(run_id, status="done", finished_at=time.time(), **metrics)
        log.info("verify run %d done in %.1fs: holdout PGR %s (its fresh supervisor: weak holdout accuracy %.3f)",
                 run_id, time.perf_counter() - started,
                 "n/a" if metrics["holdout_pgr"] is None else f"{metrics['holdout_pgr']:.3f}",
                 supervisors.weak.holdout_acc)
