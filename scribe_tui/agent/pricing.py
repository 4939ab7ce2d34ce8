"""What a Claude turn costs: per-model prices in US dollars per million tokens.

The table covers the models whose list prices were published when it was
written; anything else costs $0 with a note until the user adds a price in the
config file::

    [prices."claude-opus-4-7"]
    input = 5.0
    output = 25.0
    cache_write = 6.25   # optional, defaults to 1.25 x input (5-minute cache)
    cache_read = 0.5     # optional, defaults to 0.1 x input
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from scribe_tui.agent.provider import Usage

__all__ = [
    "DEFAULT_PRICES",
    "ModelPrice",
    "merge_prices",
    "price_for",
    "turn_cost",
]

# Cache writes with the default 5-minute TTL cost 1.25x input; cache reads 0.1x.
CACHE_WRITE_FACTOR = 1.25
CACHE_READ_FACTOR = 0.1


@dataclass(frozen=True)
class ModelPrice:
    """US dollars per million tokens."""

    input: float
    output: float
    cache_write: float
    cache_read: float

    @classmethod
    def from_rates(cls, input: float, output: float) -> ModelPrice:
        """A price with the standard cache multipliers applied to ``input``."""
        return cls(input, output, input * CACHE_WRITE_FACTOR, input * CACHE_READ_FACTOR)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> ModelPrice:
        """Parse a config entry; raises ValueError (one line) when it is unusable."""
        unknown = set(data) - {"input", "output", "cache_write", "cache_read"}
        if unknown:
            raise ValueError(f"unknown price key(s) {', '.join(sorted(unknown))}")
        values: dict[str, float] = {}
        for key, value in data.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"price {key} should be a number, got {value!r}")
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"price {key} should be a non-negative number, got {value!r}")
            values[key] = float(value)
        if "input" not in values or "output" not in values:
            raise ValueError("a price needs at least input and output (USD per million tokens)")
        base = cls.from_rates(values["input"], values["output"])
        return cls(
            base.input,
            base.output,
            values.get("cache_write", base.cache_write),
            values.get("cache_read", base.cache_read),
        )

    def cost(self, usage: Usage) -> float:
        """Dollars for ``usage`` (its own ``cost_usd`` is ignored)."""
        return (
            usage.input_tokens * self.input
            + usage.output_tokens * self.output
            + usage.cache_creation_input_tokens * self.cache_write
            + usage.cache_read_input_tokens * self.cache_read
        ) / 1_000_000


# List prices (standard tier, prompts up to 200K tokens). Aliases share a row.
DEFAULT_PRICES: dict[str, ModelPrice] = {
    "claude-opus-4-6": ModelPrice.from_rates(5.0, 25.0),
    "claude-opus-4-5": ModelPrice.from_rates(5.0, 25.0),
    "claude-opus-4-1": ModelPrice.from_rates(15.0, 75.0),
    "claude-opus-4-0": ModelPrice.from_rates(15.0, 75.0),
    "claude-opus-4": ModelPrice.from_rates(15.0, 75.0),
    "claude-sonnet-4-6": ModelPrice.from_rates(3.0, 15.0),
    "claude-sonnet-4-5": ModelPrice.from_rates(3.0, 15.0),
    "claude-sonnet-4-0": ModelPrice.from_rates(3.0, 15.0),
    "claude-sonnet-4": ModelPrice.from_rates(3.0, 15.0),
    "claude-3-7-sonnet": ModelPrice.from_rates(3.0, 15.0),
    "claude-haiku-4-5": ModelPrice.from_rates(1.0, 5.0),
    "claude-3-5-haiku": ModelPrice.from_rates(0.8, 4.0),
    "claude-3-haiku": ModelPrice.from_rates(0.25, 1.25),
}

# "claude-sonnet-4-5-20250929" and "claude-3-5-haiku-latest" price like their family.
_SUFFIX = re.compile(r"-(\d{8}|latest)$")


def merge_prices(overrides: Mapping[str, Any] | None = None) -> dict[str, ModelPrice]:
    """The default table with ``overrides`` (model -> ModelPrice or config mapping) on top.

    Raises ValueError naming the model when an override cannot be parsed.
    """
    table = dict(DEFAULT_PRICES)
    for model, entry in (overrides or {}).items():
        if isinstance(entry, ModelPrice):
            table[model] = entry
            continue
        if not isinstance(entry, Mapping):
            raise ValueError(f"prices for {model}: expected a table of numbers, got {entry!r}")
        try:
            table[model] = ModelPrice.from_mapping(entry)
        except ValueError as exc:
            raise ValueError(f"prices for {model}: {exc}") from None
    return table


def price_for(model: str, prices: Mapping[str, ModelPrice] | None = None) -> ModelPrice | None:
    """The price of ``model`` (exact name, then without a date or -latest suffix), or None."""
    table = DEFAULT_PRICES if prices is None else prices
    if model in table:
        return table[model]
    return table.get(_SUFFIX.sub("", model))


def turn_cost(
    model: str, usage: Usage, prices: Mapping[str, ModelPrice] | None = None
) -> tuple[float, str | None]:
    """``(dollars, note)``: note is None when the model is priced, else says why cost is 0."""
    price = price_for(model, prices)
    if price is None:
        return 0.0, (
            f"no price known for model {model}: cost shown as $0; "
            f'add [prices."{model}"] input/output (USD per million tokens) to the config'
        )
    return price.cost(usage), None
