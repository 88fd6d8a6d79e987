"""Local HTTP servers that speak the Anthropic Messages and OpenAI chat-completions wire protocols.

They replay a script: each step sees the request body (so it can use earlier tool results) and
returns tool calls, a final text, or a Fault (an HTTP error such as a 529 burst). Every request is
recorded for assertions.

Like the current Claude models, the Anthropic side starts every assistant turn with a thinking
block (empty text, a signature) and, when asked, a redacted_thinking block; like the real API it
answers 400 to a follow-up whose earlier assistant turns do not come back exactly as it sent them.
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
    status 0 drops the connection without an answer (a connection reset)."""

    status: int
    retry_after_ms: int | None = 10
    message: str = "Overloaded"


Reply = list[tuple[str, Any]] | str | Fault
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

    def next(self, body: dict[str, Any]) -> Reply:
        self.requests.append(body)
        if self.position >= len(self.steps):
            return "done"
        step = self.steps[self.position]
        self.position += 1
        return step(body)


def _signature(n: int) -> str:
    return hashlib.sha256(f"thinking-{n}".encode()).hexdigest()


def _anthropic_response(reply: list[tuple[str, Any]] | str, n: int, redacted: bool) -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"type": "thinking", "thinking": "", "signature": _signature(n)}]
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
            self.wfile.write(data)

        def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            script.headers.append({k.lower(): v for k, v in self.headers.items()})
            anthropic = self.path.endswith("/v1/messages")
            if not anthropic and not self.path.endswith("/v1/chat/completions"):
                self.send_error(404)
                return
            if anthropic:
                problem = _thinking_problem(body, script.sent)
                if problem is not None:
                    script.requests.append(body)
                    script.rejected.append(problem)
                    self._send(400, _error_body(True, 400, problem))
                    return
            n = len(script.requests)
            reply = script.next(body)
            if isinstance(reply, Fault) and reply.status == 0:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if isinstance(reply, Fault):
                headers = {} if reply.retry_after_ms is None else {"retry-after-ms": str(reply.retry_after_ms),
                                                                   "retry-after": "0"}
                self._send(reply.status, _error_body(anthropic, reply.status, reply.message), headers)
                return
            if anthropic:
                payload = _anthropic_response(reply, n, script.redacted)
                script.sent.append(payload["content"])
            else:
                payload = _openai_response(reply, n)
            self._send(200, payload)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
