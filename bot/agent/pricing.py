"""Estimated cost of model calls: one table of list prices, in US dollars per million tokens.

Prices are matched by model family (the model id's prefix), so a new dated version of a family is priced
like its family. Cache writes cost 1.25 times the input price for the 5-minute cache and 2 times for the
1-hour cache; cache reads cost 0.1 times, whichever cache they read. Update this table when Anthropic's
prices change; unknown models are priced as Sonnet, and said so in logs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

log = logging.getLogger(__name__)

CACHE_WRITE_FACTOR = 1.25  # a 5-minute cache write
CACHE_WRITE_1H_FACTOR = 2.0  # a 1-hour cache write
CACHE_READ_FACTOR = 0.10
# The web search server tool is billed per search, on top of tokens: $10 per 1,000.
WEB_SEARCH_USD = 0.01


@dataclass(frozen=True)
class Price:
    """List price of one model family, per million tokens."""

    input: float
    output: float


PRICES: dict[str, Price] = {
    "claude-opus": Price(input=5.00, output=25.00),
    "claude-sonnet": Price(input=3.00, output=15.00),
    "claude-haiku": Price(input=1.00, output=5.00),
}
FALLBACK = PRICES["claude-sonnet"]


def price_of(model: str) -> Price:
    """The price of `model`'s family."""
    for family, price in PRICES.items():
        if model.startswith(family):
            return price
    log.warning("no price known for model %s; estimating it at Sonnet's price", model)
    return FALLBACK


def cost_usd(
    model: str,
    *,
    input_tokens: int,
    output_tokens: int,
    cache_write: int,
    cache_read: int,
    web_searches: int = 0,
    cache_write_1h: int = 0,
) -> float:
    """Estimated cost of one call; `input_tokens` are the uncached ones, as the API's usage reports them.

    `cache_write` counts the tokens written to the 5-minute cache and `cache_write_1h` those written to the 1-hour
    cache: two parts of the API's cache_creation_input_tokens, each at its own price.
    """
    price = price_of(model)
    written = cache_write * CACHE_WRITE_FACTOR + cache_write_1h * CACHE_WRITE_1H_FACTOR
    uncached = input_tokens + written + cache_read * CACHE_READ_FACTOR
    return (uncached * price.input + output_tokens * price.output) / 1_000_000 + web_searches * WEB_SEARCH_USD
