"""One provider request, made safe for a campaign: retried through passing trouble, abandoned when the
campaign stops, charged once, and a context-length refusal told apart from other refusals.

Provider trouble that passes (429, 5xx, 529 overloaded, timeouts, dropped connections) is retried
with exponential backoff and jitter, honouring retry-after, for up to `provider_retry_s`; then
ProviderUnavailable is raised (the campaign pauses the researcher and goes on). A request the
provider refuses (bad key, bad request) raises ProviderRejected at once: no retry can help, except
for a prompt longer than the model's context, which raises ContextTooLong (the policy compacts the
conversation and asks again).

Why requests run in a thread of their own: a model can think for minutes, and the campaign's
deadline or stop must not wait for it (a stalled request once held a researcher past the join
grace, and nothing was verified). The caller stops waiting at once (TurnAbandoned); the thread ends
when the answer, the stream's next event or the client's timeout comes, and the request's tokens
are still charged: what a stream had reported when it was abandoned, or the late answer's usage.
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from autow2s.errors import ProviderRejected, ProviderUnavailable
from autow2s.researchers.accounting import Usage

DEFAULT_PROVIDER_RETRY_S = 600.0
FIRST_BACKOFF_S = 2.0
MAX_BACKOFF_S = 60.0
RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 520, 521, 522, 523, 524, 529})
ABANDON_POLL_S = 0.1
T = TypeVar("T")
WaitHook = Callable[[str | None], None]
UsageHook = Callable[[Usage], None]

# What OpenAI, vLLM, llama.cpp, LM Studio, OpenRouter and Anthropic say when a prompt does not fit.
CONTEXT_ERROR = re.compile(r"context[ _-]?(length|size|window)|maximum context|prompt is too long|too many (input )?tokens"
                           r"|exceeds? the (available )?context|reduce the length of the messages", re.IGNORECASE)
# The model's limit, where the message gives it: (pattern, which group is the maximum).
CONTEXT_LIMITS = (re.compile(r"maximum context length is (\d+)", re.IGNORECASE),
                  re.compile(r"tokens? > (\d+) maximum", re.IGNORECASE),
                  re.compile(r"n_ctx\W{0,4}(\d+)", re.IGNORECASE),
                  re.compile(r"context (?:length|size|window) (?:of|is) (\d+)", re.IGNORECASE))
COMPLETION_PART = re.compile(r"(\d+) in the completion", re.IGNORECASE)


class TurnAbandoned(ProviderUnavailable):
    """The campaign stopped, or its deadline passed, while a request was in flight; nobody waits for it."""


class ContextTooLong(ProviderRejected):
    """The provider refused the prompt as longer than the model's context.

    prompt_limit: the prompt tokens the model takes, where the message says (its maximum less the
    completion tokens the request reserved); None where it does not.
    """

    def __init__(self, message: str, prompt_limit: int | None = None) -> None:
        super().__init__(message)
        self.prompt_limit = prompt_limit


def context_refusal(exc: Exception) -> ContextTooLong | None:
    """A 400/413 that says the prompt exceeds the context, as ContextTooLong; None for any other error."""
    if getattr(exc, "status_code", None) not in (400, 413):
        return None
    text = f"{getattr(exc, 'message', '') or exc} {getattr(exc, 'body', '') or ''}"
    if not CONTEXT_ERROR.search(text):
        return None
    limit = next((int(m.group(1)) for pattern in CONTEXT_LIMITS if (m := pattern.search(text))), None)
    completion = COMPLETION_PART.search(text)
    if limit is not None and completion is not None:
        limit = max(0, limit - int(completion.group(1)))
    return ContextTooLong(f"the prompt is longer than the model's context ({describe(exc)})", limit)


def retry_after(exc: Exception) -> float | None:
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


def describe(exc: Exception) -> str:
    status = getattr(exc, "status_code", None)
    text = str(getattr(exc, "message", None) or exc).strip()
    text = re.sub(rf"^(Error code: )?{status}\b\s*-?\s*", "", text) if status else text  # the SDKs' own prefix
    message = text.splitlines()[0][:200] if text else type(exc).__name__
    return f"{status} {message}" if status else f"{type(exc).__name__}: {message}"


@dataclass
class UsageMeter:
    """One request's tokens, charged exactly once through on_usage.

    The request's thread settles with the answer's usage, or with what its stream had reported
    (`seen`) if it fails or is abandoned midway; the waiting side settles with `seen` when it
    abandons the request. A settle that knows no tokens yet leaves it to a later one (an abandoned
    unstreamed request is charged when its late answer comes).
    """

    on_usage: UsageHook | None = None
    seen: Usage = field(default_factory=Usage)
    abandoned: threading.Event = field(default_factory=threading.Event)
    _settled: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def settle(self, usage: Usage | None = None) -> None:
        final = usage if usage is not None else self.seen
        with self._lock:
            if self._settled or not final.any():
                return
            self._settled = True
        if self.on_usage is not None:
            self.on_usage(final)


def run_abandonable(attempt: Callable[[UsageMeter], T], meter: UsageMeter, *, deadline: float | None = None,
                    cancel: threading.Event | None = None) -> T:
    """attempt(meter), in a thread the caller stops waiting for once `cancel` is set or `deadline` passes."""
    def ended() -> str | None:
        if cancel is not None and cancel.is_set():
            return "the campaign is stopping"
        if deadline is not None and time.monotonic() >= deadline:
            return "the campaign's deadline passed"
        return None

    if deadline is None and cancel is None:
        return attempt(meter)
    if (why := ended()) is not None:
        raise TurnAbandoned(f"{why}: no request to the provider starts now")
    done = threading.Event()
    outcome: list[tuple[bool, object]] = []

    def work() -> None:
        try:
            outcome.append((True, attempt(meter)))
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting side, which re-raises it
            outcome.append((False, exc))
        finally:
            done.set()

    threading.Thread(target=work, name="provider-request", daemon=True).start()
    while not done.wait(ABANDON_POLL_S):
        if (why := ended()) is not None:
            meter.abandoned.set()
            meter.settle()
            raise TurnAbandoned(f"{why} while the provider was answering: the request was abandoned")
    ok, value = outcome[0]
    if ok:
        return value  # type: ignore[return-value]
    raise value  # type: ignore[misc]


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
        # Below 400: an error event inside a stream the server had accepted (overloaded midway): it passes.
        return isinstance(status, int) and (status in RETRYABLE_STATUS or status >= 500 or status < 400)

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
            except TurnAbandoned:
                if waited and self.on_wait is not None:
                    self.on_wait(None)
                raise
            except Exception as exc:  # noqa: BLE001 - sorted below into retry, reject, or a bug
                status = getattr(exc, "status_code", None)
                if not self._retryable(exc):
                    if isinstance(status, int):
                        self._log(f"rejected: {describe(exc)}")
                        too_long = context_refusal(exc)
                        if too_long is not None:
                            raise too_long from exc
                        raise ProviderRejected(f"the provider refused the request ({describe(exc)}); check the "
                                               "API key, the model name and --base-url; retrying cannot help") from exc
                    raise
                attempt += 1
                backoff = min(self.max_backoff_s, self.first_backoff_s * 2 ** (attempt - 1))
                hinted = retry_after(exc)
                delay = hinted if hinted is not None else backoff * random.uniform(0.5, 1.0)
                now = time.monotonic()
                if now + delay > give_up:
                    self._log(f"gave up after {now - started:.0f} s and {attempt} attempts: {describe(exc)}")
                    if self.on_wait is not None:
                        self.on_wait(None)
                    raise ProviderUnavailable(
                        f"the provider kept failing for {now - started:.0f} s ({attempt} attempts; last: "
                        f"{describe(exc)}); the researcher pauses and tries again later") from exc
                message = f"waiting for the provider: {describe(exc)}; attempt {attempt + 1} in {delay:.1f} s"
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


__all__ = ["DEFAULT_PROVIDER_RETRY_S", "ContextTooLong", "ProviderRetry", "TurnAbandoned", "UsageHook", "UsageMeter",
           "WaitHook", "context_refusal", "run_abandonable"]
