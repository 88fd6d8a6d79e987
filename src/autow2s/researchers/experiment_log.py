"""Every researcher's run_experiment results in one place, with the exact method each ran.

The campaign's final step chooses what to verify from these records, whatever kind of researcher made
them (search, an LLM, an attached MCP agent): it used to read only the search researchers' own
trials. Each record names the method by the digest of the packed method folder, stored beside the
log as it was when the experiment started, so the snapshot verified is the code that was measured.
Both live in the researcher's host folder (RUN/researchers/NAME/), which no job can see.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LOG_NAME = "experiments.jsonl"
METHODS_DIR = "methods"


@dataclass(frozen=True)
class ExperimentResult:
    """One run_experiment call: per research task, the seeds, their dev PGRs (None: not scored) and evaluations."""

    researcher: str
    method_dir: str
    method_sha: str
    quick: bool
    tasks: dict[str, dict[str, list[Any]]]
    time: float = field(default_factory=time.time)

    def complete_on(self, research_tasks: tuple[str, ...]) -> bool:
        """Every research task ran and every seed of each was scored: the method's figure, not a partial one."""
        return all(task in self.tasks and self.tasks[task]["dev_pgrs"] and
                   all(p is not None for p in self.tasks[task]["dev_pgrs"]) for task in research_tasks)


class ExperimentLog:
    """The append-only log and the stored method tarballs of one researcher."""

    def __init__(self, folder: Path, researcher: str) -> None:
        self.folder, self.researcher = folder, researcher

    def store_method(self, packed: bytes) -> str:
        """Keep a packed method folder under its sha256 (written once); returns the digest."""
        digest = hashlib.sha256(packed).hexdigest()
        target = self.folder / METHODS_DIR / f"{digest}.tar.gz"
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_suffix(f".partial-{time.monotonic_ns()}")
            partial.write_bytes(packed)
            partial.replace(target)
        return digest

    def method(self, digest: str) -> bytes:
        return (self.folder / METHODS_DIR / f"{digest}.tar.gz").read_bytes()

    def append(self, result: ExperimentResult) -> None:
        record = {"researcher": result.researcher, "method_dir": result.method_dir, "method_sha": result.method_sha,
                  "quick": result.quick, "tasks": result.tasks, "time": result.time}
        self.folder.mkdir(parents=True, exist_ok=True)
        with (self.folder / LOG_NAME).open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
            handle.flush()

    def results(self) -> list[ExperimentResult]:
        """Every record; a torn last line (a kill mid-write) is skipped."""
        path = self.folder / LOG_NAME
        if not path.exists():
            return []
        found = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                data = json.loads(line)
                found.append(ExperimentResult(researcher=data["researcher"], method_dir=data["method_dir"],
                                              method_sha=data["method_sha"], quick=bool(data["quick"]),
                                              tasks=data["tasks"], time=float(data["time"])))
            except (ValueError, KeyError, TypeError):
                continue
        return found
