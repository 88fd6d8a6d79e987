"""run_experiment: a method on several seeds (and research tasks) in the sandbox, each run scored by the lab.

A seed that fails or that the lab refuses is reported in its own entry; the other seeds keep
their scores and the call still succeeds, but the reply says first how many runs were scored
("scored 1 of 5 seeds"), and a mean is given only when every seed of a task was scored: a mean of
the seeds that happened to succeed is not the method's figure. A deterministic method gives
identical predictions on every seed, and the lab answers the repeats from the first evaluation
(free, not flagged).

With several research tasks every chosen (task, seed) runs, each seed with --public pointing at
that task's view, and each task is scored on its own. The overall mean_dev_pgr is the mean over
the chosen tasks of each task's mean dev PGR, and it is None when any chosen task has a seed that
was not scored (those tasks are listed in missing_tasks): a method cannot look good by failing on the task
it finds hard. The "experiment" event of a run on only some research tasks carries mean_dev_pgr
None, so the campaign's best dev PGR is always a mean over every research task. With one research
task the summary keeps its flat shape (per_seed, mean_dev_pgr, seeds_scored, seeds_failed, plus
task); `task_results` reads either shape.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from autow2s.errors import AutoW2SError
from autow2s.researchers.experiment_log import ExperimentLog, ExperimentResult
from autow2s.researchers.lab_client import LabError, pack_method_dir
from autow2s.researchers.output import ToolError
from autow2s.safefs import SafeTree, UnsafePathError

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from autow2s.researchers.lab_client import LabClient
    from autow2s.researchers.toolbox import ToolBox

QUICK_FRACTION = 0.25
STDERR_TAIL_CHARS = 2_000
MAX_OUTPUT_BYTES = 50_000_000  # one seed's predictions and ctx.log entries, as the job wrote them


@dataclass
class ExperimentRecord:
    method_dir: str
    seeds: list[int]
    dev_pgrs: list[float]
    evaluation_ids: list[int]
    quick: bool
    task: str = ""


def _tail(text: str, chars: int = STDERR_TAIL_CHARS) -> str:
    text = text.strip()
    return text if len(text) <= chars else "…" + text[-chars:]


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _timing(results: dict[str, dict[str, Any]], total: float) -> dict[str, float]:
    """The call's wall time split into the jobs' own run time, the sandbox around them, the lab's scoring, and
    the tool's own work (packing the method, reading outputs): benchmarks/experiment_overhead.py reports these."""
    parts = {"jobs_s": 0.0, "sandbox_s": 0.0, "scoring_s": 0.0}
    for result in results.values():
        for entry in result["per_seed"]:
            timing = entry.get("timing", {})
            parts["jobs_s"] += timing.get("job_s", 0.0)
            parts["sandbox_s"] += timing.get("sandbox_s", 0.0)
            parts["scoring_s"] += timing.get("scoring_s", 0.0)
    parts["tool_s"] = max(0.0, total - sum(parts.values()))
    return {"total_s": round(total, 2), **{name: round(value, 2) for name, value in parts.items()}}


def _scored(done: int, total: int, what: str) -> str:
    return f"scored {done} of {total} {what}" + ("" if done == total else
                                                 "; the mean is null unless every one was scored (see each entry)")


