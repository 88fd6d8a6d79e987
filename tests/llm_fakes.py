"""Local HTTP servers that speak the Anthropic Messages and OpenAI chat-completions wire protocols.

They replay a script: each step sees the request body (so it can use earlier tool results) and
returns tool calls or a final text. Every request is recorded for assertions.
"""

from __future__ import annotations

import json
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterator

Step = Callable[[dict[str, Any]], list[tuple[str, Any]] | str]  # tool calls [(name, args)] or final text
USAGE = {"input_tokens": 200_000, "output_tokens": 20_000}  # $1.50 per turn at $5/$25 per Mtok


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

    def next(self, body: dict[str, Any]) -> list[tuple[str, Any]] | str:
        self.requests.append(body)
        if self.position >= len(self.steps):
            return "done"
        step = self.steps[self.position]
        self.position += 1
        return step(body)


def _anthropic_response(reply: list[tuple[str, Any]] | str, n: int) -> dict[str, Any]:
    if isinstance(reply, str):
        content, stop = [{"type": "text", "text": reply}], "end_turn"
    else:
        content = [{"type": "text", "text": "Working on it."}]
        content += [{"type": "tool_use", "id": f"toolu_{n}_{i}", "name": name, "input": args}
                    for i, (name, args) in enumerate(reply)]
        stop = "tool_use"
    return {"id": f"msg_{n}", "type": "message", "role": "assistant", "model": "fake-claude", "content": content,
            "stop_reason": stop, "stop_sequence": None,
            "usage": {**USAGE, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}


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


@contextmanager
def fake_llm_server(script: ScriptedLLM) -> Iterator[str]:
    """Serve both protocols on a loopback port; yields the base URL (without /v1)."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep test output clean
            pass

        def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            script.headers.append({k.lower(): v for k, v in self.headers.items()})
            n = len(script.requests)
            if self.path.endswith("/v1/messages"):
                payload = _anthropic_response(script.next(body), n)
            elif self.path.endswith("/v1/chat/completions"):
                payload = _openai_response(script.next(body), n)
            else:
                self.send_error(404)
                return
            data = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
