"""What an LLM researcher is told at the start of each iteration (a fresh conversation).

Every limit it can hit is stated, generated from the settings in force (the toolbox's job limits,
the lab's budgets and verification settings, the conversation's own limits), so an agent never
learns a limit by being killed by it. With several research tasks the prompt names each, says
where its public view is (/task/<name>/), and states each task's budgets and standing; it never
names or counts the held-out tasks (the researcher does not know them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from autow2s.researchers.directions import Direction
from autow2s.researchers.views import FORUM_MOUNT, REFERENCE_PATH
from autow2s.sandbox.limits import Limits, MiB

SYSTEM = """You are an automated alignment researcher working on weak-to-strong (W2S) supervision.

The problem: a strong model is trained only on labels from a weak supervisor. Your job is to write
methods that let the strong student recover as much of its ground-truth performance as possible.
The score is PGR = (transfer_acc - weak_acc) / (ceiling_acc - weak_acc), measured by the lab.

A method is a directory with method.py defining run(ctx) -> P(label=1) for every test input. ctx gives
ctx.inputs(split), ctx.weak_inputs(split), ctx.weak_soft_labels(split) for split in {{train_unlabel, test}},
ctx.weak_model(), ctx.strong_model(**hparams) (a student with fit(inputs, targets, loss=..., weights=...),
predict_proba(inputs) and features(inputs)), ctx.seed, ctx.rng, ctx.log(**metrics) and ctx.time_left().
The full reference, with examples (ctx, the student's hparams, losses, the Recipe of library parts),
is at {reference}: read it before writing your first method.

Rules of the lab (they are enforced, and breaking them wastes your budget):
- You never see labels. The lab scores predictions on a dev split within a budget; a hidden holdout
  decides the leaderboard, through verification on seeds the lab chooses.
- Submissions that probe the scorer (many small changes of earlier ones, constant answers) are
  flagged or refused. Resubmitting identical or nearly identical predictions of your own is free:
  you get the earlier answer.
- Report results honestly: cite the evaluation or verification id; the lab shows its own figure.

Limits in force (you will hit these, so plan for them):
{limits}

{tasks}
Your method will be run unchanged on held-out tasks you never see; the leaderboard also shows how it
transfers, so prefer methods that do not depend on one task's quirks.
Other researchers' findings are mirrored read-only in {forum}/ (one markdown file each: grep it).

Your starting direction: {direction_name}: {direction_prompt}

Work in small steps: write or adapt a method, run_experiment (quick first), share what you learn,
save_snapshot of anything promising and request_verification of your best. lab_status shows your
evaluations, verifications and budgets; use wait (it costs nothing) instead of polling when you are
waiting for a verification or for news. Keep your notebook up to date: it is your only memory between
iterations. When there is nothing useful left to do, say so and end your turn without a tool call.
"""

USER = """Iteration {iteration}. {standing}
Your notebook:
---
{notebook}
---
Continue your research. End your turn without a tool call when this iteration's work is done."""


@dataclass(frozen=True)
class PromptLimits:
    """The numbers the prompt states; `labs` is the lab's own status answer on each research task (task ->
    answer; a task whose status could not be read is left out, and None or {} when none could be)."""

    job_limits: Limits
    max_turns: int | None  # None: no conversation of ours (an attached harness runs its own)
    context_tokens: int | None
    labs: dict[str, dict[str, Any]] | None = None
    seconds_left: float | None = None
    several_tasks: bool = False  # name each task's figures even if only one task's status could be read

    def named(self) -> bool:
        return self.several_tasks or len(self.labs or {}) > 1


def _budget_line(kind: str, budget: dict[str, Any], task: str | None = None) -> str:
    where = "this task" if task is None else task
    return (f"{budget['total']} {kind} requests on {where} in all (at most {budget['rate_per_minute']} per "
            "minute); the total does not reset")


def describe_tasks(tasks: Sequence[str]) -> str:
    """Which tasks the researcher works on and where their public data is in the sandbox."""
    if len(tasks) == 1:
        return (f"Your task: {tasks[0]}. Your workspace is /workspace (the public task data is read-only at "
                "/task).")
    views = ", ".join(f"{name} at /task/{name}/" for name in tasks)
    return (f"Your research tasks ({len(tasks)}): {', '.join(tasks)}. Your workspace is /workspace; each task's "
            f"public data is read-only in its own directory: {views}. run_experiment runs your method on every "
            "research task by default (tasks=[...] picks some) and reports each task's dev PGR and their mean "
            "(null unless every seed of every task was scored); evaluate_predictions needs task=<name>; leaderboard and "
            "lab_status take task=<name>; request_verification verifies a snapshot on every research task.")


def describe_limits(limits: PromptLimits) -> str:
    jobs = limits.job_limits
    lines = [f"- Each bash, python or experiment job (one per seed) is killed after {jobs.wall_seconds:g} s of wall "
             "time" + (f", or at {jobs.memory_bytes / MiB:.0f} MiB of memory" if jobs.memory_bytes else "") +
             (f", {jobs.cpu_seconds:g} s of CPU" if jobs.cpu_seconds else "") + "; run_experiment takes at most 5 "
             "seeds; quick=true is about four times faster."]
    labs = limits.labs or {}
    several = limits.named()
    for task, lab in labs.items():
        budgets, settings = lab["budgets"], lab["limits"]
        on = f" on {task}" if several else ""
        named = task if several else None
        lines.append(f"- Dev scoring{on}: {_budget_line('evaluate', budgets['evaluate'], named)}. Each scores "
                     f"{settings['n_dev']} of the {settings['n_test']} test items; a submission within "
                     f"{settings['near_duplicate_min_items']} items of an earlier one of yours is answered with that "
                     "evaluation's figure, uncharged (your change did nothing measurable).")
        lines.append(f"- Verification{on}: {_budget_line('verify', budgets['verify'], named)}. Each runs your "
                     f"snapshot on {settings['verify_seed_count']} lab-chosen seeds" +
                     (" and again with a null supervisor" if settings.get("null_supervisor_check") else "") +
                     ", so it takes several times one experiment's run time; wait for it instead of polling.")
    if not labs:
        lines.append("- Dev scoring and verification have budgets and per-minute rates; lab_status shows them.")
    if limits.max_turns is not None and limits.context_tokens is not None:
        lines.append(f"- This conversation: at most {limits.max_turns} model turns; past about "
                     f"{limits.context_tokens:,} tokens of history, the oldest tool results are replaced by one-line "
                     "summaries.")
    lines.append("- Long tool output keeps its head and tail; the marker says how to read the cut lines (read_file "
                 "with a line range).")
    return "\n".join(lines)


def system_prompt(tasks: str | Sequence[str], direction: Direction, limits: PromptLimits | None = None) -> str:
    """tasks: the research tasks (one name, or several in order)."""
    tasks = (tasks,) if isinstance(tasks, str) else tuple(tasks)
    text = describe_limits(limits) if limits is not None else "- lab_status shows your budgets and rates."
    return SYSTEM.format(tasks=describe_tasks(tasks), direction_name=direction.name,
                         direction_prompt=direction.prompt, reference=REFERENCE_PATH, limits=text,
                         forum=FORUM_MOUNT)


def _best_recent(lab: dict[str, Any]) -> str:
    scores = [e["dev_pgr"] for e in lab.get("evaluations_recent", []) if e.get("dev_pgr") is not None]
    return f"best recent dev PGR {max(scores):.3f}" if scores else "no dev PGR yet"


def standing_line(limits: PromptLimits | None) -> str:
    """What is left now (changes every iteration, so it lives in the user prompt, not the cached system one)."""
    parts = []
    labs = (limits.labs or {}) if limits is not None else {}
    several = limits is not None and limits.named()
    if labs and not several:
        lab = next(iter(labs.values()))
        budgets = lab["budgets"]
        parts.append(f"Budget left: {budgets['evaluate']['left']} evaluations, {budgets['verify']['left']} "
                     f"verifications; {lab['evaluations_total']} evaluations so far; pending verifications: "
                     f"{lab['pending_verifications'] or 'none'}.")
    for task, lab in labs.items() if several else ():
        budgets = lab["budgets"]
        parts.append(f"On {task}: budget left {budgets['evaluate']['left']} evaluations, "
                     f"{budgets['verify']['left']} verifications; {lab['evaluations_total']} evaluations so far, "
                     f"{_best_recent(lab)}; pending verifications: {lab['pending_verifications'] or 'none'}.")
    if limits is not None and limits.seconds_left is not None:
        parts.append(f"The campaign ends in about {max(0.0, limits.seconds_left) / 60:.0f} minutes.")
    return " ".join(parts)


def research_brief(tasks: Sequence[str], direction: Direction, limits: PromptLimits, notebook: str) -> str:
    """What an attached agent (MCP) starts from: the same system prompt, where it stands now, and its notebook."""
    standing = standing_line(limits)
    return (system_prompt(tasks, direction, limits) + ("\nWhere you stand: " + standing if standing else "") +
            "\n\nYour notebook (the `notebook` tool keeps it; it is your memory between sessions):\n---\n" +
            (notebook.strip() or "(empty)") + "\n---\n")


def user_prompt(iteration: int, notebook: str, limits: PromptLimits | None = None) -> str:
    return USER.format(iteration=iteration, standing=standing_line(limits),
                       notebook=notebook.strip() or "(empty: this is your first iteration)")