def task_results(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """task -> its results (per_seed, mean_dev_pgr, seeds_scored, seeds_failed), from either summary shape."""
    if isinstance(summary.get("tasks"), dict):
        tasks: dict[str, dict[str, Any]] = summary["tasks"]
        return tasks
    if "per_seed" in summary:
        return {str(summary.get("task", "")): summary}
    return {}


class _Host(Protocol):
    """What ExperimentTools' methods use of `self`: the ToolBox it is mixed into (_one_seed included)."""

    lab: LabClient
    name: str
    tasks: tuple[str, ...]
    workspace: Path
    experiment_log: ExperimentLog | None

    @property
    def files(self) -> SafeTree: ...

    @property
    def on_event(self) -> Callable[[str, dict[str, Any]], None]: ...
    @property
    def several_tasks(self) -> bool: ...
    def check_task(self, name: str, tool: str) -> str: ...
    def public_path(self, name: str) -> str: ...
    def _rel(self, relative: str | None) -> str: ...
    def _run_job(self, command: tuple[str, ...], name: str, warm: bool = False) -> Any: ...
    def _job_text(self, result: Any) -> str: ...
    def _one_seed(self, task: str, rel_method: str, run_id: str, seed: int, quick: bool,
                  record: ExperimentRecord) -> dict[str, Any]: ...
    def _keep_method(self, rel_method: str) -> str | None: ...


if TYPE_CHECKING:
    def _toolbox_is_a_host(box: ToolBox) -> _Host:
        return box  # mypy checks here that ToolBox provides everything _Host names


class ExperimentTools:
    """The run_experiment tool, mixed into ToolBox; `self` is the ToolBox (typed as the _Host protocol)."""

    def _tool_run_experiment(self: _Host, method_dir: str, seeds: list[int] | None = None,
                             quick: bool = False, tasks: list[str] | None = None) -> Any:
        rel_method = self._rel(method_dir)
        if self.files.kind(rel_method) != "directory":
            raise ToolError(f"{method_dir}: no such directory in your workspace; write {method_dir}/method.py "
                            "(defining run(ctx)) first, or list_files to see what is there")
        if self.files.kind(f"{rel_method}/method.py") != "file":
            raise ToolError(f"{method_dir}: no method.py there; write one that defines run(ctx)")
        chosen = [self.check_task(name, "run_experiment") for name in dict.fromkeys(tasks or self.tasks)]
        seeds = list(dict.fromkeys(seeds or [42]))
        run_id = uuid.uuid4().hex[:10]
        started = time.monotonic()
        method_sha = self._keep_method(rel_method)  # the code as it runs now, for the campaign's final choice
        results: dict[str, dict[str, Any]] = {}
        records: dict[str, ExperimentRecord] = {}
        for task in chosen:
            record = records[task] = ExperimentRecord(rel_method, seeds, [], [], quick, task)
            per_seed = [self._one_seed(task, rel_method, run_id, seed, quick, record) for seed in seeds]
            complete = len(record.evaluation_ids) == len(seeds)
            results[task] = {"scored": _scored(len(record.evaluation_ids), len(seeds), "seeds"),
                             "mean_dev_pgr": _mean([p for p in record.dev_pgrs if p is not None]) if complete else None,
                             "seeds_scored": len(record.evaluation_ids),
                             "seeds_failed": len(seeds) - len(record.evaluation_ids),
                             "per_seed": per_seed}
        missing = [task for task, result in results.items() if result["mean_dev_pgr"] is None]
        overall = None if missing else _mean([result["mean_dev_pgr"] for result in results.values()])
        summary: dict[str, Any]
        if self.several_tasks:
            runs = sum(result["seeds_scored"] for result in results.values())
            summary = {"scored": _scored(runs, len(seeds) * len(chosen), "runs (task x seed)"),
                       "mean_dev_pgr": overall, "missing_tasks": missing, "method_dir": rel_method,
                       "quick": quick, "tasks": results}
        else:
            summary = {**results[chosen[0]], "method_dir": rel_method, "quick": quick, "task": chosen[0]}
        summary["timing"] = _timing(results, time.monotonic() - started)
        # A run on some of the research tasks counts as an experiment, but its mean is not the suite's:
        # the campaign's best dev PGR (read from the event's mean_dev_pgr) comes from runs on all of them.
        partial = set(chosen) != set(self.tasks)
        self.on_event("experiment", {**summary, "mean_dev_pgr": None} if partial else summary)
        if method_sha is not None and self.experiment_log is not None:
            scored = {task: {"seeds": [entry["seed"] for entry in results[task]["per_seed"]],
                             "dev_pgrs": [entry.get("dev_pgr") for entry in results[task]["per_seed"]],
                             "evaluation_ids": [entry.get("evaluation_id") for entry in results[task]["per_seed"]]}
                      for task in records}
            self.experiment_log.append(ExperimentResult(self.name, rel_method, method_sha, quick, scored))
        return summary

    def _keep_method(self: _Host, rel_method: str) -> str | None:
        """Store the packed method folder in the researcher's log (None: no log, or it cannot be packed now)."""
        if self.experiment_log is None:
            return None
        try:
            return self.experiment_log.store_method(pack_method_dir(self.files, rel_method))
        except (AutoW2SError, OSError):
            return None  # too big or unreadable to snapshot: run_experiment still runs it, unrecorded

    def _one_seed(self: _Host, task: str, rel_method: str, run_id: str, seed: int, quick: bool,
                  record: ExperimentRecord) -> dict[str, Any]:
        where = f"{task}/" if self.several_tasks else ""
        out = f".runs/{run_id}/{where}seed{seed}.json"
        command = ["autow2s", "experiment-job", "--public", self.public_path(task),
                   "--method", f"{{workspace}}/{rel_method}", "--seed", str(seed), "--out", f"{{workspace}}/{out}"]
        if quick:
            command += ["--train-fraction", str(QUICK_FRACTION)]
        started = time.monotonic()
        try:
            name = f"experiment-{task}-{seed}" if self.several_tasks else f"experiment-{seed}"
            result = self._run_job(tuple(command), name, warm=True)
        except ToolError as exc:
            return {"seed": seed, "error": str(exc)}
        ran = time.monotonic() - started
        job = float(result.wall_seconds or 0.0)
        # Where the seed's time went: the job itself, and the sandbox around it (a warm sandbox's first start
        # imports torch; then a fork per job), then the lab's scoring (below).
        timing = {"job_s": round(job, 2), "sandbox_s": round(max(0.0, ran - job), 2)}
        entry: dict[str, Any] = {"seed": seed, "stderr_tail": _tail(result.stderr_tail), "timing": timing}
        if not result.ok:
            entry["error"] = self._job_text(result)[:3000]
            return entry
        try:
            produced = json.loads(self.files.read_bytes(out, MAX_OUTPUT_BYTES))
            predictions, entry["metrics"] = produced["predictions"], produced.get("metrics", [])
        except (OSError, UnsafePathError, ValueError, KeyError, TypeError) as exc:
            entry["error"] = f"the run ended without readable predictions at {out} ({type(exc).__name__}: {exc})"
            return entry
        asked = time.monotonic()
        try:
            scored = self.lab.evaluate(task, predictions)
        except LabError as exc:
            entry["error"] = f"the lab did not score this seed: {exc}"
            return entry
        finally:
            timing["scoring_s"] = round(time.monotonic() - asked, 2)
        record.dev_pgrs.append(scored["dev_pgr"])
        record.evaluation_ids.append(scored["evaluation_id"])
        entry.update({"evaluation_id": scored["evaluation_id"], "dev_pgr": scored["dev_pgr"],
                      "dev_accuracy": scored["dev_accuracy"], "flags": scored.get("flags", []),
                      "budget_left": scored["budget_left"]})
        if scored.get("note"):
            entry["note"] = scored["note"]
        return entry
