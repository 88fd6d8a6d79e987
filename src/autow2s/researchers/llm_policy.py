"""The LLM researcher: one fresh conversation per iteration, tools only, dollars accounted."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from autow2s.researchers.accounting import CapReached, Ledger
from autow2s.researchers.chat import ChatAdapter, ToolCall
from autow2s.researchers.directions import Direction
from autow2s.researchers.prompts import system_prompt, user_prompt
from autow2s.researchers.tool_specs import TOOLS
from autow2s.researchers.toolbox import ToolBox


@dataclass
class IterationOutcome:
    turns: int
    tool_calls: int
    dollars: float
    stopped_by: str  # "end_turn" | "max_turns" | "cap"


@dataclass
class LLMPolicy:
    chat: ChatAdapter
    ledger: Ledger
    max_turns: int = 30

    def run_iteration(self, toolbox: ToolBox, direction: Direction, iteration: int,
                      transcript: Path) -> IterationOutcome:
        """One conversation. Every tool call and result is appended to the transcript (for replay)."""
        notebook = toolbox.notebook_path.read_text() if toolbox.notebook_path.exists() else ""
        system = system_prompt(toolbox.task, direction)
        messages = self.chat.start(user_prompt(iteration, notebook))
        dollars, calls_made = 0.0, 0
        for turn_index in range(self.max_turns):
            try:
                self.ledger.check(toolbox.name)
            except CapReached:
                return IterationOutcome(turn_index, calls_made, dollars, "cap")
            turn = self.chat.turn(system, messages, TOOLS)
            dollars += self.ledger.charge(toolbox.name, self.chat.model, turn.usage)
            messages.append(turn.assistant_message)
            if not turn.tool_calls:
                _record(transcript, {"iteration": iteration, "text": turn.text, "dollars": dollars})
                return IterationOutcome(turn_index + 1, calls_made, dollars, "end_turn")
            results = [self._execute(toolbox, call) for call in turn.tool_calls]
            calls_made += len(results)
            for call, result in zip(turn.tool_calls, results):
                _record(transcript, {"iteration": iteration, "tool": call.name, "arguments": call.arguments,
                                     "result": result[:2000]})
            messages.extend(self.chat.tool_results(turn.tool_calls, results))
        return IterationOutcome(self.max_turns, calls_made, dollars, "max_turns")

    @staticmethod
    def _execute(toolbox: ToolBox, call: ToolCall) -> str:
        if call.arguments is None:
            return f"error: the arguments for {call.name} were not a JSON object: {call.raw_arguments[:200]!r}"
        return toolbox.call(call.name, call.arguments)


def _record(path: Path, entry: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry, default=str) + "\n")


def replay_calls(transcript: Path) -> list[tuple[str, dict]]:
    """The tool calls of a recorded transcript, in order (the replay policy's script)."""
    calls = []
    for line in transcript.read_text().splitlines():
        entry = json.loads(line)
        if "tool" in entry and isinstance(entry.get("arguments"), dict):
            calls.append((entry["tool"], entry["arguments"]))
    return calls
