"""Token and dollar accounting from a price table that is saved with the run."""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

from autow2s.errors import AutoW2SError
from autow2s.rundir.spend import SpendRecord, append_spend, read_spend

DEFAULT_CLAUDE_MODEL = "claude-opus-5-5"  # the current Opus (claude-opus-5 is legacy per Anthropic's model docs)


@dataclass(frozen=True)
class Price:
    """US dollars per million tokens.

    A long-context tier (long_input_above, long_input, long_output) prices a whole request at the higher
    rates once its input (cache reads and writes included) is above the threshold; its cache rates scale
    with the input rate.
    """

    input: float
    output: float
    cache_write: float | None = None  # default 1.25 x input (the 5-minute cache write)
    cache_read: float | None = None  # default 0.1 x input
    long_input_above: int | None = None  # input tokens of one request; None: no long-context tier
    long_input: float | None = None
    long_output: float | None = None

    def for_request(self, input_tokens: int) -> Price:
        """The rates that apply to one request with this many input tokens."""
        if self.long_input_above is None or input_tokens <= self.long_input_above:
            return self
        long_input = self.long_input if self.long_input is not None else self.input
        scale = long_input / self.input if self.input else 1.0
        return Price(long_input, self.long_output if self.long_output is not None else self.output,
                     cache_write=None if self.cache_write is None else self.cache_write * scale,
                     cache_read=None if self.cache_read is None else self.cache_read * scale)


# Public list prices, from Anthropic's model pages and pricing docs (platform.claude.com/docs/en/models/
# opus-5-5/overview, .../models/opus-5/overview, .../about-claude/pricing), checked 2026-11-30. Pass
# --prices FILE to override. The table in force is copied into the run dir, so a resumed run charges
# exactly what the first one did. claude-haiku-5-5: $0.10 / $0.50, and $0.50 / $2.50 for a request whose
# input is above 100k tokens (issue 28's figures; 40x cheaper than the default Opus below that).
DEFAULT_PRICES: dict[str, Price] = {
    "claude-opus-5-5": Price(4.0, 20.0, cache_write=5.0, cache_read=0.20),  # cache reads 0.05 x input
    "claude-opus-5": Price(5.0, 25.0, cache_write=6.25, cache_read=0.50),  # legacy
    "claude-fable-5-1": Price(10.0, 50.0),
    "claude-sonnet-5-5": Price(2.0, 10.0),
    "claude-sonnet-5": Price(2.0, 10.0),
    "claude-haiku-4-5": Price(1.0, 5.0),
    "claude-haiku-5-5": Price(0.10, 0.50, long_input_above=100_000, long_input=0.50, long_output=2.50),
    "*": Price(5.0, 25.0),  # unknown models are charged at a high list price, never for free
}


@dataclass
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_write_tokens: int = 0
    cache_read_tokens: int = 0

    def add(self, other: Usage) -> None:
        for key in asdict(self):
            setattr(self, key, getattr(self, key) + getattr(other, key))

    @property
    def prompt_tokens(self) -> int:
        """Every input token of a request, cached or not: what a long-context tier is judged on."""
        return self.input_tokens + self.cache_write_tokens + self.cache_read_tokens

    def any(self) -> bool:
        return any(asdict(self).values())

    def beyond(self, charged: Usage) -> Usage:
        """What this running total adds to what was already charged (never negative)."""
        return Usage(**{key: max(0, value - getattr(charged, key)) for key, value in asdict(self).items()})


def cost(usage: Usage, price: Price, request_input: int | None = None) -> float:
    """Dollars for `usage`, all of it from one request whose input was `request_input` tokens (default:
    usage's own input), which picks the long-context tier where the price has one."""
    price = price.for_request(usage.prompt_tokens if request_input is None else request_input)
    write = price.cache_write if price.cache_write is not None else price.input * 1.25
    read = price.cache_read if price.cache_read is not None else price.input * 0.1
    return (usage.input_tokens * price.input + usage.output_tokens * price.output
            + usage.cache_write_tokens * write + usage.cache_read_tokens * read) / 1e6


def load_prices(path: str | Path | None) -> dict[str, Price]:
    if path is None:
        return dict(DEFAULT_PRICES)
    try:
        data = json.loads(Path(path).read_text())
        return {model: Price(**fields) for model, fields in data.items()}
    except (OSError, json.JSONDecodeError, TypeError) as exc:
        raise AutoW2SError(f"{path}: cannot read the price table ({exc}); expected "
                           '{"model": {"input": $/Mtok, "output": $/Mtok}, ...}') from None


def save_prices(prices: dict[str, Price], path: Path) -> None:
    path.write_text(json.dumps({model: asdict(price) for model, price in prices.items()}, indent=1) + "\n")


class CapReached(AutoW2SError):
    """A dollar cap stops the researcher (or the whole campaign)."""


@dataclass
class Ledger:
    """Spend per researcher and in total, checked against caps before each model call."""

    prices: dict[str, Price]
    researcher_cap: float | None = None
    campaign_cap: float | None = None
    spent: dict[str, float] = field(default_factory=dict)
    usage: dict[str, Usage] = field(default_factory=dict)
    journal: Path | None = None  # append-only spend records; reloaded on resume
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        if self.journal is not None:
            for record in read_spend(self.journal):
                self.spent[record.researcher] = self.spent.get(record.researcher, 0.0) + record.dollars
                self.usage.setdefault(record.researcher, Usage()).add(Usage(**record.usage))

    def price(self, model: str) -> Price:
        return self.prices.get(model) or self.prices.get("*") or DEFAULT_PRICES["*"]

    def total(self) -> float:
        return sum(self.spent.values())

    def remaining(self, researcher: str) -> float | None:
        """Dollars this researcher may still spend under both caps (None: no cap at all)."""
        with self._lock:
            left = [cap - spent for cap, spent in ((self.researcher_cap, self.spent.get(researcher, 0.0)),
                                                   (self.campaign_cap, self.total())) if cap is not None]
        return min(left) if left else None

    def check(self, researcher: str) -> None:
        with self._lock:
            if self.researcher_cap is not None and self.spent.get(researcher, 0.0) >= self.researcher_cap:
                raise CapReached(f"{researcher} reached its ${self.researcher_cap:.2f} cap")
            if self.campaign_cap is not None and self.total() >= self.campaign_cap:
                raise CapReached(f"the campaign reached its ${self.campaign_cap:.2f} cap")

    def charge(self, researcher: str, model: str, usage: Usage, request_input: int | None = None) -> float:
        """Charge `usage` (one request's, or part of one whose input was `request_input` tokens)."""
        dollars = cost(usage, self.price(model), request_input)
        with self._lock:
            self.spent[researcher] = self.spent.get(researcher, 0.0) + dollars
            self.usage.setdefault(researcher, Usage()).add(usage)
            if self.journal is not None:
                append_spend(self.journal, SpendRecord(researcher, model, dollars, asdict(usage)))
        return dollars
