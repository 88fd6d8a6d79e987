"""The `agent-sdk` researcher: the Claude Agent SDK's agent loop (Claude Code's), with only our tools.

Every built-in tool of the SDK is off (no Bash, Read, Write, web...): our tool set reaches it as an
in-process MCP server, the very server `autow2s mcp` runs, so every action still goes through the
researcher's ToolBox (its sandbox, its own lab token), one call at a time as ToolBox needs. One
iteration is one fresh `query`, with the same prompts as the claude researcher; its tool calls go
to transcript.jsonl (replayable like any other), and its dollars to the campaign's ledger as the
agent's API stream reports them: each request's input tokens when it starts, its output when it
ends, so an iteration cancelled at the deadline, or one that ends without a result, is charged for
what it used. The SDK's own budget is the smaller of the researcher's and the campaign's dollars
left, so N researchers cannot overrun --max-dollars by N iterations.

claude-agent-sdk is optional (it bundles the Claude Code CLI, about 180 MB): pip install 'autow2s[agent-sdk]'.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autow2s.errors import AutoW2SError, ProviderRejected, ProviderUnavailable
from autow2s.researchers.accounting import DEFAULT_CLAUDE_MODEL, CapReached, Ledger, Usage
from autow2s.researchers.directions import Direction
from autow2s.researchers.llm_policy import IterationOutcome, LLMPolicy, append_transcript
from autow2s.researchers.mcp_server import SERVER_NAME, build_server
from autow2s.researchers.prompts import PromptLimits, system_prompt, user_prompt
from autow2s.researchers.tool_specs import TOOLS
from autow2s.researchers.toolbox import ToolBox

# Off twice over: `tools=[]` enables none of the built-ins, and these are denied by name as well.
BUILTIN_TOOLS = ("Agent", "Bash", "BashOutput", "Edit", "ExitPlanMode", "Glob", "Grep", "KillShell", "LS", "MultiEdit",
                 "NotebookEdit", "NotebookRead", "Read", "Skill", "SlashCommand", "Task", "TodoWrite", "WebFetch",
                 "WebSearch", "Write")
PREFIX = f"mcp__{SERVER_NAME}__"
ALLOWED_TOOLS = tuple(PREFIX + spec.name for spec in TOOLS)
REJECTING_STATUSES = (400, 401, 403, 404)
CHARS_PER_TOKEN = 4  # to estimate the output of a request cancelled before its stream gave the count
INSTALL_HINT = ("agent-sdk researchers need the Claude Agent SDK, which bundles the Claude Code CLI: "
                "pip install 'autow2s[agent-sdk]' (or pip install claude-agent-sdk)")


def require_sdk() -> Any:
    try:
        import claude_agent_sdk
    except ImportError:
        raise AutoW2SError(INSTALL_HINT) from None
    return claude_agent_sdk


@dataclass
class AgentSDKResearcher:
    toolbox: ToolBox
    direction: Direction
    ledger: Ledger
    researcher_dir: Path
    model: str = DEFAULT_CLAUDE_MODEL
    base_url: str | None = None
    max_turns: int = 30

    def __post_init__(self) -> None:
        self.sdk = require_sdk()
        self.call = one_at_a_time(self.toolbox.call)  # the SDK may run tool calls concurrently; ToolBox may not

    def step(self, iteration: int) -> IterationOutcome:
        """One conversation, ended by the model, max_turns, the dollar cap, the deadline or the campaign's stop."""
        try:
            self.ledger.check(self.toolbox.name)
        except CapReached:
            return IterationOutcome(0, 0, 0.0, "cap")
        return asyncio.run(self._iteration(iteration))

    def limits(self) -> PromptLimits:
        """What the prompts say of budgets and limits: the claude researcher's own reading of them."""
        policy = LLMPolicy(chat=None, ledger=self.ledger, max_turns=self.max_turns)  # type: ignore[arg-type]
        return policy._limits(self.toolbox)

    def options(self, limits: PromptLimits) -> Any:
        """Only our tools (as MCP server "autow2s"), none of the SDK's, and none of the user's Claude settings."""
        sdk, toolbox = self.sdk, self.toolbox
        env = {"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_TELEMETRY": "1"}
        if self.base_url:
            env["ANTHROPIC_BASE_URL"] = self.base_url
        left = self.ledger.remaining(toolbox.name)
        server = sdk.McpSdkServerConfig(type="sdk", name=SERVER_NAME, instance=build_server(self.call))
        return sdk.ClaudeAgentOptions(
            system_prompt=system_prompt(toolbox.tasks, self.direction, limits), model=self.model,
            mcp_servers={SERVER_NAME: server}, strict_mcp_config=True, tools=[], allowed_tools=list(ALLOWED_TOOLS),
            disallowed_tools=list(BUILTIN_TOOLS), setting_sources=[], max_turns=self.max_turns,
            max_budget_usd=None if left is None else max(0.01, left), include_partial_messages=True,
            cwd=str(self.researcher_dir), env=env)

    async def _iteration(self, iteration: int) -> IterationOutcome:
        toolbox = self.toolbox
        try:
            notebook = toolbox.notebook_path.read_text(errors="replace") if toolbox.notebook_path.exists() else ""
        except OSError as exc:
            notebook = f"(your notebook could not be read: {exc})"
        limits = self.limits()
        options, prompt = self.options(limits), user_prompt(iteration, notebook, limits)
        spend = StreamSpend(self.ledger, toolbox.name, self.model)
        seen: dict[str, Any] = {"calls": 0, "result": None}
        task = asyncio.ensure_future(self._converse(prompt, options, iteration, seen, spend))
        while not task.done():
            await asyncio.wait({task}, timeout=0.5)
            left = toolbox.time_left()
            if not task.done() and (toolbox.stopping() or (left is not None and left <= 0)):
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                spend.cancelled()
                return IterationOutcome(0, seen["calls"], spend.dollars, "deadline")
        task.result()  # the SDK's own errors (no CLI, a dead process) surface here
        result = seen["result"]
        if result is None:
            spend.cancelled()
            raise ProviderUnavailable("the Claude Agent SDK ended without a result; see errors.log")
        spend.reconcile(result.usage or {})
        dollars = spend.dollars
        if result.is_error and result.subtype != "error_max_turns":
            text = f"the Claude Agent SDK ended with {result.subtype}: {result.result or result.errors}"
            status = getattr(result, "api_error_status", None)
            raise (ProviderRejected if status in REJECTING_STATUSES else ProviderUnavailable)(text[:500])
        reason = "max_turns" if result.subtype == "error_max_turns" else "end_turn"
        return IterationOutcome(result.num_turns, seen["calls"], dollars, reason)

    async def _converse(self, prompt: str, options: Any, iteration: int, seen: dict[str, Any],
                        spend: StreamSpend) -> None:
        sdk, pending = self.sdk, {}
        transcript = self.researcher_dir / "transcript.jsonl"
        async for message in sdk.query(prompt=prompt, options=options):
            if isinstance(message, sdk.StreamEvent):
                spend.event(message.event)
            elif isinstance(message, sdk.AssistantMessage):
                for block in message.content:
                    if isinstance(block, sdk.ToolUseBlock):
                        seen["calls"] += 1
                        pending[block.id] = (block.name.removeprefix(PREFIX), block.input)
            elif isinstance(message, sdk.UserMessage) and isinstance(message.content, list):
                for block in message.content:
                    if isinstance(block, sdk.ToolResultBlock) and block.tool_use_id in pending:
                        name, arguments = pending.pop(block.tool_use_id)
                        append_transcript(transcript, {"iteration": iteration, "tool": name, "arguments": arguments,
                                             "result": _result_text(block.content)[:2000]})
            elif isinstance(message, sdk.ResultMessage):
                seen["result"] = message
                append_transcript(transcript, {"iteration": iteration, "text": message.result or "", "sdk": message.subtype})


