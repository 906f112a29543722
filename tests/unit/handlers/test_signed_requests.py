"""POST /slack/events refuses what is not Slack's before it reads, parses or counts it as intake."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import time
from collections.abc import AsyncIterator, Iterator

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.runtime.app import Bot
from bot.runtime.web import build_web_app
from bot.tasks.priority import IntakeFirst
from handlers.signed_requests import slack_events_handler
from tests.fakes import FakeSlack, app_mention_event, event_envelope, sign, signed_event_request
from tests.unit.handlers.scenario import SECRET

JSON = {"Content-Type": "application/json"}
MAX_BODY_BYTES = 1024 * 1024  # the cap the README states


class CountingIntake(IntakeFirst):
    """IntakeFirst that counts the requests it was told about."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = 0

    @contextlib.contextmanager
    def taking_in(self) -> Iterator[None]:
        """Count, then track as usual."""
        self.entered += 1
        with super().taking_in():
            yield


async def no_health(_request: web.Request) -> web.Response:
    return web.Response(status=204)


@contextlib.asynccontextmanager
async def events_client(bot: Bot, intake: IntakeFirst) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    events = slack_events_handler(bot.bolt, SECRET, intake)
    async with TestClient(TestServer(build_web_app(health=no_health, events=events))) as client:
        yield client


async def post(client: TestClient[web.Request, web.Application], body: str, headers: dict[str, str]) -> int:
    async with client.post("/slack/events", data=io.BytesIO(body.encode()), headers=headers) as response:
        return response.status


async def test_unsigned_requests_never_count_as_intake(bot: Bot, slack: FakeSlack) -> None:
    """Unsigned, wrongly signed, stale and oversized requests are refused without entering IntakeFirst; a signed
    mention enters it once."""
    intake = CountingIntake()
    stale = int(time.time()) - 600
    async with events_client(bot, intake) as client:
        for body in ("[]", "123", "payload=[1]", json.dumps({"type": "event_callback"})):
            assert await post(client, body, JSON) == 401
            assert await post(client, body, {**JSON, **sign("wrong-secret", body)}) == 401
            assert await post(client, body, {**JSON, **sign(SECRET, body, timestamp=stale)}) == 401
        assert await post(client, "x" * (MAX_BODY_BYTES + 1), JSON) == 413
        assert intake.entered == 0
        envelope = event_envelope(app_mention_event(f"<@{slack.bot_user_id}> hi", user="U0ALICE", channel="C0GENERAL"))
        body, headers = signed_event_request(envelope, SECRET)
        assert await post(client, body, headers) == 200
        assert intake.entered == 1


async def test_a_chunked_body_is_refused_once_past_the_cap_without_reading_the_rest(bot: Bot) -> None:
    """A chunked body (no Content-Length) gets 413 as soon as it passes the cap: the answer comes while the sender
    still holds back the rest."""
    intake = CountingIntake()
    answered = asyncio.Event()

    async def endless() -> AsyncIterator[bytes]:
        chunk = b"x" * 65_536
        for _ in range(MAX_BODY_BYTES // len(chunk) + 2):
            yield chunk
        await asyncio.wait_for(answered.wait(), timeout=10)  # a server that read it all would never answer

    headers = {**JSON, **sign(SECRET, "")}
    async with events_client(bot, intake) as client, client.post("/slack/events", data=endless(), headers=headers) as r:
        answered.set()
        assert r.status == 413
    assert intake.entered == 0
