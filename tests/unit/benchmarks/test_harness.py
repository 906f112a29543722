"""The benchmark's load: mentions stored in the fake Slack as real Slack stores them, then sent by the load client."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest
from aiohttp import web
from slack_sdk.web.async_client import AsyncWebClient

from benchmarks.harness import Bench
from benchmarks.settings import ModelSpeed
from tests.fakes import FakeSlack
from tests.integration.harness import BotProcess, free_port

CHANNEL = "C0BENCHLOAD"


@pytest.fixture
async def bench(tmp_path: Path) -> AsyncIterator[Bench]:
    """A session whose fake Slack runs; no bot process, no Redis command."""
    session = Bench("redis://127.0.0.1:1/0", tmp_path, ModelSpeed(0.0, 0.0, 8, 16))
    await session.slack.start()
    try:
        yield session
    finally:
        await session.slack.stop()
        await session.redis.aclose()


async def replies(slack: FakeSlack, ts: str) -> list[str]:
    """The texts conversations.replies gives for the thread at `ts`, read as the bot reads it."""
    client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
    answer = await client.conversations_replies(channel=CHANNEL, ts=ts)
    return [str(message["text"]) for message in answer["messages"]]


async def test_every_mention_sent_is_a_message_the_fake_slack_has(bench: Bench) -> None:
    """The load client posts each mention the harness made, and each mentioned message can be read back from the
    fake Slack by its ts, as on real Slack (a retried task finds its thread)."""
    received: list[dict[str, object]] = []

    async def events(request: web.Request) -> web.Response:
        received.append(json.loads(await request.read()))
        return web.Response()

    async def nowhere(request: web.Request) -> web.Response:
        return web.Response(status=404)  # what the bot answers on the path the client opens its connections with

    app = web.Application()
    app.router.add_post("/slack/events", events)
    app.router.add_get("/bench-connect", nowhere)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        target = cast(BotProcess, SimpleNamespace(url=f"http://127.0.0.1:{port}"))
        sent = await bench.send_mentions(target, CHANNEL, 3, warm_up=True)
    finally:
        await runner.cleanup()

    assert len(received) == 4 and len(sent.ts) == 3  # the warm-up is sent, not timed
    assert [envelope["event"]["ts"] for envelope in received][1:] == sent.ts  # type: ignore[index]
    for number, ts in enumerate(sent.ts):
        assert await replies(bench.slack, ts) == [f"<@{bench.slack.bot_user_id}> ack {number}"]
    assert not list(bench.workdir.glob("mentions-*.json"))
