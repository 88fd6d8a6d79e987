"""Chat adapters for tool use: Anthropic Messages and OpenAI-compatible chat completions.

Each adapter speaks its wire format through the official SDK and hands the loop the same Turn.
Provider trouble that passes (429, 5xx, 529 overloaded, timeouts, dropped connections) is retried
here with exponential backoff and jitter, honouring retry-after, for up to `provider_retry_s`;
then ProviderUnavailable is raised (the campaign pauses the researcher and goes on). A request
the provider refuses (bad key, bad request) raises ProviderRejected at once: no retry can help.
Anthropic assistant turns go back exactly as received, thinking blocks and signatures included,
as the Messages API requires in a tool-use loop.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

from autow2s.errors import ProviderRejected, ProviderUnavailable
from autow2s.researchers.accounting import Usage
from autow2s.researchers.tool_specs import ToolSpec

if TYPE_CHECKING:
    from anthropic.types import MessageParam, ToolParam
    from openai.types.chat import ChatCompletionMessageParam, ChatCompletionToolParam

__all__ = ["AnthropicChat", "ChatAdapter", "OpenAIChat", "ProviderRejected", "ProviderUnavailable", "ToolCall",
           "Turn", "tool_result_slots"]

DEFAULT_PROVIDER_RETRY_S = 600.0
FIRST_BACKOFF_S = 2.0
MAX_BACKOFF_S = 60.0
RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 520, 521, 522, 523, 524, 529})
T = TypeVar("T")
WaitHook = Callable[[str | None], None]


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
             deadline: float | None = None, cancel: threading.Event | None = None) -> Turn: ...

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


def _retry_after(exc: Exception) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    for name, scale in (("retry-after-ms", 1e-3), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(0.0, float(value) * scale)
        except ValueError:
            continue  # an HTTP date: fall back to our own backoff
    return None


def _describe(exc: Exception) -> str:
    status = getattr(exc, "status_code", None)
    text = str(getattr(exc, "message", None) or exc).strip()
    message = text.splitlines()[0][:200] if text else type(exc).__name__
    return f"{status} {message}" if status else f"{type(exc).__name__}: {message}"


@dataclass
class ProviderRetry:
    """Retry one provider call through passing trouble; log each fault; tell the dashboard while waiting."""

    retry_s: float = DEFAULT_PROVIDER_RETRY_S
    on_wait: WaitHook | None = None
    error_log: Path | None = None
    first_backoff_s: float = FIRST_BACKOFF_S
    max_backoff_s: float = MAX_BACKOFF_S
    connection_errors: tuple[type[BaseException], ...] = ()

    def _log(self, text: str) -> None:
        if self.error_log is not None:
            try:
                with self.error_log.open("a", encoding="utf-8") as handle:
                    handle.write(f"[{time.strftime('%Y-%m-%d %H:%M:%S')}] provider: {text}\n")
            except OSError:
                pass

    def _retryable(self, exc: Exception) -> bool:
        if isinstance(exc, self.connection_errors):
            return True
        status = getattr(exc, "status_code", None)
        return isinstance(status, int) and (status in RETRYABLE_STATUS or status >= 500)

    def call(self, request: Callable[[], T], *, deadline: float | None = None,
             cancel: threading.Event | None = None) -> T:
        started = time.monotonic()
        give_up = started + self.retry_s
        if deadline is not None:
            give_up = min(give_up, deadline)
        attempt, waited = 0, False
        while True:
            try:
                result = request()
            except Exception as exc:  # noqa: BLE001 - sorted below into retry, reject, or a bug
                status = getattr(exc, "status_code", None)
                if not self._retryable(exc):
                    if isinstance(status, int):
                        self._log(f"rejected: {_describe(exc)}")
                        raise ProviderRejected(f"the provider refused the request ({_describe(exc)}); check the "
                                               "API key, the model name and --base-url; retrying cannot help") from exc
                    raise
                attempt += 1
                backoff = min(self.max_backoff_s, self.first_backoff_s * 2 ** (attempt - 1))
                hinted = _retry_after(exc)
                delay = hinted if hinted is not None else backoff * random.uniform(0.5, 1.0)
                now = time.monotonic()
                if now + delay > give_up:
                    self._log(f"gave up after {now - started:.0f} s and {attempt} attempts: {_describe(exc)}")
                    if self.on_wait is not None:
                        self.on_wait(None)
                    raise ProviderUnavailable(
                        f"the provider kept failing for {now - started:.0f} s ({attempt} attempts; last: "
                        f"{_describe(exc)}); the researcher pauses and tries again later") from exc
                message = f"waiting for the provider: {_describe(exc)}; attempt {attempt + 1} in {delay:.1f} s"
                self._log(message)
                if self.on_wait is not None:
                    self.on_wait(message)
                waited = True
                if cancel is not None:
                    if cancel.wait(delay):
                        raise ProviderUnavailable("the campaign is stopping while waiting for the provider") from exc
                else:
                    time.sleep(delay)
                continue
            if waited and self.on_wait is not None:
                self.on_wait(None)
            return result


def _usage(input_tokens: int, output_tokens: int, cache_write: int = 0, cache_read: int = 0) -> Usage:
    return Usage(input_tokens=input_tokens or 0, output_tokens=output_tokens or 0, cache_write_tokens=cache_write or 0,
                 cache_read_tokens=cache_read or 0)


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
    """Messages API with tool use; the system prompt and tool list are marked for prompt caching.

    max_tokens counts thinking too (current Opus models always think), so the default leaves
    plenty of room for it. effort: output_config.effort ("low" ... "max"); None: the model's default.
    """

    def __init__(self, model: str, *, api_key: str | None = None, base_url: str | None = None,
                 max_tokens: int = 32_000, effort: str | None = None, timeout: float = 900.0,
                 provider_retry_s: float = DEFAULT_PROVIDER_RETRY_S, on_wait: WaitHook | None = None,
                 error_log: Path | None = None) -> None:
        import anthropic  # imported here: keeps CLI start-up fast

        self.model = model
        self.max_tokens = max_tokens
        self.effort = effort
        # Our own retry loop (below) replaces the SDK's: it honours retry-after for minutes, not seconds.
        self.client = anthropic.Anthropic(api_key=api_key, base_url=base_url, timeout=timeout, max_retries=0)
        self.retry = ProviderRetry(provider_retry_s, on_wait, error_log,
                                   connection_errors=(anthropic.APIConnectionError,))

    def start(self, user_prompt: str) -> list[dict[str, Any]]:
        return [{"role": "user", "content": user_prompt}]

    def turn(self, system: str, messages: list[dict[str, Any]], tools: tuple[ToolSpec, ...], *,
             deadline: float | None = None, cancel: threading.Event | None = None) -> Turn:
        tool_defs = [tool.anthropic() for tool in tools]
        if tool_defs:
            tool_defs[-1] = tool_defs[-1] | {"cache_control": {"type": "ephemeral"}}
        extra: dict[str, Any] = {"output_config": {"effort": self.effort}} if self.effort else {}
        # The history and tool specs are plain JSON dicts in the wire format; the SDK types them as TypedDicts.
        sent = cast("list[MessageParam]", _cache_history(messages))
        tool_params = cast("list[ToolParam]", tool_defs)
        response = self.retry.call(lambda: self.client.messages.create(
            model=self.model, max_tokens=self.max_tokens, messages=sent, tools=tool_params,
            system=[{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}], **extra,
        ), deadline=deadline, cancel=cancel)
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
        u = response.usage
        usage = _usage(u.input_tokens, u.output_tokens, getattr(u, "cache_creation_input_tokens", 0),
                       getattr(u, "cache_read_input_tokens", 0))
        return Turn("\n".join(texts), calls, usage, {"role": "assistant", "content": blocks},
                    stop_reason=response.stop_reason or "")

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
             deadline: float | None = None, cancel: threading.Event | None = None) -> Turn:
        # The history and tool specs are plain JSON dicts in the wire format; the SDK types them as TypedDicts.
        tool_params = cast("list[ChatCompletionToolParam]", [tool.openai() for tool in tools])
        sent = cast("list[ChatCompletionMessageParam]", [{"role": "system", "content": system}, *messages])
        response = self.retry.call(lambda: self.client.chat.completions.create(
            model=self.model, max_tokens=self.max_tokens, tools=tool_params, messages=sent,
        ), deadline=deadline, cancel=cancel)
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
        u = response.usage
        cached = 0
        # getattr: older SDKs and some servers' usage objects have no prompt_tokens_details at all
        details = getattr(u, "prompt_tokens_details", None) if u is not None else None
        if details is not None:
            cached = details.cached_tokens or 0
        usage = _usage((u.prompt_tokens - cached) if u else 0, u.completion_tokens if u else 0, cache_read=cached)
        return Turn(message.content or "", calls, usage, assistant, stop_reason=choice.finish_reason or "")

    def tool_results(self, calls: list[ToolCall], results: list[str]) -> list[dict[str, Any]]:
        return [{"role": "tool", "tool_call_id": call.id, "content": result} for call, result in zip(calls, results)]
