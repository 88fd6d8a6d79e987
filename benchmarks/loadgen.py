"""A small, fast load generator for the lab (raw HTTP/1.1 keep-alive over asyncio).

Used by benchmarks/lab_server.py and by the lab's load and crash tests (tests/test_lab_reliability.py).
It is lean on purpose: on a 2-core machine the client shares the CPU with the server, and an HTTP
library's per-request overhead would be measured as the server's.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import numpy as np


@dataclass
class LoadResult:
    latencies_s: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    evaluation_ids: list[int] = field(default_factory=list)  # acknowledged: a full 200 answer was read
    sent: int = 0
    connection_errors: int = 0
    seconds: float = 0.0

    @property
    def throughput(self) -> float:
        return len(self.latencies_s) / self.seconds if self.seconds else 0.0

    def percentile_ms(self, q: float) -> float:
        return float(np.percentile(self.latencies_s, q) * 1000) if self.latencies_s else float("nan")


def evaluation_bodies(task: str, n_test: int, count: int, seed: int, *, binary: bool = False) -> list[bytes]:
    """Distinct random submissions (far apart, so the probing detector accepts every one).

    Probabilities with four decimals by default (what methods send); binary=True sends 0/1,
    which is quicker to build when a test needs thousands of bodies.
    """
    rng = np.random.default_rng(seed)
    if binary:
        prefix = b'{"task": ' + json.dumps(task).encode() + b', "predictions": ['
        return [prefix + b",".join(np.where(rng.random(n_test) < 0.5, b"0", b"1").tolist()) + b"]}"
                for _ in range(count)]
    return [json.dumps({"task": task, "predictions": np.round(rng.random(n_test), 4).tolist()}).encode()
            for _ in range(count)]


async def _client(host: str, port: int, token: str, bodies: list[bytes], result: LoadResult,
                  deadline: float) -> None:
    head = (f"POST /api/v1/evaluate HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
            "Content-Type: application/json\r\n").encode()
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError:
        result.connection_errors += 1
        return
    try:
        for body in bodies:
            if time.monotonic() > deadline:
                break
            started = time.perf_counter()
            writer.write(head + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
            result.sent += 1
            await writer.drain()
            status_line = await reader.readuntil(b"\r\n")
            headers = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in headers.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            payload = await reader.readexactly(length)
            result.latencies_s.append(time.perf_counter() - started)
            status = int(status_line.split()[1])
            result.statuses[status] = result.statuses.get(status, 0) + 1
            if status == 200:
                result.evaluation_ids.append(int(json.loads(payload)["evaluation_id"]))
    except (OSError, asyncio.IncompleteReadError, ValueError, KeyError, IndexError):
        result.connection_errors += 1
    finally:
        writer.close()


async def run_load_async(url: str, tokens: list[str], bodies: list[list[bytes]], *, max_seconds: float = 120.0) -> LoadResult:
    """One connection per entry of `bodies`, each sending its bodies in order with tokens[i % len]."""
    parts = urlsplit(url)
    result = LoadResult()
    deadline = time.monotonic() + max_seconds
    started = time.perf_counter()
    await asyncio.gather(*(_client(parts.hostname or "127.0.0.1", parts.port or 80, tokens[i % len(tokens)],
                                   client_bodies, result, deadline)
                           for i, client_bodies in enumerate(bodies)))
    result.seconds = time.perf_counter() - started
    return result


def run_load(url: str, tokens: list[str], bodies: list[list[bytes]], *, max_seconds: float = 120.0) -> LoadResult:
    return asyncio.run(run_load_async(url, tokens, bodies, max_seconds=max_seconds))
