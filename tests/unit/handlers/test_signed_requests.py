"""POST /slack/events refuses what is not Slack's before it reads, parses or counts it as intake."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestClient, TestServer, unused_port
from yarl import URL

from bot.runtime.app import Bot
from bot.runtime.web import WebFront, build_web_app
from bot.tasks.priority import IntakeFirst
from handlers.signed_requests import BODY_DEADLINE_SECONDS, MAX_UNVERIFIED_READS, slack_events_handler
from tests.fakes import FakeSlack, app_mention_event, event_envelope, sign, signed_event_request, wait_until
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


@contextlib.asynccontextmanager
async def front(
    bot: Bot, *, body_deadline: float = BODY_DEADLINE_SECONDS, max_unverified_reads: int = MAX_UNVERIFIED_READS
) -> AsyncIterator[str]:
    """The web front as the bot serves it (aiohttp's test server cancels a handler whose client leaves; the bot's
    does not), with the given limits on body reads (small ones keep the tests fast); its URL."""
    events = slack_events_handler(
        bot.bolt, SECRET, IntakeFirst(), body_deadline=body_deadline, max_unverified_reads=max_unverified_reads
    )
    port = unused_port()
    web_front = WebFront(port=port, health=no_health, events=events, socket=None)
    await web_front.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await web_front.close()


def forged_headers() -> dict[str, str]:
    """Signature headers that look right and are current: anyone can send these."""
    return {**JSON, "X-Slack-Signature": f"v0={'0' * 64}", "X-Slack-Request-Timestamp": str(int(time.time()))}


async def stalled_post(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Send a request with forged signature headers and the first byte of its 100-byte body, then hold it open."""
    reader, writer = await asyncio.open_connection("127.0.0.1", URL(url).port)
    headers = "".join(f"{name}: {value}\r\n" for name, value in forged_headers().items())
    writer.write(f"POST /slack/events HTTP/1.1\r\nHost: test\r\n{headers}Content-Length: 100\r\n\r\n{{".encode())
    await writer.drain()
    return reader, writer


async def status_of(reader: asyncio.StreamReader) -> int:
    """The status code of the answer read from a raw connection."""
    return int((await reader.readline()).split()[1])


async def probe(url: str) -> int:
    """The status a whole body with forged signature headers gets: 401 if its read was let in, 503 if not."""
    async with (
        ClientSession() as session,
        session.post(f"{url}/slack/events", data=b"{}", headers=forged_headers()) as response,
    ):
        return response.status


def probe_gets(url: str, status: int) -> Callable[[], Awaitable[bool]]:
    """A predicate for wait_until: a probe gets `status`."""

    async def gets() -> bool:
        return await probe(url) == status

    return gets


async def test_a_body_that_never_comes_gets_408_after_the_deadline(bot: Bot) -> None:
    """A request that sends its headers and holds back its body gets 408 once the body deadline passes, rather than
    holding its connection and what it sent open for as long as the sender likes."""
    async with front(bot, body_deadline=0.1) as url:
        reader, writer = await stalled_post(url)
        try:
            assert await asyncio.wait_for(status_of(reader), timeout=5) == 408
            writer.close()  # a FIN, not a reset: over a reset connection aiohttp lingers 10 s, holding up shutdown
            await writer.wait_closed()
        finally:
            writer.transport.abort()


async def test_unverified_bodies_are_read_a_few_at_a_time(bot: Bot) -> None:
    """With two unverified body reads in flight a third request gets 503 at once; once their senders hang up, their
    places are free again."""
    async with front(bot, max_unverified_reads=2) as url:
        connections = [await stalled_post(url) for _ in range(3)]
        answers = [asyncio.create_task(status_of(reader)) for reader, _ in connections]
        try:
            done, pending = await asyncio.wait(answers, timeout=5, return_when=asyncio.FIRST_COMPLETED)
            assert [task.result() for task in done] == [503] and len(pending) == 2
        finally:
            for _, writer in connections:
                writer.transport.abort()
            await asyncio.gather(*answers, return_exceptions=True)
        await wait_until(probe_gets(url, 401))


async def test_a_sender_that_hangs_up_mid_body_costs_a_debug_line(bot: Bot, caplog: pytest.LogCaptureFixture) -> None:
    """A request dropped halfway through its body is refused quietly: no line above DEBUG (anyone can do this)."""
    caplog.set_level(logging.DEBUG)
    async with front(bot, max_unverified_reads=1) as url:
        _, writer = await stalled_post(url)
        await wait_until(probe_gets(url, 503))  # the server is reading the stalled body
        writer.transport.abort()

        def handled() -> list[logging.LogRecord]:
            return [r for r in caplog.records if r.name == "aiohttp.server" or "hung up" in r.getMessage()]

        await wait_until(handled)
    assert [r.getMessage() for r in caplog.records if r.levelno > logging.DEBUG] == []


async def test_a_body_that_cannot_be_decompressed_gets_400(bot: Bot, caplog: pytest.LogCaptureFixture) -> None:
    """A body that says it is gzip and is not (aiohttp decompresses bodies) is refused 400 at DEBUG, not a 500."""
    caplog.set_level(logging.DEBUG)
    headers = {**forged_headers(), "Content-Encoding": "gzip"}
    async with (
        front(bot) as url,
        ClientSession() as session,
        session.post(f"{url}/slack/events", data=b"not gzip at all", headers=headers) as response,
    ):
        assert response.status == 400
    assert "refused a request to /slack/events: body not decodable" in caplog.messages
