"""The task registry: a name maps to a factory; a path loads a task directory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from autow2s.errors import UnknownNameError
from autow2s.testbed.tasks.dataset import Task
from autow2s.testbed.tasks.loader import load_task_dir
from autow2s.testbed.tasks.synthetic import SynthConfig, generate

DEFAULT_TASK = "synth-linear"


@dataclass(frozen=True)
class TaskEntry:
    name: str
    description: str
    factory: Callable[[], Task]


def _synthetic(name: str, description: str, cfg: SynthConfig) -> TaskEntry:
    return TaskEntry(name, description, lambda: generate(name, cfg, description))


PRESETS: dict[str, SynthConfig] = {
    "synth-linear": SynthConfig(structure="linear"),
    "synth-nonlinear": SynthConfig(structure="nonlinear", weak_access=1.6, nuisance_weight=2.0),
    "synth-pairwise": SynthConfig(structure="pairwise"),
}

_DESCRIPTIONS = {
    "synth-linear": "clustered truth along one strong direction; the weak score leans on a nuisance",
    "synth-nonlinear": "truth is the XOR of two strong directions; the weak judge has a noisy XOR score",
    "synth-pairwise": "which of two responses is better; the weak judge prefers length and position A",
}

TASKS: dict[str, TaskEntry] = {
    name: _synthetic(name, _DESCRIPTIONS[name], cfg) for name, cfg in PRESETS.items()
}


def _arith_verify() -> Task:
    from autow2s.testbed.tasks.text.arith_verify import generate as generate_arith

    return generate_arith()


def _code_verify() -> Task:
    from autow2s.testbed.tasks.text.code_verify import build_code_verify

    return build_code_verify()


# Text tasks: their modules are imported only when the task is loaded.
TASKS["arith-verify"] = TaskEntry(
    "arith-verify", "is a worked answer to an arithmetic word problem correct? (computed labels; text)", _arith_verify)
TASKS["code-verify"] = TaskEntry(
    "code-verify", "does a HumanEval solution or mutant pass its tests? (labels from execution; text)", _code_verify)


def register_task(entry: TaskEntry) -> None:
    TASKS[entry.name] = entry


def load_task(name_or_path: str | Path) -> Task:
    """A registered task name, or a path to a task directory."""
    key = str(name_or_path)
    if key in TASKS:
        return TASKS[key].factory()
    path = Path(key)
    if path.exists():
        return load_task_dir(path)
    raise UnknownNameError(
        f"unknown task {key!r}; known tasks: {', '.join(sorted(TASKS))} (or pass a path to a task directory)"
    )
