"""SlackDelivery: requests the bot can verify, and Slack's retries for unacknowledged events only."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs

import pytest
from aiohttp import web
from slack_sdk.signature import SignatureVerifier

from playground.delivery import SlackDelivery
from tests.fakes import wait_until

SECRET = "delivery-test-secret"


class FakeBot:
    """A Request URL that records what it receives and answers with the status it is told."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], str]] = []
        self.statuses: list[int] = []
        self.delay = 0.0

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append((dict(request.headers), await request.text()))
        await asyncio.sleep(self.delay)
        status = self.statuses.pop(0) if self.statuses else 200
        return web.json_response({"text": "ack"} if status == 200 else {}, status=status)


@pytest.fixture
async def fake_bot() -> AsyncIterator[tuple[FakeBot, str]]:
    bot = FakeBot()
    app = web.Application()
    app.router.add_post("/slack/events", bot.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield bot, f"http://127.0.0.1:{port}/slack/events"
    await runner.cleanup()


async def test_events_are_signed_so_that_slacks_own_verifier_accepts_them(fake_bot: tuple[FakeBot, str]) -> None:
    bot, url = fake_bot
    delivery = SlackDelivery(url, SECRET)
    try:
        delivered = await delivery.event({"type": "event_callback", "event_id": "Ev1", "event": {}})
    finally:
        await delivery.close()
    assert delivered.ok and delivered.json() == {"text": "ack"}
    [(headers, body)] = bot.received
    verifier = SignatureVerifier(SECRET)
    assert verifier.is_valid(body, headers["X-Slack-Request-Timestamp"], headers["X-Slack-Signature"])
    assert not SignatureVerifier("another-secret").is_valid(
        body, headers["X-Slack-Request-Timestamp"], headers["X-Slack-Signature"]
    )
    assert "X-Slack-Retry-Num" not in headers


async def test_an_unacknowledged_event_is_sent_again_with_slacks_retry_headers(fake_bot: tuple[FakeBot, str]) -> None:
    bot, url = fake_bot
    bot.statuses = [503, 500]
    delivery = SlackDelivery(url, SECRET, retry_delays=(0.01, 0.01, 0.01))
    try:
        first = await delivery.event({"type": "event_callback", "event_id": "Ev2", "event": {}})
        assert first.status == 503 and not first.ok
        await wait_until(lambda: len(bot.received) == 3)
        await asyncio.sleep(0.05)  # and no fourth: the third was acknowledged
    finally:
        await delivery.close()
    assert len(bot.received) == 3
    bodies = {body for _, body in bot.received}
    assert len(bodies) == 1, "a retry carries the very same envelope"
    retries = [(h.get("X-Slack-Retry-Num"), h.get("X-Slack-Retry-Reason")) for h, _ in bot.received]
    assert retries == [(None, None), ("1", "http_error"), ("2", "http_error")]


async def test_a_slow_acknowledgement_counts_as_a_timeout(
    fake_bot: tuple[FakeBot, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    bot, url = fake_bot
    monkeypatch.setattr("playground.delivery.ACK_TIMEOUT", 0.2)
    bot.delay = 0.5
    delivery = SlackDelivery(url, SECRET, retry_delays=(0.01,))
    try:
        first = await delivery.event({"type": "event_callback", "event_id": "Ev3", "event": {}})
        assert (first.status, first.body) == (0, "timeout")
        await wait_until(lambda: len(bot.received) == 2)
    finally:
        await delivery.close()
    assert bot.received[1][0]["X-Slack-Retry-Reason"] == "http_timeout"


async def test_commands_and_clicks_go_once_as_signed_forms(fake_bot: tuple[FakeBot, str]) -> None:
    bot, url = fake_bot
    bot.statuses = [500, 500]
    delivery = SlackDelivery(url, SECRET, retry_delays=(0.01,))
    try:
        command = await delivery.form({"command": "/agent", "text": "status"})
        click = await delivery.interaction({"type": "block_actions", "actions": []})
        await asyncio.sleep(0.1)
    finally:
        await delivery.close()
    assert not command.ok and not click.ok
    assert len(bot.received) == 2, "Slack never retries commands or clicks"
    (command_headers, command_body), (_, click_body) = bot.received
    assert command_headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert parse_qs(command_body) == {"command": ["/agent"], "text": ["status"]}
    assert parse_qs(click_body)["payload"] == ['{"type": "block_actions", "actions": []}']


async def test_an_unreachable_bot_is_reported_not_raised() -> None:
    delivery = SlackDelivery("http://127.0.0.1:9/slack/events", SECRET, retry_delays=())
    try:
        delivered: Any = await delivery.form({"command": "/agent"})
    finally:
        await delivery.close()
    assert delivered.status == 0 and delivered.body.startswith("unreachable")
