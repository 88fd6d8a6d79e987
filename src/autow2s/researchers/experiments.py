"""run_experiment: a method on several seeds in the sandbox, each seed scored by the lab on its own.

A seed that fails or that the lab refuses is reported in its own entry; the other seeds keep
their scores and the call still succeeds. A deterministic method gives identical predictions on
every seed, and the lab answers the repeats from the first evaluation (free, not flagged).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from autow2s.researchers.lab_client import LabError
from autow2s.researchers.output import ToolError

if TYPE_CHECKING:
    from autow2s.researchers.toolbox import ToolBox

QUICK_FRACTION = 0.25
STDERR_TAIL_CHARS = 2_000
LAUNCHER = "from autow2s.researchers.experiment_job import main\nmain()\n"


@dataclass
class ExperimentRecord:
    method_dir: str
    seeds: list[int]
    dev_pgrs: list[float]
    evaluation_ids: list[int]
    quick: bool


def _tail(text: str, chars: int = STDERR_TAIL_CHARS) -> str:
    text = text.strip()
    return text if len(text) <= chars else "…" + text[-chars:]


class ExperimentTools:
    """The run_experiment tool, mixed into ToolBox."""

    def _tool_run_experiment(self: "ToolBox", method_dir: str, seeds: list[int] | None = None,
                             quick: bool = False) -> Any:
        method = self._path(method_dir)
        if not method.is_dir():
            raise ToolError(f"{method_dir}: no such directory in your workspace; write {method_dir}/method.py "
                            "(defining run(ctx)) first, or list_files to see what is there")
        if not (method / "method.py").is_file():
            raise ToolError(f"{method_dir}: no method.py there; write one that defines run(ctx)")
        seeds = list(dict.fromkeys(seeds or [42]))
        run_id = uuid.uuid4().hex[:10]
        rel_method = str(method.relative_to(self.workspace.resolve()))
        scratch = self._path(".scratch")
        scratch.mkdir(exist_ok=True)
        (scratch / "experiment_job.py").write_text(LAUNCHER)
        record = ExperimentRecord(rel_method, seeds, [], [], quick)
        per_seed = [self._one_seed(rel_method, run_id, seed, quick, record) for seed in seeds]
        self.experiments.append(record)
        scored = [p for p in record.dev_pgrs if p is not None]
        summary = {"method_dir": rel_method, "quick": quick, "per_seed": per_seed,
                   "mean_dev_pgr": sum(scored) / len(scored) if scored else None,
                   "seeds_scored": len(record.evaluation_ids), "seeds_failed": len(seeds) - len(record.evaluation_ids)}
        self.on_event("experiment", summary)
        return summary

    def _one_seed(self: "ToolBox", rel_method: str, run_id: str, seed: int, quick: bool,
                  record: ExperimentRecord) -> dict[str, Any]:
        out = f".runs/{run_id}/seed{seed}.json"
        command = ["python", "{workspace}/.scratch/experiment_job.py", "--public", "{task_data}",
                   "--method", f"{{workspace}}/{rel_method}", "--seed", str(seed), "--out", f"{{workspace}}/{out}"]
        if quick:
            command += ["--train-fraction", str(QUICK_FRACTION)]
        try:
            result = self._run_job(tuple(command), f"experiment-{seed}", warm=True)
        except ToolError as exc:
            return {"seed": seed, "error": str(exc)}
        entry: dict[str, Any] = {"seed": seed, "stderr_tail": _tail(result.stderr_tail)}
        if not result.ok:
            entry["error"] = self._job_text(result)[:3000]
            return entry
        try:
            produced = json.loads(self._path(out).read_text())
            predictions, entry["metrics"] = produced["predictions"], produced.get("metrics", [])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            entry["error"] = f"the run ended without readable predictions at {out} ({type(exc).__name__}: {exc})"
            return entry
        try:
            scored = self.lab.evaluate(self.task, predictions)
        except LabError as exc:
            entry["error"] = f"the lab did not score this seed: {exc}"
            return entry
        record.dev_pgrs.append(scored["dev_pgr"])
        record.evaluation_ids.append(scored["evaluation_id"])
        entry.update({"evaluation_id": scored["evaluation_id"], "dev_pgr": scored["dev_pgr"],
                      "dev_accuracy": scored["dev_accuracy"], "flags": scored.get("flags", []),
                      "budget_left": scored["budget_left"]})
        if scored.get("note"):
            entry["note"] = scored["note"]
        return entry
