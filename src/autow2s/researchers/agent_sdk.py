"""The `agent-sdk` researcher: the Claude Agent SDK's agent loop (Claude Code's), with only our tools.

Every built-in tool of the SDK is off (no Bash, Read, Write, web...): our tool set reaches it as an
in-process MCP server, the very server `autow2s mcp` runs, so every action still goes through the
researcher's ToolBox (its sandbox, its own lab token). One iteration is one fresh `query`, with the
same prompts as the claude researcher; its dollars go to the campaign's ledger and its tool calls
to transcript.jsonl (replayable like any other).

claude-agent-sdk is optional (it bundles the Claude Code CLI, about 180 MB): pip install 'autow2s[agent-sdk]'.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
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
        cap = self.ledger.researcher_cap
        server = sdk.McpSdkServerConfig(type="sdk", name=SERVER_NAME, instance=build_server(toolbox.call))
        return sdk.ClaudeAgentOptions(
            system_prompt=system_prompt(toolbox.tasks, self.direction, limits), model=self.model,
            mcp_servers={SERVER_NAME: server}, strict_mcp_config=True, tools=[], allowed_tools=list(ALLOWED_TOOLS),
            disallowed_tools=list(BUILTIN_TOOLS), setting_sources=[], max_turns=self.max_turns,
            max_budget_usd=None if cap is None else max(0.01, cap - self.ledger.spent.get(toolbox.name, 0.0)),
            cwd=str(self.researcher_dir), env=env)

    async def _iteration(self, iteration: int) -> IterationOutcome:
        toolbox = self.toolbox
        try:
            notebook = toolbox.notebook_path.read_text(errors="replace") if toolbox.notebook_path.exists() else ""
        except OSError as exc:
            notebook = f"(your notebook could not be read: {exc})"
        limits = self.limits()
        options, prompt = self.options(limits), user_prompt(iteration, notebook, limits)
        seen: dict[str, Any] = {"calls": 0, "result": None}
        task = asyncio.ensure_future(self._converse(prompt, options, iteration, seen))
        while not task.done():
            await asyncio.wait({task}, timeout=1.0)
            left = toolbox.time_left()
            if not task.done() and (toolbox.stopping() or (left is not None and left <= 0)):
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                return IterationOutcome(0, seen["calls"], 0.0, "deadline")
        task.result()  # the SDK's own errors (no CLI, a dead process) surface here
        result = seen["result"]
        if result is None:
            raise ProviderUnavailable("the Claude Agent SDK ended without a result; see errors.log")
        dollars = self._charge(result)
        if result.is_error and result.subtype != "error_max_turns":
            text = f"the Claude Agent SDK ended with {result.subtype}: {result.result or result.errors}"
            status = getattr(result, "api_error_status", None)
            raise (ProviderRejected if status in REJECTING_STATUSES else ProviderUnavailable)(text[:500])
        reason = "max_turns" if result.subtype == "error_max_turns" else "end_turn"
        return IterationOutcome(result.num_turns, seen["calls"], dollars, reason)

    async def _converse(self, prompt: str, options: Any, iteration: int, seen: dict[str, Any]) -> None:
        sdk, pending = self.sdk, {}
        transcript = self.researcher_dir / "transcript.jsonl"
        async for message in sdk.query(prompt=prompt, options=options):
            if isinstance(message, sdk.AssistantMessage):
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

    def _charge(self, result: Any) -> float:
        usage = result.usage or {}
        spent = Usage(input_tokens=int(usage.get("input_tokens") or 0),
                      output_tokens=int(usage.get("output_tokens") or 0),
                      cache_write_tokens=int(usage.get("cache_creation_input_tokens") or 0),
                      cache_read_tokens=int(usage.get("cache_read_input_tokens") or 0))
        return self.ledger.charge(self.toolbox.name, self.model, spent)


def _result_text(content: Any) -> str:
    if isinstance(content, list):
        return "\n".join(str(item.get("text", "")) for item in content if isinstance(item, dict))
    return str(content or "")


__all__ = ["ALLOWED_TOOLS", "BUILTIN_TOOLS", "INSTALL_HINT", "AgentSDKResearcher", "require_sdk"]
