"""Local HTTP servers that speak the Anthropic Messages and OpenAI chat-completions wire protocols.

They replay a script: each step sees the request body (so it can use earlier tool results) and
returns tool calls, a final text, a Fault (an HTTP error such as a 529 burst) or a Stall (a provider
that goes quiet mid-answer). Every request is recorded for assertions.

Like the current Claude models, the Anthropic side starts every assistant turn with a thinking
block (empty text, a signature) and, when asked, a redacted_thinking block; like the real API it
answers 400 to a follow-up whose earlier assistant turns do not come back exactly as it sent them,
and it streams its answer as server-sent events when the request asks for `stream`. With
`context_limit` set, a request longer than that many tokens (counted more strictly than autow2s
estimates them) is answered 400 with the message a real server sends: vLLM's "maximum context
length is N tokens" on the OpenAI side, "prompt is too long" on the Anthropic side.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Fault:
    """An HTTP error instead of a reply: 529 overloaded, 429 rate limited, 401 bad key, 400 bad request;
    status 0 drops the connection without an answer (a connection reset). midstream: a streamed
    Anthropic answer starts (200, message_start with its input tokens) and then sends an error event."""

    status: int
    retry_after_ms: int | None = 10
    message: str = "Overloaded"
    midstream: bool = False


@dataclass(frozen=True)
class Stall:
    """A provider that goes quiet: a streamed answer stops after its first event (message_start, which
    carries the input tokens), an unstreamed one before any byte; after `seconds` (or when the server
    closes) the answer ends with `text`."""

    seconds: float = 120.0
    text: str = "too late"


Reply = list[tuple[str, Any]] | str | Fault | Stall
Step = Callable[[dict[str, Any]], Reply]  # tool calls [(name, args)], a final text, or a Fault
USAGE = {"input_tokens": 200_000, "output_tokens": 20_000}  # $1.50 per turn at $5/$25 per Mtok
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 429: "rate_limit_error", 500: "api_error", 529: "overloaded_error"}


# The faults a real agent sent: a missing file, a non-JSON file, a file with no `predictions` key,
# a method directory that does not exist; and the error-log line each must leave.
FILE_FAULTS: list[Step] = [
    lambda b: [("evaluate_predictions", {"predictions_file": "missing.json"})],
    lambda b: [("write_file", {"path": "bad.json", "content": "{not json"}),
               ("evaluate_predictions", {"predictions_file": "bad.json"})],
    lambda b: [("write_file", {"path": "nokey.json", "content": '{"preds": [0.5]}'}),
               ("evaluate_predictions", {"predictions_file": "nokey.json"})],
    lambda b: [("run_experiment", {"method_dir": "no_such_method", "seeds": [1, 2]})],
]
FILE_FAULTS_LOGGED = ("missing.json: no such file", "bad.json is not JSON", "nokey.json has no 'predictions' key",
                      "no_such_method: no such directory")


def last_tool_results(body: dict[str, Any]) -> list[str]:
    """The tool results the client sent in its latest message, in either protocol."""
    messages = body.get("messages", [])
    if messages and messages[-1].get("role") == "user" and isinstance(messages[-1].get("content"), list):
        return [block.get("content", "") for block in messages[-1]["content"] if block.get("type") == "tool_result"]
    results = []
    for message in reversed(messages):
        if message.get("role") != "tool":
            break
        results.insert(0, message.get("content", ""))
    return results


@dataclass
class ScriptedLLM:
    steps: list[Step]
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    position: int = 0
    redacted: bool = False  # also emit a redacted_thinking block on every Anthropic turn
    sent: list[list[dict[str, Any]]] = field(default_factory=list)  # Anthropic contents as sent
    rejected: list[str] = field(default_factory=list)  # why a request got a 400 from the protocol check
    thinking: bool = True  # start every Anthropic turn with a thinking block, and check it comes back unmodified
    context_limit: int | None = None  # tokens; a longer request gets the provider's context-length 400
    too_long: list[int] = field(default_factory=list)  # the token counts refused for context length
    released: threading.Event = field(default_factory=threading.Event)  # ends every Stall at once

    def next(self, body: dict[str, Any]) -> Reply:
        self.requests.append(body)
        if self.position >= len(self.steps):
            return "done"
        step = self.steps[self.position]
        self.position += 1
        return step(body)


def _signature(n: int) -> str:
    return hashlib.sha256(f"thinking-{n}".encode()).hexdigest()


def request_tokens(body: dict[str, Any]) -> int:
    """What the fake's "tokenizer" counts: 3 characters of the request's JSON a token, stricter than the
    4 a token autow2s estimates (real tokenizers count JSON and code that densely)."""
    return len(json.dumps(body)) // 3


def _anthropic_response(reply: list[tuple[str, Any]] | str, n: int, redacted: bool,
                        thinking: bool = True) -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"type": "thinking", "thinking": "", "signature": _signature(n)}] if thinking else []
    if redacted:
        content.append({"type": "redacted_thinking", "data": f"encrypted-{_signature(n)[:16]}"})
    if isinstance(reply, str):
        content.append({"type": "text", "text": reply})
        stop = "end_turn"
    else:
        content.append({"type": "text", "text": "Working on it."})
        content += [{"type": "tool_use", "id": f"toolu_{n}_{i}", "name": name, "input": args}
                    for i, (name, args) in enumerate(reply)]
        stop = "tool_use"
    return {"id": f"msg_{n}", "type": "message", "role": "assistant", "model": "fake-claude", "content": content,
            "stop_reason": stop, "stop_sequence": None,
            "usage": {**USAGE, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}


def _sse_events(payload: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """A Messages API answer as the stream of events the real API sends for it."""
    start = {key: value for key, value in payload.items() if key != "content"}
    start = {**start, "content": [], "stop_reason": None,
             "usage": {**payload["usage"], "output_tokens": 1}}
    events: list[tuple[str, dict[str, Any]]] = [("message_start", {"type": "message_start", "message": start})]
    for index, block in enumerate(payload["content"]):
        kind = block["type"]
        if kind == "thinking":
            opened = {"type": "thinking", "thinking": "", "signature": ""}
            deltas = [{"type": "thinking_delta", "thinking": block["thinking"]},
                      {"type": "signature_delta", "signature": block["signature"]}]
        elif kind == "text":
            opened, deltas = {"type": "text", "text": ""}, [{"type": "text_delta", "text": block["text"]}]
        elif kind == "tool_use":
            opened = {**block, "input": {}}
            deltas = [{"type": "input_json_delta", "partial_json": json.dumps(block["input"])}]
        else:  # redacted_thinking comes whole in its start event
            opened, deltas = block, []
        events.append(("content_block_start", {"type": "content_block_start", "index": index, "content_block": opened}))
        events += [("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
                   for delta in deltas]
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    events.append(("message_delta", {"type": "message_delta",
                                     "delta": {"stop_reason": payload["stop_reason"], "stop_sequence": None},
                                     "usage": {"output_tokens": payload["usage"]["output_tokens"]}}))
    events.append(("message_stop", {"type": "message_stop"}))
    return events


def _too_long(anthropic: bool, body: dict[str, Any], limit: int) -> tuple[int, str] | None:
    """The context-length refusal a real server sends, or None when the request fits."""
    prompt = request_tokens(body)
    if anthropic:
        return (prompt, f"prompt is too long: {prompt} tokens > {limit} maximum") if prompt > limit else None
    completion = int(body.get("max_tokens") or 0)
    if prompt + completion <= limit:
        return None
    return prompt, (f"This model's maximum context length is {limit} tokens. However, you requested "
                    f"{prompt + completion} tokens ({prompt} in the messages, {completion} in the completion). "
                    "Please reduce the length of the messages or completion.")


def _thinking_problem(body: dict[str, Any], sent: list[list[dict[str, Any]]]) -> str | None:
    """What the real API would reject: an assistant turn not sent back exactly as it was produced."""
    for index, message in enumerate(body.get("messages", [])):
        if message.get("role") != "assistant":
            continue
        content = message.get("content")
        if not isinstance(content, list) or not content or content[0].get("type") not in ("thinking",
                                                                                            "redacted_thinking"):
            found = content[0].get("type") if isinstance(content, list) and content else type(content).__name__
            return (f"messages.{index}.content.0.type: Expected `thinking` or `redacted_thinking`, but found "
                    f"`{found}`. When thinking is enabled, an assistant message with tool_use must start with the "
                    "thinking blocks of that turn, passed back unmodified")
        if content not in sent:
            return f"messages.{index}.content: thinking blocks cannot be modified; pass them back exactly as received"
    return None


def _openai_response(reply: list[tuple[str, Any]] | str, n: int) -> dict[str, Any]:
    if isinstance(reply, str):
        message, finish = {"role": "assistant", "content": reply}, "stop"
    else:
        calls = [{"id": f"call_{n}_{i}", "type": "function",
                  "function": {"name": name, "arguments": args if isinstance(args, str) else json.dumps(args)}}
                 for i, (name, args) in enumerate(reply)]
        message, finish = {"role": "assistant", "content": None, "tool_calls": calls}, "tool_calls"
    return {"id": f"chatcmpl-{n}", "object": "chat.completion", "created": 0, "model": "fake-gpt",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": USAGE["input_tokens"], "completion_tokens": USAGE["output_tokens"],
                      "total_tokens": USAGE["input_tokens"] + USAGE["output_tokens"]}}


def _error_body(anthropic: bool, status: int, message: str) -> dict[str, Any]:
    kind = ERROR_TYPES.get(status, "api_error")
    if anthropic:
        return {"type": "error", "error": {"type": kind, "message": message}}
    return {"error": {"message": message, "type": kind, "code": None}}


@contextmanager
def fake_llm_server(script: ScriptedLLM) -> Iterator[str]:
    """Serve both protocols on a loopback port; yields the base URL (without /v1)."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep test output clean
            pass

        def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            try:
                self.wfile.write(data)
            except OSError:
                pass  # the client hung up: an abandoned request, answered after all

        def _stream(self, events: list[tuple[str, dict[str, Any]]], stall: Stall | None = None) -> None:
            """Server-sent events, flushed one by one; a Stall goes quiet after the first."""
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            self.close_connection = True  # no Content-Length: the stream ends when the connection does
            for index, (name, data) in enumerate(events):
                try:
                    self.wfile.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
                    self.wfile.flush()
                except OSError:
                    return  # the client hung up (an abandoned request)
                if stall is not None and index == 0:
                    script.released.wait(stall.seconds)

        def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            script.headers.append({k.lower(): v for k, v in self.headers.items()})
            path = self.path.split("?")[0]
            if path.endswith("/v1/messages/count_tokens"):  # Claude Code asks before it sends
                self._send(200, {"input_tokens": request_tokens(body)})
                return
            anthropic = path.endswith("/v1/messages")
            if not anthropic and not path.endswith("/v1/chat/completions"):
                self.send_error(404)
                return
            if anthropic and script.thinking:
                problem = _thinking_problem(body, script.sent)
                if problem is not None:
                    script.requests.append(body)
                    script.rejected.append(problem)
                    self._send(400, _error_body(True, 400, problem))
                    return
            if script.context_limit is not None:
                refusal = _too_long(anthropic, body, script.context_limit)
                if refusal is not None:
                    script.requests.append(body)
                    script.too_long.append(refusal[0])
                    self._send(400, _error_body(anthropic, 400, refusal[1]))
                    return
            n = len(script.requests)
            reply = script.next(body)
            stall = reply if isinstance(reply, Stall) else None
            if stall is not None:
                if not (anthropic and body.get("stream")):
                    script.released.wait(stall.seconds)
                reply = stall.text
            if isinstance(reply, Fault) and reply.status == 0:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if isinstance(reply, Fault) and reply.midstream and anthropic and body.get("stream"):
                started = _sse_events(_anthropic_response("", n, False, False))[:1]
                self._stream([*started, ("error", _error_body(True, reply.status, reply.message))])
                return
            if isinstance(reply, Fault):
                headers = {} if reply.retry_after_ms is None else {"retry-after-ms": str(reply.retry_after_ms),
                                                                   "retry-after": "0"}
                self._send(reply.status, _error_body(anthropic, reply.status, reply.message), headers)
                return
            if anthropic:
                payload = _anthropic_response(reply, n, script.redacted, script.thinking)
                script.sent.append(payload["content"])
                if body.get("stream"):
                    self._stream(_sse_events(payload), stall)
                    return
            else:
                payload = _openai_response(reply, n)
            self._send(200, payload)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        script.released.set()  # a stalled answer ends now
        server.shutdown()
        server.server_close()
