"""The LLM researcher: one fresh conversation per iteration, tools only, dollars accounted.

An iteration ends when the model ends its turn, at the dollar cap, after max_turns, or at the
deadline (a turn that would start after it does not start, and a model still answering when
it passes, or when the campaign stops, is not waited for). Its IterationOutcome tells the
campaign's worker what happened: calls_made == 0 means the agent had nothing to do (idle), and
reason "cap" means the cap stopped it. Past `context_tokens` of history the oldest tool results
are replaced by one-line summaries, and the model is told. When the provider refuses a prompt as
longer than the model's context (local models often have 32k), the budget shrinks to what the
provider said it takes, the history is compacted to it and the turn is asked again; the smaller
budget holds for the rest of the researcher's life.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autow2s.errors import ProviderUnavailable
from autow2s.researchers.accounting import CapReached, Ledger, Usage
from autow2s.researchers.chat import ChatAdapter, ContextTooLong, ToolCall, Turn, tool_result_slots
from autow2s.researchers.directions import Direction
from autow2s.researchers.lab_client import LabError
from autow2s.researchers.prompts import PromptLimits, system_prompt, user_prompt
from autow2s.researchers.tool_specs import TOOLS
from autow2s.researchers.toolbox import ToolBox

REASONS = ("cap", "end_turn", "max_turns", "deadline")
DEFAULT_CONTEXT_TOKENS = 120_000
CHARS_PER_TOKEN = 4  # a rough, provider-independent estimate: the budget is a guard, not a meter
KEEP_RECENT_RESULTS = 2
CONTEXT_RETRIES = 3  # compactions per turn after context-length refusals, before the refusal stands
CONTEXT_MARGIN = 0.7  # of the provider's stated limit: our 4-characters-a-token estimate undercounts code and JSON
MIN_CONTEXT_TOKENS = 1_000  # below this no conversation can go on; the refusal stands


@dataclass
class IterationOutcome:
    turns: int
    calls_made: int
    dollars: float
    reason: str  # one of REASONS


@dataclass
class _Result:
    tool: str
    slot: dict[str, Any]
    summarized: bool = False


def _tokens(messages: list[dict[str, Any]]) -> int:
    return len(json.dumps(messages, default=str)) // CHARS_PER_TOKEN


def _summary(tool: str, text: str) -> str:
    first = next((line.strip() for line in text.splitlines() if line.strip()), "(empty)")
    return f"[summarized to save context: {tool} -> {first[:120]} ({len(text.splitlines())} lines); call it again to see it]"


@dataclass
class LLMPolicy:
    chat: ChatAdapter
    ledger: Ledger
    max_turns: int = 30
    context_tokens: int = DEFAULT_CONTEXT_TOKENS

    def _limits(self, toolbox: ToolBox) -> PromptLimits:
        labs: dict[str, dict[str, Any]] = {}
        for task in toolbox.tasks:
            try:
                labs[task] = toolbox.lab.my_status(task)
            except LabError:
                pass  # with no status at all, the prompt says lab_status shows the budgets
        return PromptLimits(job_limits=toolbox.limits, max_turns=self.max_turns, context_tokens=self.context_tokens,
                            labs=labs, seconds_left=toolbox.time_left(),
                            several_tasks=toolbox.several_tasks)

    def run_iteration(self, toolbox: ToolBox, direction: Direction, iteration: int, transcript: Path,
                      deadline: float | None = None) -> IterationOutcome:
        """One conversation. Every tool call and result is appended to the transcript (for replay).

        deadline: a time.monotonic() value; defaults to the toolbox's. Raises ProviderUnavailable
        (pause, then go on) or ProviderRejected (stop this researcher) from the chat layer.
        """
        deadline = deadline if deadline is not None else toolbox.deadline
        try:
            notebook = toolbox.notebook_path.read_text(errors="replace") if toolbox.notebook_path.exists() else ""
        except OSError as exc:
            notebook = f"(your notebook could not be read: {exc})"
        limits = self._limits(toolbox)
        system = system_prompt(toolbox.tasks, direction, limits)
        messages = self.chat.start(user_prompt(iteration, notebook, limits))
        results: list[_Result] = []
        charged: list[float] = []
        calls_made = 0

        def charge(usage: Usage) -> None:  # called once per request, maybe from its thread, maybe late
            charged.append(self.ledger.charge(toolbox.name, self.chat.model, usage))

        for turn_index in range(self.max_turns):
            if (deadline is not None and time.monotonic() >= deadline) or toolbox.stopping():
                return IterationOutcome(turn_index, calls_made, sum(charged), "deadline")
            try:
                self.ledger.check(toolbox.name)
            except CapReached:
                return IterationOutcome(turn_index, calls_made, sum(charged), "cap")
            try:
                turn = self._ask(toolbox, system, messages, results, deadline, charge)
            except ProviderUnavailable:  # TurnAbandoned too: the deadline passed or the campaign stopped
                if (deadline is not None and time.monotonic() >= deadline) or toolbox.stopping():
                    return IterationOutcome(turn_index, calls_made, sum(charged), "deadline")
                raise
            dollars = sum(charged)
            messages.append(turn.assistant_message)
            if not turn.tool_calls:
                append_transcript(transcript, {"iteration": iteration, "text": turn.text, "dollars": dollars})
                return IterationOutcome(turn_index + 1, calls_made, dollars, "end_turn")
            outputs = [self._execute(toolbox, call) for call in turn.tool_calls]
            calls_made += len(outputs)
            for call, output in zip(turn.tool_calls, outputs):
                append_transcript(transcript, {"iteration": iteration, "tool": call.name, "arguments": call.arguments,
                                     "result": output[:2000]})
            added = self.chat.tool_results(turn.tool_calls, outputs)
            results += [_Result(call.name, slot) for call, slot in zip(turn.tool_calls, tool_result_slots(added))]
            messages.extend(added)
            self._fit_context(messages, results)
        return IterationOutcome(self.max_turns, calls_made, sum(charged), "max_turns")

    def _ask(self, toolbox: ToolBox, system: str, messages: list[dict[str, Any]], results: list[_Result],
             deadline: float | None, charge: Callable[[Usage], None]) -> Turn:
        """One model turn; a context-length refusal compacts the history to a smaller budget and asks again."""
        for attempt in range(CONTEXT_RETRIES + 1):
            try:
                return self.chat.turn(system, messages, TOOLS, deadline=deadline, cancel=toolbox.stop,
                                      on_usage=charge)
            except ContextTooLong as refusal:
                if attempt == CONTEXT_RETRIES:
                    raise
                before = self.context_tokens
                self._shrink(system, messages, results, refusal)
                toolbox.log_error(f"{refusal}; the history is compacted from a {before:,}-token budget to "
                                  f"{self.context_tokens:,} and the turn asked again")
        raise AssertionError("unreachable")

    def _shrink(self, system: str, messages: list[dict[str, Any]], results: list[_Result],
                refusal: ContextTooLong) -> None:
        """Lower the history's budget below what was refused and compact to it; the refusal stands if nothing can
        shrink (the system prompt, the tools and the first message alone do not fit)."""
        fixed = (len(system) + len(json.dumps([tool.openai() for tool in TOOLS]))) // CHARS_PER_TOKEN
        history = _tokens(messages)
        budget = int(history * CONTEXT_MARGIN)  # always below what was just refused
        if refusal.prompt_limit is not None:
            budget = min(budget, int(refusal.prompt_limit * CONTEXT_MARGIN) - fixed)
        if budget < MIN_CONTEXT_TOKENS or not self._fits_after_compaction(messages, results, budget):
            raise ContextTooLong(f"{refusal}. Even compacted, this conversation does not fit the model's context "
                                 f"(the system prompt and tools take ~{fixed:,} tokens); use a model with a longer "
                                 "context, or a server started with a larger one", refusal.prompt_limit) from refusal
        self.context_tokens = budget
        self._fit_context(messages, results, keep_recent=0)

    @staticmethod
    def _fits_after_compaction(messages: list[dict[str, Any]], results: list[_Result], budget: int) -> bool:
        """Whether summarizing every tool result would bring the history under budget."""
        saved = sum(len(r.slot["content"]) - len(_summary(r.tool, r.slot["content"])) for r in results
                    if not r.summarized and isinstance(r.slot.get("content"), str)) // CHARS_PER_TOKEN
        return _tokens(messages) - saved <= budget

    def _fit_context(self, messages: list[dict[str, Any]], results: list[_Result],
                     keep_recent: int = KEEP_RECENT_RESULTS) -> int:
        """Summarize the oldest tool results until the history fits; tell the model in the newest one."""
        size = _tokens(messages)
        if size <= self.context_tokens:
            return 0
        done = 0
        for result in results[:max(0, len(results) - keep_recent)]:
            if size <= self.context_tokens:
                break
            if result.summarized or not isinstance(result.slot.get("content"), str):
                continue
            before = len(result.slot["content"])
            result.slot["content"] = _summary(result.tool, result.slot["content"])
            result.summarized = True
            size -= (before - len(result.slot["content"])) // CHARS_PER_TOKEN
            done += 1
        if done and isinstance(results[-1].slot.get("content"), str):
            results[-1].slot["content"] += (
                f"\n[context note: this conversation passed its {self.context_tokens:,}-token budget, so the "
                f"{done} oldest tool result(s) were replaced by one-line summaries; re-run a tool if you need its "
                "output again, and keep notes in your notebook]")
        return done

    @staticmethod
    def _execute(toolbox: ToolBox, call: ToolCall) -> str:
        if call.arguments is None:
            text = (f"error: the arguments for {call.name} were not a JSON object: {call.raw_arguments[:200]!r}; "
                    "send them again as a JSON object")
            toolbox.log_error(f"tool {call.name} -> {text}")
            return text
        return toolbox.call(call.name, call.arguments)


def append_transcript(path: Path, entry: dict[str, Any]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry, default=str) + "\n")
    except OSError:
        pass  # the transcript is for replay and reading; a full disk must not stop the research


def replay_calls(transcript: Path) -> list[tuple[str, dict[str, Any]]]:
    """The tool calls of a recorded transcript, in order (the replay policy's script)."""
    calls = []
    for line in transcript.read_text().splitlines():
        entry = json.loads(line)
        if "tool" in entry and isinstance(entry.get("arguments"), dict):
            calls.append((entry["tool"], entry["arguments"]))
    return calls
