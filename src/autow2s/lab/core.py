"""The lab's state in one object: the engine and writer, tasks, tokens, budgets, probes, services.

Built by create_app's lifespan; routes reach it as request.app.state.lab.
"""

from __future__ import annotations

import gc
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from autow2s.errors import AutoW2SError
from autow2s.lab.auth import Principal, TokenBook
from autow2s.lab.budgets import BudgetBook, Limit
from autow2s.lab.db import Writer, make_engine
from autow2s.lab.errors import APIError
from autow2s.lab.models import Researcher, Snapshot
from autow2s.lab.probing import HistoryCache, ProbeDetector
from autow2s.lab.runners import SandboxedRunner, VerifyRunner
from autow2s.lab.schema import ensure_schema
from autow2s.lab.search import make_search
from autow2s.lab.settings import LabSettings
from autow2s.lab.snapshot_store import SnapshotStore
from autow2s.lab.tasks import LabTask, load_tasks
from autow2s.lab.verify import VerifyService
from autow2s.testbed.cache import ArtifactCache

if TYPE_CHECKING:
    from autow2s.executor import Executor

log = logging.getLogger("autow2s.lab")
DEFAULT_TOTAL_CAP = 300
DEFAULT_TOTAL_FLOOR = 20
DEFAULT_TOTAL_FRACTION = 0.075


