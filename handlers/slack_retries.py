"""slack_sdk's own retry handlers, each counting the retries it makes (bot/core/metrics.py, RETRIES).

The Web API client retries in these handlers, not in our code (the one place Slack calls are retried): a 429 after
its Retry-After, a 5xx, a dropped connection. Each handler counts a retry just before it waits for it.
"""

from __future__ import annotations

from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState

from bot.core import metrics


def _count(reason: str) -> None:
    metrics.RETRIES.labels(service="slack", reason=reason).inc()


class _Counted(AsyncRetryHandler):
    """Counts each retry under `reason`, then waits as the slack_sdk handler it is mixed into does."""

    reason = ""

    async def prepare_for_next_attempt_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        """Count the retry, then wait as slack_sdk does."""
        _count(self.reason)
        await super().prepare_for_next_attempt_async(state=state, request=request, response=response, error=error)


class CountedConnectionErrorRetries(_Counted, AsyncConnectionErrorRetryHandler):
    """Retries a call whose connection failed, counting each retry."""

    reason = "connection_error"


class CountedRateLimitRetries(_Counted, AsyncRateLimitErrorRetryHandler):
    """Retries a rate limited call (429) after its Retry-After, counting each retry."""

    reason = "rate_limited"


class CountedServerErrorRetries(_Counted, AsyncServerErrorRetryHandler):
    """Retries a call Slack answered with a server error (500, 503), counting each retry."""

    reason = "server_error"


def counted_retry_handlers() -> list[AsyncRetryHandler]:
    """The Web API client's retry handlers: two tries more after a connection error or a server error, three after
    a rate limit."""
    return [
        CountedConnectionErrorRetries(max_retry_count=2),
        CountedRateLimitRetries(max_retry_count=3),
        CountedServerErrorRetries(max_retry_count=2),
    ]
