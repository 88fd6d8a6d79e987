"""Named suites of tasks: what a campaign researches on, and the held-out tasks it transfers to.

A campaign's **research tasks** are what its researchers see and optimise. Its **transfer tasks**
exist only on the lab's side: the final step runs the best methods on them unchanged, so the
leaderboard shows whether a method generalises or only fits one task's quirks (docs/lab.md).

Each suite names its tasks and each task a family. `--transfer-tasks auto` draws from transfer_pool(): the
pooled tasks whose family no research task has, so transfer is a test on data of another kind; the
default-transfer suite is a fixed set of such tasks for the default research suite.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from autow2s.errors import AutoW2SError

NONE = "none"


@dataclass(frozen=True)
class Suite:
    name: str
    tasks: tuple[str, ...]
    description: str


# The family of each task that is not real: what kind of structure its labels have.
OTHER_FAMILIES: dict[str, str] = {
    "synth-linear": "synthetic clustered-linear",
    "synth-nonlinear": "synthetic xor",
    "synth-pairwise": "synthetic pairwise preference",
    "arith-verify": "arithmetic verification",
    "code-verify": "code verification",
}


def _real_domains() -> dict[str, str]:
    from autow2s.testbed.tasks.real import SPECS

    return {name: spec.family or spec.domain for name, spec in SPECS.items()}


# A real task's family is its domain and corpus (RealSpec.family): tasks sharing texts (tweet-sentiment and
# tweet-neutral; election-tweets and trump-device) share one, so a transfer task never holds a research task's
# texts. Only three domains have tasks with a usable gap (docs/calibration.md), so sentiment tasks on other corpora
# stay eligible for transfer when one is researched. Complete for every task the registry can hold.
FAMILIES: dict[str, str] = {**OTHER_FAMILIES, **_real_domains()}


def is_real(task: str) -> bool:
    """A task built from a real corpus (tasks/real), as against a synthetic preset or a generated text task."""
    from autow2s.testbed.tasks.real import is_real as real

    return real(task)


def is_synthetic(task: str) -> bool:
    """One of the synthetic presets (feature vectors drawn from a latent truth; tasks/synthetic.py)."""
    from autow2s.testbed.tasks.registry import PRESETS

    return task in PRESETS


def transfer_pool(research: tuple[str, ...]) -> tuple[str, ...]:
    """Every registered real task with a usable gap (`pooled`) and every synthetic preset whose family no research
    task has: what a transfer draw may choose from. The generated text tasks (arith-verify, code-verify) stay
    out: their labels are computable, and code-verify's first build executes ~2,000 programs.

    (The draw itself, and how many it picks, is the lab's secret; this only says what is eligible.)
    """
    from autow2s.testbed.tasks.registry import TASKS

    seen = {family(task) for task in research}
    return tuple(name for name in TASKS if (pooled(name) or is_synthetic(name)) and family(name) not in seen)


def pooled(task: str) -> bool:
    """A real task whose measured gap is large enough for its PGR to mean something (RealSpec.pooled)."""
    from autow2s.testbed.tasks.real import SPECS

    return task in SPECS and SPECS[task].pooled


DEFAULT_RESEARCH_SUITE = "default-research"  # what `autow2s run` researches on when --task is not given
DEFAULT_TRANSFER_SUITE = "default-transfer"  # a fixed alternative to the draw (`auto` uses transfer_pool())

# Research: three real tasks of three domains with the widest calibrated gaps (docs/calibration.md) and the default
# synthetic preset. Transfer: the other synthetic presets and pooled real tasks of other families.
DEFAULT_RESEARCH_TASKS = ("synth-linear", "rt-sentiment", "sarcasm-headlines", "newsgroups-sci-talk")
DEFAULT_TRANSFER_TASKS = ("synth-pairwise", "synth-nonlinear", "vader-sentiment", "tweet-neutral")


def _registered_real() -> tuple[str, ...]:
    from autow2s.testbed.tasks.registry import TASKS

    return tuple(name for name in TASKS if is_real(name))


SUITES: dict[str, Suite] = {suite.name: suite for suite in (
    Suite(DEFAULT_RESEARCH_SUITE, DEFAULT_RESEARCH_TASKS,
          "what `autow2s run` researches on by default: three real tasks of three domains and a synthetic one"),
    Suite(DEFAULT_TRANSFER_SUITE, DEFAULT_TRANSFER_TASKS,
          "a fixed held-out set (the default is a secret draw, `auto`): families the default research suite does "
          "not contain, real and synthetic"),
    Suite("synthetic", ("synth-linear", "synth-nonlinear", "synth-pairwise"),
          "the three synthetic presets: seconds to prepare, no download"),
    Suite("real", _registered_real(), "every registered real-data task (fetched from PyPI or Debian on first use)"),
)}


def family(task: str) -> str:
    """A task's family; a task directory or an unlisted task is its own family."""
    return FAMILIES.get(task, task)


def expand_tasks(spec: str, *, option: str = "--task", allow_none: bool = False) -> tuple[str, ...]:
    """'synth-linear', 'synth-linear,rt-sentiment', a suite name or a task directory -> task names/paths.

    `none` (where allowed) is the empty tuple. Names are checked against the registry here, so a typo
    fails before anything is prepared.
    """
    from autow2s.testbed.tasks.registry import TASKS

    spec = spec.strip()
    if allow_none and spec.lower() == NONE:
        return ()
    out: list[str] = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        if part in SUITES:
            out += SUITES[part].tasks
        elif part in TASKS or Path(part).is_dir():
            out.append(part)
        else:
            suites = ", ".join(SUITES)
            raise AutoW2SError(f"{option}: {part!r} is neither a registered task, a suite ({suites}) nor a task "
                               "directory; `autow2s tasks` lists them" + (", and `none` skips transfer"
                                                                         if allow_none else ""))
    if not out:
        raise AutoW2SError(f"{option}: no task named in {spec!r}")
    return tuple(dict.fromkeys(out))


def check_disjoint(research: tuple[str, ...], transfer: tuple[str, ...]) -> None:
    """A transfer task a researcher also studies is no held-out test."""
    shared = sorted(set(research) & set(transfer))
    if shared:
        raise AutoW2SError(f"--transfer-tasks: {', '.join(shared)} {'is' if len(shared) == 1 else 'are'} also a "
                           "research task; a transfer task must be held out. Name other tasks, or `none`")