class Lab:
    def __init__(self, settings: LabSettings, *, runner: VerifyRunner | None = None) -> None:
        self.settings = settings
        self.engine = make_engine(settings.resolved_db_url, synchronous=settings.sqlite_synchronous)
        self.write_engine = (make_engine(settings.resolved_db_url, synchronous=settings.sqlite_synchronous,
                                         immediate=True) if self.engine.dialect.name == "sqlite" else self.engine)
        self.writer = Writer(self.write_engine)
        self.tokens = TokenBook(settings.admin_token, self._find_researcher)
        self.tasks: dict[str, LabTask] = {}  # research tasks: what researchers see
        self.transfer_tasks: dict[str, LabTask] = {}  # held out: the admin's only (lab/transfer.py)
        self.budgets = BudgetBook(self.default_limit)
        self.probes = ProbeDetector(
            near_duplicate_fraction=settings.near_duplicate_fraction,
            near_duplicate_min_items=settings.near_duplicate_min_items, noise_se=settings.score_noise_se,
            resolution=settings.score_resolution, degenerate_fraction=settings.degenerate_fraction,
            degenerate_resolution=settings.degenerate_resolution, noise_seed=settings.noise_seed)
        self.histories = HistoryCache()  # every researcher's accepted predictions per task (lab/probing.py)
        self.search = make_search(self.engine)
        self.snapshots = SnapshotStore(settings.snapshot_repo, settings)
        self._snapshot_owners: dict[str, int] = {}  # a cache: snapshots are never deleted or reassigned
        self.verifier = VerifyService(self, runner or self._sandboxed_runner(), workers=settings.verify_workers)
        self.started_at = time.time()

    def _sandboxed_runner(self) -> SandboxedRunner:
        """Verified runs execute researchers' code: in bubblewrap, with the lab's own files masked."""
        settings = self.settings
        hidden = [settings.resolved_state_dir]
        for task_dir in [Path(settings.data_dir), *Path(settings.data_dir).iterdir()]:
            hidden += [task_dir / part for part in ("lab", "null") if (task_dir / part).is_dir()]
        if settings.transfer_dir is not None:  # a method being verified must not find the held-out tasks
            hidden.append(Path(settings.transfer_dir))
        return SandboxedRunner(hidden, unsafe_no_sandbox=settings.unsafe_no_sandbox, executor=self._job_executor,
                               job_dir=settings.job_dir)

    def _job_executor(self, log_dir: Path) -> Executor:
        """Where verified and transfer runs execute: this host, or the Ray cluster given to serve."""
        from autow2s.executor import LocalExecutor

        settings = self.settings
        if settings.executor == "ray":
            from autow2s.executor.ray_executor import RayExecutor

            return RayExecutor(log_dir, address=settings.ray_address, unsafe_no_sandbox=settings.unsafe_no_sandbox)
        return LocalExecutor(log_dir, unsafe_no_sandbox=settings.unsafe_no_sandbox)

    # lifecycle
    def prepare(self) -> None:
        """The schema, the snapshot repository, and each task with its baselines (computed once, kept in the DB)."""
        ensure_schema(self.engine)
        self.search.setup()
        self.snapshots.init()
        self.tasks = load_tasks(self.settings.data_dir, self.engine.connect, self.settings.baseline_seeds,
                                ArtifactCache(), need_null_views=self.settings.dependence_check)
        if self.settings.transfer_dir is not None:
            self.transfer_tasks = load_tasks(self.settings.transfer_dir, self.engine.connect,
                                             self.settings.baseline_seeds, ArtifactCache())
            clash = sorted(set(self.tasks) & set(self.transfer_tasks))
            if clash:
                raise AutoW2SError(f"--transfer-data: {', '.join(clash)} is also a research task in --data; a "
                                   "transfer task must be held out")

    def start(self) -> None:
        self.prepare()
        with self.engine.connect() as conn:
            self._restore(conn)
        self.writer.start()
        self.verifier.start()
        # Everything loaded so far (torch, numpy, the tasks) lives as long as the server: keep the
        # cyclic GC from walking it on every full collection, which stalls every request for tens of ms.
        gc.collect()
        gc.freeze()
        log.info("lab ready: %d task(s): %s; %d transfer task(s)", len(self.tasks), ", ".join(sorted(self.tasks)),
                 len(self.transfer_tasks))

    def stop(self) -> None:
        self.verifier.stop()
        if isinstance(self.verifier.runner, SandboxedRunner):
            self.verifier.runner.shutdown()
        self.writer.stop()
        self.engine.dispose()
        self.write_engine.dispose()

    def _restore(self, conn: Connection) -> None:
        """Researchers and snapshot owners are cached from the DB; everything else is read where it is used,
        so a restarted worker, or one of several, decides exactly as the others do."""
        for row in conn.execute(select(Researcher)):
            self.tokens.add(row.id, row.name, row.token_hash)
        for snapshot_id, researcher_id in conn.execute(select(Snapshot.id, Snapshot.researcher_id)):
            self._snapshot_owners[snapshot_id] = researcher_id

    def _find_researcher(self, digest: str) -> Principal | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(Researcher.id, Researcher.name).where(Researcher.token_hash == digest)).first()
        return None if row is None else Principal(int(row.id), str(row.name))

    # lookups used by routes
    def session(self) -> Session:
        """A read session (ORM objects); writes go through self.writer."""
        return Session(self.engine)

    def snapshot_owner(self, snapshot_id: str) -> int | None:
        """The researcher who uploaded a snapshot (through any worker), or None if there is no such snapshot."""
        owner = self._snapshot_owners.get(snapshot_id)
        if owner is None:
            with self.engine.connect() as conn:
                owner = conn.execute(select(Snapshot.researcher_id).where(Snapshot.id == snapshot_id)).scalar()
            if owner is not None:
                self._snapshot_owners[snapshot_id] = int(owner)
        return owner

    def record_snapshot_owner(self, snapshot_id: str, researcher_id: int) -> None:
        self._snapshot_owners[snapshot_id] = researcher_id

    def task(self, name: str, *, field: str = "task") -> LabTask:
        task = self.tasks.get(name)
        if task is None:
            raise APIError(404, f"unknown task {name!r}; this lab serves: {', '.join(sorted(self.tasks))}", field=field,
                           outcome="unknown_task")
        return task

    def default_limit(self, task: str, kind: str) -> Limit:
        s = self.settings
        if kind == "verify":
            return Limit(s.verify_total, s.verify_rate_per_minute)
        total = s.budget_total
        if total is None:
            n_dev = self.tasks[task].n_dev if task in self.tasks else 0
            total = min(DEFAULT_TOTAL_CAP, max(DEFAULT_TOTAL_FLOOR, int(DEFAULT_TOTAL_FRACTION * n_dev)))
        return Limit(total, s.budget_rate_per_minute)

    def researcher_names(self) -> dict[int, str]:
        with self.engine.connect() as conn:
            return {int(rid): str(name) for rid, name in conn.execute(select(Researcher.id, Researcher.name))}

    def summary(self) -> dict[str, Any]:
        return {"tasks": sorted(self.tasks), "uptime_s": round(time.time() - self.started_at, 1),
                "writer_batches": self.writer.batches, "writer_jobs": self.writer.jobs}
