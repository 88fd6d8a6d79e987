"""Chat adapters for tool use: Anthropic Messages and OpenAI-compatible chat completions.

Each adapter speaks its wire format through the official SDK and hands the loop the same Turn.
Every request goes through autow2s.researchers.provider: retried through passing trouble,
abandoned when the campaign stops or its deadline passes (TurnAbandoned), charged once through
`on_usage`, and a context-length refusal raised as ContextTooLong. Anthropic answers are streamed,
so an abandoned one is charged for the input tokens its first event reported; OpenAI-compatible
ones are not (local servers differ in how they stream tool calls), and an abandoned one is charged
when its answer comes. Anthropic assistant turns go back exactly as received, thinking blocks and
signatures included, as the Messages API requires in a tool-use loop.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

from autow2s.errors import ProviderRejected, ProviderUnavailable
from autow2s.researchers.accounting import Usage
from autow2s.researchers.provider import (
    DEFAULT_PROVIDER_RETRY_S,
    ContextTooLong,
    ProviderRetry,
    TurnAbandoned,
    UsageHook,
    UsageMeter,
    WaitHook,
    run_abandonable,
)
from autow2s.researchers.tool_specs import ToolSpec

if TYPE_CHECKING:
    from anthropic.types import Message, MessageParam, ToolParam
    from openai.types.chat import ChatCompletion, ChatCompletionMessageParam, ChatCompletionToolParam

__all__ = ["AnthropicChat", "ChatAdapter", "ContextTooLong", "OpenAIChat", "ProviderRejected", "ProviderUnavailable",
           "ToolCall", "Turn", "TurnAbandoned", "tool_result_slots"]

CHARS_PER_TOKEN = 4  # to estimate the output of a stream abandoned before it gave its own count


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

    def turn(self, system: str, messages: list[dict[str, Any]], tools: tuple[ToolSpec, ...], *,
             deadline: float | None = None, cancel: threading.Event | None = None,
             on_usage: UsageHook | None = None) -> Turn:
        """One model turn. Raises TurnAbandoned as soon as `cancel` is set or `deadline` passes, without
        waiting for the provider; on_usage gets each request's tokens once, when known (maybe later)."""
        ...

    def tool_results(self, calls: list[ToolCall], results: list[str]) -> list[dict[str, Any]]: ...


