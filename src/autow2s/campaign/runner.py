"""`autow2s run`: start (or resume) a campaign, run the researchers, verify the best, write the leaderboard."""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from autow2s.campaign.lab_process import LabProcess, new_admin_token
from autow2s.campaign.progress import live_progress
from autow2s.campaign.researchers import (
    ResearcherStatus,
    ResearcherWorker,
    SearchStep,
    make_step,
    normalise_verifications,
    on_event,
)
from autow2s.campaign.state import CampaignConfig, researcher_names
from autow2s.campaign.verify import final_verification
from autow2s.errors import AutoW2SError
from autow2s.researchers.accounting import Ledger, load_prices, save_prices
from autow2s.researchers.directions import Direction, assign_directions, load_directions
from autow2s.researchers.lab_client import LabClient, LabError
from autow2s.researchers.toolbox import ToolBox
from autow2s.rundir.layout import RunDir, RunState, write_json_atomic
from autow2s.sandbox.limits import RESEARCH_JOB_LIMITS

JOIN_GRACE_S = 15.0  # after the deadline, running experiments get this long to finish
JOIN_AFTER_CANCEL_S = 60.0


class Campaign:
    def __init__(self, run_dir: Path, config: CampaignConfig, console: Console | None = None) -> None:
        self.paths = RunDir(run_dir)
        self.config = config
        self.console = console or Console(stderr=True)
        self.state = RunState.load(self.paths.state)
        self.lab_process: LabProcess | None = None
        self.report_path: Path | None = None
        self.statuses: dict[str, ResearcherStatus] = {}
        self._state_lock = threading.Lock()

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def create(cls, run_dir: Path, config: CampaignConfig, console: Console | None = None) -> Campaign:
        from autow2s.testbed.tasks.registry import TASKS, check_research_task
        from autow2s.testbed.tasks.suites import check_disjoint

        paths = RunDir(run_dir)
        if paths.config.exists():
            raise AutoW2SError(f"{run_dir} already holds a campaign; resume it with --resume {run_dir}, "
                               "or choose another --out")
        for task in config.tasks:
            check_research_task(task, config.allow_computable_labels)
        check_disjoint(config.tasks, config.transfer_tasks)
        generated = [task for task in config.tasks if task in TASKS]
        if config.lab_url and config.instance_seed is None and generated:
            raise AutoW2SError(
                f"--lab: a shared lab serves its own secret instance of {generated[0]}, and this campaign would "
                "prepare another one, so the lab would score against different items. Prepare the lab's data with "
                "`autow2s prepare TASK --instance-seed N` and pass the same --instance-seed here")
        if config.lab_url and config.transfer_tasks:
            raise AutoW2SError("--lab: a shared lab holds its own transfer tasks (serve --transfer-data); run this "
                               "campaign with --transfer-tasks none, and transfer with the lab's admin")
        run_dir.mkdir(parents=True, exist_ok=True)
        save_prices(load_prices(config.prices_file), paths.prices)
        write_json_atomic(paths.config, config.to_json())
        return cls(run_dir, config, console)

    @classmethod
    def resume(cls, run_dir: Path, console: Console | None = None) -> Campaign:
        paths = RunDir(run_dir)
        return cls(run_dir, CampaignConfig.load(paths), console)

    def persist(self) -> None:
        with self._state_lock:
            self.state.researchers = {name: status.to_json() for name, status in self.statuses.items()}
            self.state.save(self.paths.state)

    # -- the lab -----------------------------------------------------------------------------
    def prepare_data(self) -> None:
        """Prepare every research and transfer task once; a kill mid-way leaves only `.partial` folders."""
        self.task_names = tuple(self._prepare(task, self.paths.data) for task in self.config.tasks)
        self.transfer_names = tuple(self._prepare(task, self.paths.transfer_data, number)
                                    for number, task in enumerate(self.config.transfer_tasks, start=1))
        views = {name: self.paths.data / name / "public" for name in self.task_names}
        self.task_view = views[self.task_names[0]] if len(views) == 1 else self._combined_view(views)
        # The null views hold nothing secret, but seeing them would help a method recognise the null supervisor.
        self.hidden = (*(self.paths.data / name / part for name in self.task_names for part in ("lab", "null")),
                       self.paths.transfer_data, self.paths.config, self.paths.lab_state, self.paths.secrets,
                       self.paths.spend, self.paths.state, self.paths.leaderboard, self.paths.lab_log)

    def _prepare(self, task: str, parent: Path, number: int = 0) -> str:
        import shutil

        from autow2s.testbed.prepare import prepare_task
        from autow2s.testbed.tasks.registry import resolve_task, task_meta

        name = task_meta(task).name
        target = parent / name
        if not target.exists():  # a resumed campaign keeps its instance
            partial = parent / f".{name}.partial"
            shutil.rmtree(partial, ignore_errors=True)
            drawn = resolve_task(task, self.config.instance_seed)
            shared = bool(self.config.lab_url)  # the shared lab's host holds lab/ and null/: write public/ only
            if parent != self.paths.transfer_data:
                views = "the public view; the shared lab holds the labels" if shared else "lab and public views"
                self.console.print(f"preparing task {drawn.task.name} ({views}, secret instance)…")
            elif self.config.transfer_drawn:  # a secret draw: named only at the end
                self.console.print(f"preparing held-out transfer task {number} of {len(self.config.transfer_tasks)} "
                                   "(a secret draw, named at the end)…")
            else:
                self.console.print(f"preparing transfer task (held out) {drawn.task.name}…")
            prepare_task(drawn.task, partial, seed=self.config.seed, instance_seed=drawn.instance_seed,
                         instance_chosen_by_user=drawn.chosen_by_user, public_only=shared)
            os.replace(partial, target)
        return name

    def _combined_view(self, views: dict[str, Path]) -> Path:
        """/task/<name>/ for each research task: one folder the sandbox mounts, holding copies of the public views."""
        import shutil

        target = self.paths.task_view
        if not target.exists():
            partial = self.paths.root / ".task-view.partial"
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir()
            for name, view in views.items():
                shutil.copytree(view, partial / name)
            os.replace(partial, target)
        return target

    def start_lab(self, secrets: dict[str, Any]) -> str:
        if self.config.lab_url:
            token = os.environ.get("AUTOW2S_ADMIN_TOKEN")
            if not token:
                raise AutoW2SError("--lab URL needs that lab's admin token in AUTOW2S_ADMIN_TOKEN")
            secrets["admin_token"] = token
            return self.config.lab_url
        secrets.setdefault("admin_token", new_admin_token())
        self.paths.save_secrets(secrets)
        # Two verify workers: the final step's runs (each with its null-supervisor repeat) come after research,
        # when the cores are free.
        extra: tuple[str, ...] = ("--budget-rate", str(self.config.eval_rate), "--verify-rate", str(self.config.verify_rate),
                 "--verify-workers", "2")
        if self.config.eval_budget is not None:
            extra += ("--budget-total", str(self.config.eval_budget))
        if not self.config.dependence_check:
            extra += ("--dependence-check", "off")
        if self.transfer_names:
            extra += ("--transfer-data", str(self.paths.transfer_data))
        tasks = len(self.task_names) + len(self.transfer_names)
        with self.console.status("starting the lab on loopback…") as status:
            def waited(seconds: float) -> None:
                status.update(f"starting the lab on loopback: it computes the weak teacher and the ceiling of each "
                              f"of {tasks} task(s) over its baseline seeds on its first start… {seconds:.0f} s")
            self.lab_process = LabProcess(self.paths.data, self.paths.lab_state, secrets["admin_token"],
                                          self.paths.lab_log, extra_args=extra).start(on_wait=waited)
        self.console.print(f"the lab is up (baselines of {tasks} task(s) ready)")
        self.paths.lab_url_file.write_text(self.lab_process.url + "\n")  # read by `autow2s dashboard`
        self.console.print(f"dashboard (live while the campaign runs): {self.lab_process.url}/dashboard/")
        return self.lab_process.url

    def researcher_token(self, lab_url: str, secrets: dict[str, Any], name: str) -> str:
        """The researcher's lab token, registered once; on a shared lab under a name unique to this campaign."""
        tokens = secrets.setdefault("researchers", {})
        if name not in tokens:
            import httpx

            from autow2s.campaign.shared_lab import lab_names, secrets_to_save

            shared = self.config.lab_url is not None
            lab_name = lab_names(shared, self.paths.root, secrets).lab(name)
            self.paths.save_secrets(secrets_to_save(shared, secrets))  # the campaign's id, before it names anyone
            response = httpx.post(f"{lab_url}/api/v1/researchers", json={"name": lab_name}, timeout=60,
                                  headers={"Authorization": f"Bearer {secrets['admin_token']}"})
            if response.status_code != 201:
                raise AutoW2SError(f"the lab refused to create researcher {lab_name}: {response.text[:300]}")
            tokens[name] = response.json()["token"]
            self.paths.save_secrets(secrets_to_save(shared, secrets))
        return tokens[name]

    def _executor(self):
        if self.config.executor == "ray":
            from autow2s.executor import RayExecutor

            return RayExecutor(self.paths.jobs, address=self.config.ray_address,
                               unsafe_no_sandbox=self.config.unsafe_no_sandbox)
        from autow2s.executor import LocalExecutor

        return LocalExecutor(self.paths.jobs, unsafe_no_sandbox=self.config.unsafe_no_sandbox)

    # -- the run -----------------------------------------------------------------------------
    def run(self) -> Path:
        if self.state.phase == "done" and self.paths.leaderboard.exists():
            self.console.print(f"campaign already finished; leaderboard at {self.paths.leaderboard}")
            return self.paths.leaderboard
        secrets = self.paths.load_secrets()
        self.prepare_data()
        lab_url = self.start_lab(secrets)
        executor = self._executor()
        try:
            workers = self._workers(lab_url, secrets, executor)
            if self.state.phase in ("starting", "researching"):
                self._research(workers, executor)
            self.state.phase = "verifying"
            self.persist()
            admin = LabClient(lab_url, secrets["admin_token"])
            board = final_verification(self, lab_url, secrets, admin)
            write_json_atomic(self.paths.leaderboard, board)
            self.state.phase = "done"
            self.persist()
            self._write_report()
            return self.paths.leaderboard
        finally:
            executor.shutdown()
            self.stop_lab()

    def transfer(self, tasks: tuple[str, ...] | None = None, top: int | None = None,
                 snapshot: str | None = None) -> Path:
        """`autow2s transfer`: run verified snapshots unchanged on transfer tasks after the campaign.

        Reopens the run's lab with the transfer tasks, asks for each missing (snapshot, task) run, waits,
        and rewrites leaderboard.json and the report. Runs recorded before (this or an earlier call, or
        the campaign itself) are reused, so a call killed mid-way resumes where it stopped.
        """
        from autow2s.campaign.verify import board_from_lab, request_transfers, transfer_candidates

        if self.state.phase != "done":
            raise AutoW2SError(f"{self.paths.root}: the campaign has not finished (phase {self.state.phase}); "
                               f"finish it with `autow2s run --resume {self.paths.root}` first")
        if self.config.lab_url:
            raise AutoW2SError("this campaign used a shared lab (--lab); transfer runs there are the lab admin's "
                               "(POST /api/v1/admin/transfer)")
        wanted = tasks if tasks is not None else self.config.transfer_tasks
        if not wanted:
            raise AutoW2SError("no transfer tasks: this campaign ran with --transfer-tasks none; name some with "
                               "--tasks (a list, a suite such as default-transfer, or task directories)")
        from autow2s.testbed.tasks.suites import check_disjoint

        check_disjoint(self.config.tasks, wanted)
        secrets = self.paths.load_secrets()
        self.prepare_data()
        self.transfer_names = tuple(dict.fromkeys(self._prepare(task, self.paths.transfer_data) for task in wanted))
        lab_url = self.start_lab(secrets)
        try:
            admin = LabClient(lab_url, secrets["admin_token"])
            self._restore_statuses()
            board = board_from_lab(self, admin)
            if snapshot is not None:
                known = {row["snapshot"] for row in board["rows"] + board["supervisor_free"]}
                if snapshot not in known:
                    raise AutoW2SError(f"--snapshot {snapshot}: not a verified snapshot of this campaign; "
                                       f"verified: {', '.join(sorted(s[:12] for s in known)) or 'none'}")
                chosen = [snapshot, *transfer_candidates(board, 0)]
            else:
                chosen = transfer_candidates(board, top or self.config.verify_top_k)
            request_transfers(self, admin, chosen)
            board = board_from_lab(self, admin)
            write_json_atomic(self.paths.leaderboard, board)
            self._write_report()
            return self.paths.leaderboard
        finally:
            self.stop_lab()

    def stop_lab(self) -> None:
        """Stop the lab this campaign started, and remove its lab.url so the dashboard reopens the DB itself."""
        if self.lab_process is not None:
            self.lab_process.stop()
            self.paths.lab_url_file.unlink(missing_ok=True)

    def _restore_statuses(self) -> None:
        """Every researcher's saved status as it is, so a later persist() writes it back unchanged."""
        fields = {f.name for f in dataclasses.fields(ResearcherStatus) if not f.name.startswith("_")}
        for name, saved in self.state.researchers.items():
            known = {key: value for key, value in saved.items() if key in fields}
            known["verifications"] = normalise_verifications(saved.get("verifications", {}), self.task_names[0])
            self.statuses[name] = ResearcherStatus(**known)

    def _write_report(self) -> None:
        """The static report; a convenience that must never fail a finished campaign."""
        if self.lab_process is None:  # a shared --lab: its DB is not in this run directory
            return
        try:
            from autow2s.report import build_report

            self.report_path = build_report(self.paths.root)
        except Exception as exc:  # noqa: BLE001 - the campaign's results are already safe on disk
            self.console.print(f"[yellow]could not write the report ({exc}); "
                               f"run `autow2s report {self.paths.root}`[/]")

    def toolbox(self, name: str, lab_url: str, secrets: dict[str, Any], executor, *, others: tuple[Path, ...] = (),
                **options: Any) -> ToolBox:
        """One researcher's tools: its workspace and notebook, its own lab token, and a sandbox that hides the
        lab's files and `others` (the other researchers' workspaces). Used by the campaign and `autow2s mcp`.

        Needs `prepare_data()` first; options go to ToolBox (on_event, deadline, stop).
        """
        researcher_dir = self.paths.researcher_dir(name)
        researcher_dir.mkdir(parents=True, exist_ok=True)
        workspace = self.paths.workspace(name)
        workspace.mkdir(parents=True, exist_ok=True)
        return ToolBox(name=name, tasks=self.task_names, workspace=workspace, task_view=self.task_view,
                       lab=LabClient(lab_url, self.researcher_token(lab_url, secrets, name)), executor=executor,
                       notebook_path=researcher_dir / "notebook.md", view_dir=researcher_dir / "view",
                       record_dir=researcher_dir,
                       hidden=self.hidden + tuple(others),
                       limits=RESEARCH_JOB_LIMITS, error_log=researcher_dir / "errors.log", **options)

    def direction_for(self, name: str) -> Direction:
        """A researcher's starting direction: the campaign's own assignment, and the next one for a new name."""
        names = researcher_names(self.config.researchers)
        index = names.index(name) if name in names else len(names)
        return assign_directions(index + 1, load_directions(self.config.directions_file))[index]

    def _workers(self, lab_url: str, secrets: dict[str, Any], executor) -> list[ResearcherWorker]:
        directions = assign_directions(sum(n for _, n in self.config.researchers),
                                       load_directions(self.config.directions_file))
        ledger = Ledger(prices=load_prices(self.paths.prices), researcher_cap=self.config.researcher_dollars,
                        campaign_cap=self.config.max_dollars, journal=self.paths.spend)
        self.ledger = ledger
        self.stop = threading.Event()
        remaining = max(0.0, self.config.budget_s - self.state.elapsed_s)
        deadline = time.monotonic() + remaining
        kinds = [kind for kind, count in self.config.researchers for _ in range(count)]
        names = researcher_names(self.config.researchers)
        workers = []
        for index, (kind, name) in enumerate(zip(kinds, names)):
            direction = directions[index]
            saved = self.state.researchers.get(name, {})
            status = ResearcherStatus(name=name, kind=kind, direction=direction.name,
                                      experiments=saved.get("experiments", 0), best_dev_pgr=saved.get("best_dev_pgr"),
                                      iterations=saved.get("iterations", 0),
                                      verifications=normalise_verifications(saved.get("verifications", {}),
                                                                            self.task_names[0]))
            self.statuses[name] = status
            researcher_dir = self.paths.researcher_dir(name)
            others = tuple(self.paths.workspace(other) for other in names if other != name)
            toolbox = self.toolbox(name, lab_url, secrets, executor, others=others,
                                   on_event=on_event(status, self.persist), deadline=deadline, stop=self.stop)
            step = make_step(kind, toolbox, direction, self.config.seed * 1000 + index + 1, researcher_dir,
                             ledger, self.config.model, self.config.base_url, self.config.replay_transcript,
                             status=status, provider_retry_s=self.config.provider_retry_s,
                             context_tokens=self.config.context_tokens)
            workers.append(ResearcherWorker(status, toolbox, step, self.stop, deadline,
                                            researcher_dir / "errors.log", idle=self.config.idle,
                                            wrap_up=step.wrap_up if isinstance(step, SearchStep) else None))
        self.persist()
        return workers

    def _research(self, workers: list[ResearcherWorker], executor) -> None:
        self.state.phase = "researching"
        self.persist()
        started, base = time.monotonic(), self.state.elapsed_s
        for worker in workers:
            worker.start()
        try:
            with live_progress(self, workers) as refresh:
                while any(w.thread and w.thread.is_alive() for w in workers):
                    time.sleep(1.0)
                    self.state.elapsed_s = base + time.monotonic() - started
                    self.persist()
                    refresh()
        except KeyboardInterrupt:  # the first Ctrl-C ends research early; a second one stops everything
            self.console.print("[yellow]Ctrl-C: research stops now, and what was found is verified. Press Ctrl-C "
                               f"again to stop at once; the run stays resumable: autow2s run --resume {self.paths.root}[/]")
        finally:
            self.stop.set()
            self._join(workers, executor)
            self.state.elapsed_s = base + time.monotonic() - started
            self.persist()

    def _join(self, workers: list[ResearcherWorker], executor) -> None:
        """Every researcher ends before verification starts: jobs still running after a grace are cancelled."""
        threads = [w.thread for w in workers if w.thread is not None]
        _join_all(threads, JOIN_GRACE_S)
        if any(t.is_alive() for t in threads):
            self.console.print("cancelling the experiments still running…")
            executor.shutdown()  # cancels every job; their researchers' calls return at once
            _join_all(threads, JOIN_AFTER_CANCEL_S)
        stuck = [t.name for t in threads if t.is_alive()]
        if stuck:
            raise AutoW2SError(f"researchers {', '.join(stuck)} did not stop {JOIN_GRACE_S + JOIN_AFTER_CANCEL_S:.0f} s "
                               f"after the deadline; nothing was verified. Resume with "
                               f"`autow2s run --resume {self.paths.root}`")


def _join_all(threads: list[threading.Thread], timeout: float) -> None:
    """Join threads against one shared deadline, not one timeout each."""
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))


__all__ = ["Campaign", "LabError"]
