"""The Web API client's retry handlers count each retry in the metrics, by reason, and still retry as slack_sdk does."""

from __future__ import annotations

from slack_sdk.web.async_client import AsyncWebClient

from handlers.slack_retries import counted_retry_handlers
from tests.fakes import FakeSlack
from tests.unit.metric_values import sample


def retries(reason: str) -> float:
    return sample("slack_agent_retries_total", service="slack", reason=reason)


async def test_rate_limits_and_server_errors_are_retried_and_counted(slack: FakeSlack) -> None:
    """A 429 (after its Retry-After) and a 503 are each retried once to success, and counted by reason."""
    client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url, retry_handlers=counted_retry_handlers())
    before = (retries("rate_limited"), retries("server_error"))
    slack.fail_next("auth.test", retry_after=0)
    assert (await client.auth_test())["ok"]
    slack.fail_next("auth.test", status=503)
    assert (await client.auth_test())["ok"]
    assert (retries("rate_limited") - before[0], retries("server_error") - before[1]) == (1, 1)
    assert len(slack.calls_to("auth.test")) == 4
