"""Executes tool calls for one researcher: sandbox tools through the executor, lab tools with its token.

No tool call can kill a researcher. Arguments are checked against the tool's schema first; every
failure comes back as one `error: ...` line that says what to do next; every error, and the
traceback of any bug in autow2s itself, goes to the researcher's error log. Jobs never outlive
the campaign's deadline: each one's wall limit is at most the time left, and a job still running
at the deadline plus a short grace is cancelled.
"""

from __future__ import annotations

import json
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from autow2s.errors import AutoW2SError
from autow2s.executor.base import Executor, JobSpec
from autow2s.researchers.experiment_log import ExperimentLog
from autow2s.researchers.experiments import ExperimentRecord, ExperimentTools
from autow2s.researchers.lab_client import LabClient, LabError
from autow2s.researchers.lab_tools import LabTools
from autow2s.researchers.output import ToolError, clip_lines
from autow2s.researchers.tool_specs import TOOL_NAMES, validate_arguments
from autow2s.researchers.views import mirror_forum, prepare_view, ro_mounts
from autow2s.researchers.workspace_files import WorkspaceFiles
from autow2s.sandbox.limits import Limits

DEADLINE_GRACE_S = 10.0
OUTER_MAX_LINES = 260
OUTER_MAX_CHARS = 16_000
MIN_JOB_SECONDS = 5.0
FORUM_MIRROR_EVERY_S = 10.0
__all__ = ["ExperimentRecord", "ToolBox", "ToolError"]


