"""Executes tool calls for one researcher: sandbox tools through the executor, lab tools with its token.

Every failure comes back as readable text so the policy can act on it and the loop goes on.
"""

from __future__ import annotations

import json
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from autow2s.errors import AutoW2SError
from autow2s.executor.base import Executor, JobSpec
from autow2s.researchers.lab_client import LabClient, LabError
from autow2s.researchers.tool_specs import TOOL_NAMES
from autow2s.sandbox.limits import Limits

MAX_TOOL_OUTPUT = 8_000
QUICK_FRACTION = 0.25


class ToolError(AutoW2SError):
    """A tool call the researcher can fix (bad path, missing file, unknown tool)."""


def _clip(text: str, limit: int = MAX_TOOL_OUTPUT) -> str:
    return text if len(text) <= limit else text[: limit // 2] + "\n…[clipped]…\n" + text[-limit // 2 :]


@dataclass
class ExperimentRecord:
    method_dir: str
    seeds: list[int]
    dev_pgrs: list[float]
    evaluation_ids: list[int]
    quick: bool


@dataclass
class ToolBox:
    """The tools of one researcher in one campaign."""

    name: str
    task: str
    workspace: Path
    public_dir: Path
    lab: LabClient
    executor: Executor
    notebook_path: Path
    hidden: tuple[Path, ...] = ()
    limits: Limits = field(default_factory=Limits)
    on_event: Callable[[str, dict[str, Any]], None] = lambda kind, data: None
    experiments: list[ExperimentRecord] = field(default_factory=list)

    def call(self, tool: str, args: dict[str, Any]) -> str:
        """Run one tool call; the result (or the error) as text for the policy."""
        if tool not in TOOL_NAMES:
            return f"error: unknown tool {tool!r}; tools are {', '.join(TOOL_NAMES)}"
        try:
            result = getattr(self, f"_tool_{tool}")(**args)
        except TypeError as exc:
            result = f"error: bad arguments for {tool}: {exc}"
        except (ToolError, LabError, AutoW2SError) as exc:
            result = f"error: {exc}"
        except OSError as exc:
            result = f"error: {type(exc).__name__}: {exc}"
        text = result if isinstance(result, str) else json.dumps(result, default=str)
        self.on_event("tool", {"tool": tool, "ok": not text.startswith("error:")})
        return _clip(text)

    # -- workspace paths -------------------------------------------------------------------
    def _path(self, relative: str | None) -> Path:
        root = self.workspace.resolve()
        rel = (relative or ".").removeprefix("/workspace").lstrip("/") or "."
        path = (root / rel).resolve()
        if not path.is_relative_to(root):
            raise ToolError(f"path {relative!r} is outside your workspace; use paths relative to it")
        return path

    # -- sandbox tools ---------------------------------------------------------------------
    def _run_job(self, command: tuple[str, ...], name: str, warm: bool = False) -> Any:
        """One sandboxed job; warm ones (experiments, python snippets) start with torch imported."""
        spec = JobSpec(command=command, workspace=self.workspace, task_data=self.public_dir, hidden=self.hidden,
                       limits=self.limits, name=f"{self.name}-{name}", warm=warm)
        return self.executor.result(self.executor.submit(spec))

    @staticmethod
    def _job_text(result: Any) -> str:
        head = f"exit {result.exit_code}" + (f" (killed: {result.limit_hit} limit)" if result.limit_hit else "")
        if result.error and not result.limit_hit:
            head += f" ({result.error})"
        return _clip(f"{head}\n--- stdout ---\n{result.stdout_tail}\n--- stderr ---\n{result.stderr_tail}")

    def _tool_bash(self, command: str) -> str:
        return self._job_text(self._run_job(("bash", "-lc", command), "bash"))

    def _tool_python(self, code: str) -> str:
        scratch = self._path(".scratch")
        scratch.mkdir(exist_ok=True)
        script = scratch / f"snippet_{uuid.uuid4().hex[:8]}.py"
        script.write_text(code)
        return self._job_text(self._run_job(("python", f"{{workspace}}/.scratch/{script.name}"), "python",
                                            warm=True))

    def _tool_read_file(self, path: str) -> str:
        target = self._path(path)
        if not target.is_file():
            raise ToolError(f"{path}: no such file in your workspace")
        return target.read_text(errors="replace")

    def _tool_write_file(self, path: str, content: str) -> str:
        target = self._path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
        return f"wrote {len(content)} characters to {path}"

    def _tool_edit_file(self, path: str, old_text: str, new_text: str) -> str:
        text = self._tool_read_file(path)
        count = text.count(old_text)
        if count != 1:
            raise ToolError(f"{path}: old_text occurs {count} times; it must occur exactly once")
        self._path(path).write_text(text.replace(old_text, new_text))
        return f"edited {path}"

    def _tool_list_files(self, path: str = ".") -> str:
        root = self._path(path)
        if not root.is_dir():
            raise ToolError(f"{path}: not a directory in your workspace")
        entries = sorted(str(p.relative_to(self.workspace.resolve())) for p in root.rglob("*")
                         if p.is_file() and ".scratch" not in p.parts and ".runs" not in p.parts)
        return "\n".join(entries[:500]) or "(empty)"

    def _tool_run_experiment(self, method_dir: str, seeds: list[int] | None = None, quick: bool = False) -> Any:
        method = self._path(method_dir)
        if not (method / "method.py").is_file():
            raise ToolError(f"{method_dir}: no method.py there; write one that defines run(ctx)")
        seeds = list(seeds or [42])[:5]
        run_id = uuid.uuid4().hex[:10]
        rel_method = str(method.relative_to(self.workspace.resolve()))
        per_seed: list[dict[str, Any]] = []
        record = ExperimentRecord(rel_method, seeds, [], [], quick)
        for seed in seeds:
            out = f".runs/{run_id}/seed{seed}.json"
            command = ["autow2s", "predict", "--public", "{task_data}", "--method", f"{{workspace}}/{rel_method}",
                       "--seed", str(seed), "--out", f"{{workspace}}/{out}"]
            if quick:
                command += ["--train-fraction", str(QUICK_FRACTION)]
            result = self._run_job(tuple(command), f"experiment-{seed}", warm=True)
            if not result.ok:
                per_seed.append({"seed": seed, "error": self._job_text(result)})
                continue
            predictions = json.loads(self._path(out).read_text())["predictions"]
            scored = self.lab.evaluate(self.task, predictions)
            record.dev_pgrs.append(scored["dev_pgr"])
            record.evaluation_ids.append(scored["evaluation_id"])
            per_seed.append({"seed": seed, "evaluation_id": scored["evaluation_id"], "dev_pgr": scored["dev_pgr"],
                             "dev_accuracy": scored["dev_accuracy"], "flags": scored.get("flags", []),
                             "budget_left": scored["budget_left"]})
        self.experiments.append(record)
        scored_pgrs = [p for p in record.dev_pgrs if p is not None]
        summary = {"method_dir": rel_method, "quick": quick, "per_seed": per_seed,
                   "mean_dev_pgr": sum(scored_pgrs) / len(scored_pgrs) if scored_pgrs else None}
        self.on_event("experiment", summary)
        return summary

    # -- lab tools -------------------------------------------------------------------------
    def _tool_evaluate_predictions(self, predictions_file: str, snapshot_id: str | None = None) -> Any:
        data = json.loads(self._tool_read_file(predictions_file))
        predictions = data["predictions"] if isinstance(data, dict) else data
        return self.lab.evaluate(self.task, predictions, snapshot_id)

    def _tool_share_finding(self, type: str, title: str, body: str, tags: list[str] | None = None,
                            evaluation_id: int | None = None, verify_id: int | None = None) -> Any:
        finding = self.lab.share_finding(type=type, title=title, body=body, tags=tags or [], task=self.task,
                                         evaluation_id=evaluation_id, verify_id=verify_id)
        self.on_event("finding", {"id": finding.get("id"), "type": type})
        return finding

    def _tool_search_findings(self, query: str | None = None, sort: str | None = None, limit: int = 10) -> Any:
        return self.lab.search_findings(q=query, sort=sort, limit=min(int(limit), 50), task=self.task)

    def _tool_read_finding(self, finding_id: int) -> Any:
        return self.lab.read_finding(finding_id)

    def _tool_comment(self, finding_id: int, body: str) -> Any:
        return self.lab.comment(finding_id, body)

    def _tool_vote(self, finding_id: int, value: int) -> Any:
        return self.lab.vote(finding_id, value)

    def _tool_leaderboard(self) -> Any:
        return self.lab.leaderboard(self.task)

    def _tool_save_snapshot(self, method_dir: str, message: str, parent_id: str | None = None) -> Any:
        method = self._path(method_dir)
        if not (method / "method.py").is_file():
            raise ToolError(f"{method_dir}: no method.py there")
        snapshot = self.lab.save_snapshot(method, name=method.name, message=message, parent_id=parent_id)
        self.on_event("snapshot", {"snapshot_id": snapshot["snapshot_id"]})
        return snapshot

    def _tool_download_snapshot(self, snapshot_id: str) -> str:
        dest = self._path(f"prior_work/{snapshot_id}")
        if dest.exists():
            shutil.rmtree(dest)
        files = self.lab.download_snapshot(snapshot_id, dest)
        return f"downloaded {len(files)} files into prior_work/{snapshot_id}/: {', '.join(files)}"

    def _tool_request_verification(self, snapshot_id: str) -> Any:
        status = self.lab.request_verification(snapshot_id, self.task)
        self.on_event("verification", status)
        return status

    def _tool_notebook(self, action: str, text: str = "") -> str:
        self.notebook_path.parent.mkdir(parents=True, exist_ok=True)
        current = self.notebook_path.read_text() if self.notebook_path.exists() else ""
        if action == "read":
            return current or "(your notebook is empty)"
        if action not in ("append", "write"):
            raise ToolError("notebook action must be read, append or write")
        updated = (current + "\n" + text) if action == "append" else text
        self.notebook_path.write_text(updated.strip() + "\n")
        return f"notebook now {len(updated)} characters"