def tool_result_slots(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The dicts whose "content" holds a tool result, in either protocol (for context trimming)."""
    slots = []
    for message in messages:
        if message.get("role") == "tool":
            slots.append(message)
        elif isinstance(message.get("content"), list):
            slots += [block for block in message["content"] if block.get("type") == "tool_result"]
    return slots


def _usage(input_tokens: int, output_tokens: int, cache_write: int = 0, cache_read: int = 0) -> Usage:
    return Usage(input_tokens=input_tokens or 0, output_tokens=output_tokens or 0, cache_write_tokens=cache_write or 0,
                 cache_read_tokens=cache_read or 0)


def _anthropic_usage(u: Any) -> Usage:
    return _usage(getattr(u, "input_tokens", 0), getattr(u, "output_tokens", 0),
                  getattr(u, "cache_creation_input_tokens", 0), getattr(u, "cache_read_input_tokens", 0))


def _cache_history(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages with a cache breakpoint on the newest block, so each turn reads the whole earlier
    conversation from the prompt cache (0.05-0.1 x the input price) instead of paying for it again.
    A copy: the conversation itself (thinking blocks above all) stays exactly as it was."""
    if not messages:
        return messages
    last = dict(messages[-1])
    content = last.get("content")
    if isinstance(content, str):
        content = [{"type": "text", "text": content}]
    if not isinstance(content, list) or not content:
        return messages
    last["content"] = [*content[:-1], {**content[-1], "cache_control": {"type": "ephemeral"}}]
    return [*messages[:-1], last]


class AnthropicChat:
    """Messages API with tool use, streamed; the system prompt and tool list are marked for prompt caching.

    max_tokens counts thinking too (current Opus models always think), so the default leaves
    plenty of room for it. effort: output_config.effort ("low" ... "max"); None: the model's default.
    timeout: seconds without a byte from the stream (the API sends pings while the model thinks).
    """

    def __init__(self, model: str, *, api_key: str | None = None, base_url: str | None = None,
                 max_tokens: int = 32_000, effort: str | None = None, timeout: float = 600.0,
                 provider_retry_s: float = DEFAULT_PROVIDER_RETRY_S, on_wait: WaitHook | None = None,
                 error_log: Path | None = None) -> None:
        import anthropic  # imported here: keeps CLI start-up fast

        self.model = model
        self.max_tokens = max_tokens
        self.effort = effort
        # Our own retry loop (provider.py) replaces the SDK's: it honours retry-after for minutes, not seconds.
        self.client = anthropic.Anthropic(api_key=api_key, base_url=base_url, timeout=timeout, max_retries=0)
        self.retry = ProviderRetry(provider_retry_s, on_wait, error_log,
                                   connection_errors=(anthropic.APIConnectionError,))

    def start(self, user_prompt: str) -> list[dict[str, Any]]:
        return [{"role": "user", "content": user_prompt}]

    def turn(self, system: str, messages: list[dict[str, Any]], tools: tuple[ToolSpec, ...], *,
             deadline: float | None = None, cancel: threading.Event | None = None,
             on_usage: UsageHook | None = None) -> Turn:
        tool_defs = [tool.anthropic() for tool in tools]
        if tool_defs:
            tool_defs[-1] = tool_defs[-1] | {"cache_control": {"type": "ephemeral"}}
        extra: dict[str, Any] = {"output_config": {"effort": self.effort}} if self.effort else {}
        # The history and tool specs are plain JSON dicts in the wire format; the SDK types them as TypedDicts.
        request: dict[str, Any] = {
            "model": self.model, "max_tokens": self.max_tokens, "messages": cast("list[MessageParam]",
                                                                                 _cache_history(messages)),
            "tools": cast("list[ToolParam]", tool_defs),
            "system": [{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}], **extra}
        response = self.retry.call(lambda: run_abandonable(
            lambda meter: self._stream(request, meter), UsageMeter(on_usage), deadline=deadline, cancel=cancel),
            deadline=deadline, cancel=cancel)
        if response is None:  # unreachable: an abandoned stream's caller got TurnAbandoned
            raise TurnAbandoned("the request was abandoned")
        # Every block goes back exactly as it came (to_dict keeps only the fields the API sent):
        # thinking and redacted_thinking blocks with their signatures must accompany the tool results.
        blocks = [block.to_dict() for block in response.content]
        texts, calls = [], []
        for block in response.content:
            if block.type == "text":
                texts.append(block.text)
            elif block.type == "tool_use":
                arguments = block.input if isinstance(block.input, dict) else None
                calls.append(ToolCall(block.id, block.name, arguments, json.dumps(block.input)))
        return Turn("\n".join(texts), calls, _anthropic_usage(response.usage), {"role": "assistant", "content": blocks},
                    stop_reason=response.stop_reason or "")

    def _stream(self, request: dict[str, Any], meter: UsageMeter) -> Message | None:
        """The streamed answer, put together; None if it was abandoned midway (its tokens so far are charged)."""
        written = 0
        try:
            with self.client.messages.stream(**request) as stream:
                for event in stream:
                    if event.type == "message_start":
                        meter.seen = _anthropic_usage(event.message.usage)
                    elif event.type == "content_block_delta":
                        delta = event.delta
                        written += len(getattr(delta, "text", "") or getattr(delta, "thinking", "")
                                       or getattr(delta, "partial_json", "") or "")
                        meter.seen = replace(meter.seen, output_tokens=max(meter.seen.output_tokens,
                                                                           written // CHARS_PER_TOKEN))
                    if meter.abandoned.is_set():
                        break
                else:
                    message = stream.get_final_message()
                    meter.settle(_anthropic_usage(message.usage))
                    return message
        except Exception:
            meter.settle()  # a stream that broke midway was billed for what it had read and written
            raise
        meter.settle()
        return None

    def tool_results(self, calls: list[ToolCall], results: list[str]) -> list[dict[str, Any]]:
        content = [{"type": "tool_result", "tool_use_id": call.id, "content": result,
                    "is_error": result.startswith("error:")} for call, result in zip(calls, results)]
        return [{"role": "user", "content": content}]


class OpenAIChat:
    """OpenAI-compatible chat completions with tools: OpenAI, vLLM, Ollama, llama.cpp, OpenRouter.

    max_tokens stays modest by default: local servers refuse a request whose max_tokens plus prompt
    exceeds their context length (raise it for reasoning models that think inside the answer).
    """

    def __init__(self, model: str, *, api_key: str | None = None, base_url: str | None = None,
                 max_tokens: int = 4096, timeout: float = 600.0,
                 provider_retry_s: float = DEFAULT_PROVIDER_RETRY_S, on_wait: WaitHook | None = None,
                 error_log: Path | None = None) -> None:
        import openai  # imported here: keeps CLI start-up fast

        self.model = model
        self.max_tokens = max_tokens
        self.client = openai.OpenAI(api_key=api_key or "not-needed", base_url=base_url, timeout=timeout,
                                    max_retries=0)
        self.retry = ProviderRetry(provider_retry_s, on_wait, error_log, connection_errors=(openai.APIConnectionError,))

    def start(self, user_prompt: str) -> list[dict[str, Any]]:
        return [{"role": "user", "content": user_prompt}]

    def turn(self, system: str, messages: list[dict[str, Any]], tools: tuple[ToolSpec, ...], *,
             deadline: float | None = None, cancel: threading.Event | None = None,
             on_usage: UsageHook | None = None) -> Turn:
        # The history and tool specs are plain JSON dicts in the wire format; the SDK types them as TypedDicts.
        tool_params = cast("list[ChatCompletionToolParam]", [tool.openai() for tool in tools])
        sent = cast("list[ChatCompletionMessageParam]", [{"role": "system", "content": system}, *messages])

        def attempt(meter: UsageMeter) -> ChatCompletion:
            answer = self.client.chat.completions.create(model=self.model, max_tokens=self.max_tokens,
                                                         tools=tool_params, messages=sent)
            meter.settle(_openai_usage(answer))
            return answer

        response = self.retry.call(lambda: run_abandonable(attempt, UsageMeter(on_usage), deadline=deadline,
                                                           cancel=cancel), deadline=deadline, cancel=cancel)
        if not response.choices:
            raise ProviderUnavailable("the provider answered with no choices; the researcher pauses and tries again")
        choice = response.choices[0]
        message = choice.message
        calls = []
        for call in message.tool_calls or []:
            # Only function tools are declared. Not `!= "function"`: servers that omit "type" parse as None.
            if call.type == "custom":
                raise ProviderRejected("the provider answered with a custom tool call, but only function tools "
                                       "are declared (the model or server does not speak OpenAI tool calls)")
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
        return Turn(message.content or "", calls, _openai_usage(response), assistant, stop_reason=choice.finish_reason or "")

    def tool_results(self, calls: list[ToolCall], results: list[str]) -> list[dict[str, Any]]:
        return [{"role": "tool", "tool_call_id": call.id, "content": result} for call, result in zip(calls, results)]


def _openai_usage(response: ChatCompletion) -> Usage:
    u = response.usage
    if u is None:
        return Usage()
    # getattr: older SDKs and some servers' usage objects have no prompt_tokens_details at all
    details = getattr(u, "prompt_tokens_details", None)
    cached = (details.cached_tokens or 0) if details is not None else 0
    return _usage((u.prompt_tokens or 0) - cached, u.completion_tokens or 0, cache_read=cached)
