"""Scenario tests of what intake counts: mentions by outcome, the ack time of Slack's requests, Redis errors."""

from __future__ import annotations

import io
import json

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.runtime.app import Bot, build_bot
from bot.runtime.web import build_web_app
from bot.tasks.priority import IntakeFirst
from handlers.signed_requests import slack_events_handler
from store.connection import connect
from tests.fakes import FakeSlack, app_mention_event, event_envelope, sign, signed_event_request
from tests.unit.handlers.scenario import SECRET, dispatch, settings_for
from tests.unit.metric_values import sample

CHANNEL = "C0GENERAL"


def mention(slack: FakeSlack, text: str = "hello") -> dict[str, object]:
    event = app_mention_event(f"<@{slack.bot_user_id}> {text}", user="U0ALICE", channel=CHANNEL)
    return event_envelope(event, team_id=slack.team_id)


def mentions(outcome: str) -> float:
    return sample("slack_agent_mentions_total", outcome=outcome, reason="none")


async def test_a_mention_counts_once_and_slacks_retries_apart(bot: Bot, slack: FakeSlack) -> None:
    """A mention counts as accepted once; Slack's redeliveries of its event count as duplicates, not mentions."""
    accepted, duplicate = mentions("accepted"), mentions("duplicate")
    envelope = mention(slack)
    assert await dispatch(bot, envelope) == 200
    for attempt in (1, 2):
        assert await dispatch(bot, envelope, retry_num=attempt, retry_reason="http_timeout") == 200
    assert await dispatch(bot, mention(slack, "another")) == 200
    assert (mentions("accepted") - accepted, mentions("duplicate") - duplicate) == (2, 2)


async def test_a_mention_redis_refused_counts_as_a_redis_error(slack: FakeSlack) -> None:
    """When Redis cannot take a mention, the failure counts as an intake Redis error and not as a mention."""
    errors, accepted = sample("slack_agent_redis_errors_total", where="intake"), mentions("accepted")
    dead = connect("redis://127.0.0.1:9/0")
    try:
        assert await dispatch(build_bot(settings_for(slack), dead), mention(slack)) == 500
    finally:
        await dead.aclose()
    assert sample("slack_agent_redis_errors_total", where="intake") - errors == 1
    assert mentions("accepted") == accepted


async def no_health(_request: web.Request) -> web.Response:
    return web.Response(status=204)


async def test_each_signed_request_is_timed_and_refused_ones_are_not(bot: Bot, slack: FakeSlack) -> None:
    """POST /slack/events observes the ack time of each request it hands to Bolt; what it refuses is not timed."""
    events = slack_events_handler(bot.bolt, SECRET, IntakeFirst())
    before = sample("slack_agent_ack_seconds_count")
    async with TestClient(TestServer(build_web_app(health=no_health, events=events))) as client:
        body = json.dumps({"type": "event_callback"})
        async with client.post("/slack/events", data=body, headers=sign("wrong-secret", body)) as refused:
            assert refused.status == 401
        body, headers = signed_event_request(mention(slack), SECRET)
        async with client.post("/slack/events", data=io.BytesIO(body.encode()), headers=headers) as response:
            assert response.status == 200
    assert sample("slack_agent_ack_seconds_count") - before == 1
    assert sample("slack_agent_ack_seconds_bucket", le="+Inf") >= 1