def one_at_a_time(call: Callable[[str, dict[str, Any]], str]) -> Callable[[str, dict[str, Any]], str]:
    """`call`, serialised: a harness may send tool calls concurrently, and one ToolBox runs one at a time."""
    lock = threading.Lock()

    def serialised(tool: str, arguments: dict[str, Any]) -> str:
        with lock:
            return call(tool, arguments)
    return serialised


def _usage(fields: dict[str, Any] | None) -> Usage:
    fields = fields or {}
    return Usage(input_tokens=int(fields.get("input_tokens") or 0), output_tokens=int(fields.get("output_tokens") or 0),
                 cache_write_tokens=int(fields.get("cache_creation_input_tokens") or 0),
                 cache_read_tokens=int(fields.get("cache_read_input_tokens") or 0))


@dataclass
class StreamSpend:
    """Charges the agent's API requests from their stream events, as they arrive.

    message_start carries a request's input tokens (charged then), message_delta its output (the rest
    charged then). A request cut off by cancellation is charged for the output it had streamed (about
    4 characters a token); the result message's totals, when it comes, settle any difference upwards.
    """

    ledger: Ledger
    researcher: str
    model: str
    dollars: float = 0.0
    seen: dict[str, Usage] = field(default_factory=dict)  # per request (message id): its usage so far
    charged: dict[str, Usage] = field(default_factory=dict)
    current: str | None = None
    written: int = 0  # characters streamed by the current request

    def event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "message_start":
            message = event.get("message") or {}
            self.current = str(message.get("id") or f"request-{len(self.seen)}")
            self.seen[self.current], self.written = _usage(message.get("usage")), 0
            self._charge(self.current)
        elif self.current is None:
            return
        elif kind == "content_block_delta":
            delta = event.get("delta") or {}
            self.written += len(str(delta.get("text") or delta.get("thinking") or delta.get("partial_json") or ""))
        elif kind == "message_delta":
            final = _usage(event.get("usage"))
            known = self.seen[self.current]
            self.seen[self.current] = Usage(*(max(a, b) for a, b in zip(
                (known.input_tokens, known.output_tokens, known.cache_write_tokens, known.cache_read_tokens),
                (final.input_tokens, final.output_tokens, final.cache_write_tokens, final.cache_read_tokens))))
            self._charge(self.current)
            self.current = None

    def cancelled(self) -> None:
        """The request in flight when the iteration was cut off: charge the output it had streamed."""
        if self.current is not None:
            usage = self.seen[self.current]
            usage.output_tokens = max(usage.output_tokens, self.written // CHARS_PER_TOKEN)
            self._charge(self.current)
            self.current = None

    def reconcile(self, totals: dict[str, Any]) -> None:
        """The result's totals for the whole query: charge what the stream did not show (never refund)."""
        charged = Usage()
        for usage in self.charged.values():
            charged.add(usage)
        extra = _usage(totals).beyond(charged)
        if extra.any():
            self.dollars += self.ledger.charge(self.researcher, self.model, extra)

    def _charge(self, request: str) -> None:
        usage, charged = self.seen[request], self.charged.setdefault(request, Usage())
        delta = usage.beyond(charged)
        if delta.any():
            self.dollars += self.ledger.charge(self.researcher, self.model, delta, request_input=usage.prompt_tokens)
            charged.add(delta)


def _result_text(content: Any) -> str:
    if isinstance(content, list):
        return "\n".join(str(item.get("text", "")) for item in content if isinstance(item, dict))
    return str(content or "")


__all__ = ["ALLOWED_TOOLS", "BUILTIN_TOOLS", "INSTALL_HINT", "AgentSDKResearcher", "StreamSpend", "one_at_a_time",
           "require_sdk"]