@dataclass
class ToolBox(WorkspaceFiles, ExperimentTools, LabTools):
    """The tools of one researcher in one campaign.

    tasks: the research tasks, in order (at least one). The first is the default wherever a tool
        takes one task (leaderboard, lab_status) and the forum's task.
    task_view: the directory mounted read-only at /task in the sandbox. With one research task it is
        that task's public view itself (/task/train_unlabel.jsonl ...); with several it holds one
        public view per task (/task/<name>/train_unlabel.jsonl ...).
    error_log: where every tool error (and the traceback of any bug) is appended; None: nowhere.
    record_dir: a host folder (the researcher's own in a campaign) where every run_experiment's per-seed
        results and the method it ran are kept, so the campaign can verify the best of any researcher.
    view_dir: the host folder (outside the workspace) with the researcher's read-only views, the forum
        mirror and the method reference, mounted at /forum and /reference in every job
        (researchers/views.py); by default `view-NAME` beside the notebook.
    deadline: a time.monotonic() value past which no job starts and running jobs are cancelled.
    stop: set by the campaign to end waits and running jobs early (Ctrl-C, the end of the run).
    """

    name: str
    tasks: tuple[str, ...]
    workspace: Path
    task_view: Path
    lab: LabClient
    executor: Executor
    notebook_path: Path
    hidden: tuple[Path, ...] = ()
    limits: Limits = field(default_factory=Limits)
    on_event: Callable[[str, dict[str, Any]], None] = lambda kind, data: None
    error_log: Path | None = None
    deadline: float | None = None
    stop: threading.Event | None = None
    view_dir: Path | None = None
    record_dir: Path | None = None  # where run_experiment's results and methods are kept (experiment_log.py)

    def __post_init__(self) -> None:
        self.tasks = (self.tasks,) if isinstance(self.tasks, str) else tuple(self.tasks)
        if not self.tasks:
            raise AutoW2SError("a researcher needs at least one research task")
        if len(set(self.tasks)) != len(self.tasks):
            raise AutoW2SError(f"research tasks must be distinct, got {', '.join(self.tasks)}")
        if self.view_dir is None:
            self.view_dir = self.notebook_path.parent / f"view-{self.name}"
        self.experiment_log = ExperimentLog(self.record_dir, self.name) if self.record_dir is not None else None
        prepare_view(self.view_dir)
        self._forum_mirrored_at: float | None = None

    def refresh_views(self, *, force: bool = False) -> None:
        """Bring the forum mirror up to date (at most every FORUM_MIRROR_EVERY_S); a lab hiccup only waits."""
        now = time.monotonic()
        if not force and self._forum_mirrored_at is not None and now - self._forum_mirrored_at < FORUM_MIRROR_EVERY_S:
            return
        self._forum_mirrored_at = now
        try:
            mirror_forum(self.lab, self.forum_task, self.view_root)
        except (AutoW2SError, OSError) as exc:
            self.log_error(f"could not mirror the forum into {self.view_dir}: {exc}")

    def call(self, tool: str, args: dict[str, Any]) -> str:
        """Run one tool call; the result (or one error line) as text for the policy. Never raises."""
        self.refresh_views()
        if isinstance(args, dict):  # many models send null for an optional argument they mean to leave out
            args = {key: value for key, value in args.items() if value is not None}
        problem = validate_arguments(tool, args)
        if problem is not None and tool not in TOOL_NAMES:
            text = f"error: {problem}"
        elif problem is not None:
            text = f"error: {tool}: {problem}; fix the arguments and call it again"
        else:
            text = self._dispatch(tool, args)
        ok = not text.startswith("error:")
        if not ok:
            text = " / ".join(line for line in text.splitlines() if line.strip())  # one line, as promised
            self.log_error(f"tool {tool} {json.dumps(args, default=str)[:500]} -> {text[:1000]}")
        try:
            self.on_event("tool", {"tool": tool, "ok": ok})
        except Exception:  # noqa: BLE001 - the campaign's bookkeeping must not cost the researcher its result
            self.log_error(f"bug in the tool event hook:\n{traceback.format_exc()}")
        return text

    def _dispatch(self, tool: str, args: dict[str, Any]) -> str:
        try:
            result = getattr(self, f"_tool_{tool}")(**args)
            text = result if isinstance(result, str) else json.dumps(result, default=str)
            if len(text) > OUTER_MAX_CHARS and not isinstance(result, str):
                text = json.dumps(result, default=str, indent=1)  # one field a line, so clipping keeps structure
            # A backstop for tools that return structured data; text tools clipped their own output already.
            return clip_lines(text, f"the output of this {tool} call", max_lines=OUTER_MAX_LINES, head_lines=100,
                              max_chars=OUTER_MAX_CHARS)
        except (ToolError, LabError) as exc:
            return f"error: {exc}"
        except AutoW2SError as exc:
            return f"error: {tool}: {exc}"
        except OSError as exc:
            return f"error: {tool}: {type(exc).__name__}: {exc}; check the path and try again"
        except Exception as exc:  # noqa: BLE001 - a bug in autow2s must not end the researcher
            self.log_error(f"bug in tool {tool}:\n{traceback.format_exc()}")
            return (f"error: {tool} failed inside autow2s ({type(exc).__name__}: {exc}). This is a bug in the "
                    "lab's tooling, not in your call, and it was logged; do something else or try another way")

    # -- research tasks --------------------------------------------------------------------
    @property
    def task(self) -> str:
        """The first research task (the default of leaderboard and lab_status, and the forum's task)."""
        return self.tasks[0]

    @property
    def several_tasks(self) -> bool:
        return len(self.tasks) > 1

    @property
    def forum_task(self) -> str | None:
        """The forum filter: the task with one research task; none with several, since a finding is filed
        under the task of the evaluation it cites and the campaign's forum spans all its tasks."""
        return None if self.several_tasks else self.tasks[0]

    def public_path(self, name: str) -> str:
        """Where task `name`'s public view is inside the sandbox, as the placeholder the executor fills in."""
        return "{task_data}" if not self.several_tasks else f"{{task_data}}/{name}"

    def sandbox_path(self, name: str) -> str:
        """The same path as a researcher sees it (/task or /task/<name>)."""
        return "/task" if not self.several_tasks else f"/task/{name}"

    def check_task(self, name: str, tool: str) -> str:
        if name not in self.tasks:
            raise ToolError(f"{tool}: {name!r} is not a research task; the research tasks are {', '.join(self.tasks)}")
        return name

    def one_task(self, name: str | None, tool: str) -> str:
        """The task a one-task tool acts on: the one named, or the only research task."""
        if name is not None:
            return self.check_task(name, tool)
        if self.several_tasks:
            raise ToolError(f"{tool}: there are several research tasks ({', '.join(self.tasks)}); say which one "
                            "with task=<name>")
        return self.tasks[0]

    def log_error(self, text: str) -> None:
        if self.error_log is None:
            return
        try:
            self.error_log.parent.mkdir(parents=True, exist_ok=True)
            with self.error_log.open("a", encoding="utf-8") as handle:
                handle.write(f"[{time.strftime('%Y-%m-%d %H:%M:%S')}] {self.name}: {text.rstrip()}\n")
        except OSError:
            pass  # the log is a convenience: a full disk must not turn into a crashed researcher

    def stopping(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    def time_left(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    # -- sandbox jobs ----------------------------------------------------------------------
    def _run_job(self, command: tuple[str, ...], name: str, warm: bool = False) -> Any:
        """One sandboxed job; warm ones (experiments, python snippets) start with torch imported."""
        limits = self.limits
        left = self.time_left()
        if left is not None:
            if left < MIN_JOB_SECONDS:
                raise ToolError("the campaign's time is up: no new job starts now; save your notes and end your turn")
            limits = replace(limits, wall_seconds=min(limits.wall_seconds, left))
        if self.stopping():
            raise ToolError("the campaign is stopping: no new job starts now; end your turn")
        spec = JobSpec(command=command, workspace=self.workspace, task_data=self.task_view, hidden=self.hidden,
                       limits=limits, name=f"{self.name}-{name}", warm=warm, ro_mounts=ro_mounts(self.view_root))
        self._job_limits = limits  # what _job_text names when a limit killed the job
        handle = self.executor.submit(spec)
        while True:
            try:
                return self.executor.result(handle, timeout=1.0)
            except TimeoutError:
                late = self.deadline is not None and time.monotonic() > self.deadline + DEADLINE_GRACE_S
                if late or self.stopping():
                    self.executor.cancel(handle)
                    return self.executor.result(handle, timeout=60.0)

    @staticmethod
    def _full_output(path: Path | None, tail: str) -> str:
        """The whole stream when it is on this machine (the tail alone loses the start of a `cat`)."""
        if path is not None:
            try:
                if path.is_file() and path.stat().st_size <= 4_000_000:
                    return path.read_text(errors="replace")
            except OSError:
                pass
        return tail

    def _job_text(self, result: Any) -> str:
        head = f"exit {result.exit_code}"
        if result.limit_hit:
            limits = getattr(self, "_job_limits", self.limits)
            head += f" (killed: {limits.describe(result.limit_hit)} limit hit)"
            if limits.wall_seconds < self.limits.wall_seconds and result.limit_hit == "wall_time":
                head += "; the campaign's deadline shortened it"
        elif result.error:
            head += f" ({result.error})"
        stdout = self._full_output(result.stdout_path, result.stdout_tail)
        stderr = self._full_output(result.stderr_path, result.stderr_tail)
        return (f"{head}\n--- stdout ---\n{self._spill(stdout, 'stdout', 130, 8_000)}\n"
                f"--- stderr ---\n{self._spill(stderr, 'stderr', 50, 3_000)}")

    # -- sandbox tools ---------------------------------------------------------------------
    def _tool_bash(self, command: str) -> str:
        return self._job_text(self._run_job(("bash", "-lc", command), "bash"))

    def _tool_python(self, code: str) -> str:
        script = self._write_scratch("snippet", ".py", code)
        self._prune_scratch("snippet_")
        return self._job_text(self._run_job(("python", f"{{workspace}}/.scratch/{script}"), "python", warm=True))

    def _tool_notebook(self, action: str, text: str = "") -> str:
        self.notebook_path.parent.mkdir(parents=True, exist_ok=True)
        current = self.notebook_path.read_text() if self.notebook_path.exists() else ""
        if action == "read":
            return current or "(your notebook is empty)"
        updated = (current + "\n" + text) if action == "append" else text
        self.notebook_path.write_text(updated.strip() + "\n")
        return f"notebook now {len(updated)} characters"
