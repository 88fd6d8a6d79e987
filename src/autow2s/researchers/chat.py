"""Chat adapters for tool use: Anthropic Messages and OpenAI-compatible chat completions.

Each adapter speaks its wire format through the official SDK and hands the loop the same Turn.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Protocol

from autow2s.researchers.accounting import Usage
from autow2s.researchers.tool_specs import ToolSpec


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any] | None  # None when the model sent arguments that are not JSON
    raw_arguments: str = ""


@dataclass
class Turn:
    text: str
    tool_calls: list[ToolCall]
    usage: Usage
    assistant_message: dict[str, Any]
    stop_reason: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class ChatAdapter(Protocol):
    model: str

    def start(self, user_prompt: str) -> list[dict[str, Any]]: ...

    def turn(self, system: str, messages: list[dict[str, Any]], tools: tuple[ToolSpec, ...]) -> Turn: ...

    def tool_results(self, calls: list[ToolCall], results: list[str]) -> list[dict[str, Any]]: ...


class AnthropicChat:
    """Messages API with tool use; the system prompt and tool list are marked for prompt caching."""

    def __init__(self, model: str, *, api_key: str | None = None, base_url: str | None = None,
                 max_tokens: int = 4096, timeout: float = 300.0) -> None:
        import anthropic  # imported here: keeps CLI start-up fast

        self.model = model
        self.max_tokens = max_tokens
        self.client = anthropic.Anthropic(api_key=api_key, base_url=base_url, timeout=timeout, max_retries=2)

    def start(self, user_prompt: str) -> list[dict[str, Any]]:
        return [{"role": "user", "content": user_prompt}]

    def turn(self, system: str, messages: list[dict[str, Any]], tools: tuple[ToolSpec, ...]) -> Turn:
        tool_defs = [tool.anthropic() for tool in tools]
        if tool_defs:
            tool_defs[-1] = tool_defs[-1] | {"cache_control": {"type": "ephemeral"}}
        response = self.client.messages.create(
            model=self.model, max_tokens=self.max_tokens, messages=messages, tools=tool_defs,
            system=[{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}],
        )
        blocks: list[dict[str, Any]] = []
        texts, calls = [], []
        for block in response.content:
            if block.type == "text":
                texts.append(block.text)
                blocks.append({"type": "text", "text": block.text})
            elif block.type == "tool_use":
                arguments = block.input if isinstance(block.input, dict) else None
                calls.append(ToolCall(block.id, block.name, arguments, json.dumps(block.input)))
                blocks.append({"type": "tool_use", "id": block.id, "name": block.name, "input": block.input})
        u = response.usage
        usage = Usage(input_tokens=u.input_tokens or 0, output_tokens=u.output_tokens or 0,
                      cache_write_tokens=getattr(u, "cache_creation_input_tokens", None) or 0,
                      cache_read_tokens=getattr(u, "cache_read_input_tokens", None) or 0)
        return Turn("\n".join(texts), calls, usage, {"role": "assistant", "content": blocks},
                    stop_reason=response.stop_reason or "")

    def tool_results(self, calls: list[ToolCall], results: list[str]) -> list[dict[str, Any]]:
        content = [{"type": "tool_result", "tool_use_id": call.id, "content": result,
                    "is_error": result.startswith("error:")} for call, result in zip(calls, results)]
        return [{"role": "user", "content": content}]


class OpenAIChat:
    """OpenAI-compatible chat completions with tools: OpenAI, vLLM, Ollama, llama.cpp, OpenRouter."""

    def __init__(self, model: str, *, api_key: str | None = None, base_url: str | None = None,
                 max_tokens: int = 4096, timeout: float = 300.0) -> None:
        import openai  # imported here: keeps CLI start-up fast

        self.model = model
        self.max_tokens = max_tokens
        self.client = openai.OpenAI(api_key=api_key or "not-needed", base_url=base_url, timeout=timeout,
                                    max_retries=2)

    def start(self, user_prompt: str) -> list[dict[str, Any]]:
        return [{"role": "user", "content": user_prompt}]

    def turn(self, system: str, messages: list[dict[str, Any]], tools: tuple[ToolSpec, ...]) -> Turn:
        response = self.client.chat.completions.create(
            model=self.model, max_tokens=self.max_tokens, tools=[tool.openai() for tool in tools],
            messages=[{"role": "system", "content": system}, *messages],
        )
        choice = response.choices[0]
        message = choice.message
        calls = []
        for call in message.tool_calls or []:
            try:
                arguments = json.loads(call.function.arguments or "{}")
                arguments = arguments if isinstance(arguments, dict) else None
            except json.JSONDecodeError:
                arguments = None
            calls.append(ToolCall(call.id, call.function.name, arguments, call.function.arguments or ""))
        assistant: dict[str, Any] = {"role": "assistant", "content": message.content or ""}
        if calls:
            assistant["tool_calls"] = [{"id": c.id, "type": "function",
                                        "function": {"name": c.name, "arguments": c.raw_arguments}} for c in calls]
        u = response.usage
        cached = 0
        if u is not None and getattr(u, "prompt_tokens_details", None) is not None:
            cached = u.prompt_tokens_details.cached_tokens or 0
        usage = Usage(input_tokens=(u.prompt_tokens - cached) if u else 0,
                      output_tokens=u.completion_tokens if u else 0, cache_read_tokens=cached)
        return Turn(message.content or "", calls, usage, assistant, stop_reason=choice.finish_reason or "")

    def tool_results(self, calls: list[ToolCall], results: list[str]) -> list[dict[str, Any]]:
        return [{"role": "tool", "tool_call_id": call.id, "content": result} for call, result in zip(calls, results)]
