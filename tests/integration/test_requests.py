"""What POST /slack/events does with requests that are not Slack's, or not what Slack sends, in the running bot."""

from __future__ import annotations

import io
import json
import time
from typing import Any

import aiohttp
import pytest

from tests.fakes import (
    FakeAnthropic,
    FakeSlack,
    app_mention_event,
    event_envelope,
    sign,
    url_verification,
    wait_until,
)
from tests.integration.harness import SIGNING_SECRET, BotProcess

pytestmark = pytest.mark.integration
CHANNEL = "C0GENERAL"
JSON = {"Content-Type": "application/json"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
# Bodies Slack never sends: Bolt cannot make a request of them.
JUNK = [
    ("[]", JSON),
    ("123", JSON),
    ("payload=[1]", FORM),
    ("payload=notjson", FORM),
    (json.dumps({"event": {"text": "no type"}}), JSON),
]
ONE_MB = "x" * 1_000_000
TWO_MB = "x" * 2_000_000  # past the cap of 1 MiB


def mention(slack: FakeSlack, text: str) -> dict[str, Any]:
    return slack.post_user_message(CHANNEL, f"<@{slack.bot_user_id}> {text}", user="U0ALICE", mention=True)


async def post_large(bot: BotProcess, body: str, headers: dict[str, str]) -> int:
    """POST a large body (aiohttp wants a file-like object for those) to /slack/events; returns the status."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{bot.url}/slack/events", data=io.BytesIO(body.encode()), headers=headers) as response,
    ):
        return response.status


def lines_at(log: str, level: str) -> list[str]:
    """The log lines of records at `level` (the format is "<date> <time> LEVEL logger: message")."""
    return [line for line in log.splitlines() if line.split(" ", 3)[2:3] == [level]]


async def test_unsigned_junk_and_a_huge_body_are_refused_and_cost_nothing(
    bot: BotProcess, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    """`[]`, `123`, `payload=[1]` and the like, unsigned or signed with another secret, and 1 MB and 2 MB bodies get
    a 4xx with nothing logged at WARNING or above; a genuine mention right after is acknowledged and answered."""
    started = len(bot.output())
    for body, headers in JUNK:
        assert await bot.post_raw(body, headers) == 401
        assert await bot.post_raw(body, {**headers, **sign("not-the-secret", body)}) == 401
    assert await post_large(bot, ONE_MB, JSON) == 401
    assert await post_large(bot, ONE_MB, {**JSON, **sign("not-the-secret", ONE_MB)}) == 401
    assert await post_large(bot, TWO_MB, {**JSON, **sign("not-the-secret", TWO_MB)}) == 413
    stale = sign(SIGNING_SECRET, "[]", timestamp=int(time.time()) - 3600)
    assert await bot.post_raw("[]", {**JSON, **stale}) == 401
    forged = {"X-Slack-Signature": "v0=nothex", "X-Slack-Request-Timestamp": "soon"}
    assert await bot.post_raw("[]", {**JSON, **forged}) == 401
    envelope = mention(slack, "still there?")
    assert await bot.post_event(envelope) == 200
    thread_ts = str(envelope["event"]["ts"])
    await wait_until(lambda: any("echo" in str(m.get("text")) for m in slack.bot_replies(CHANNEL, thread_ts)))
    log = bot.output()[started:]
    assert not lines_at(log, "ERROR") and not lines_at(log, "WARNING") and "Traceback" not in log, log


async def test_signed_junk_gets_400_and_one_warning_each(bot: BotProcess, claude: FakeAnthropic) -> None:
    """Bodies Slack never sends, correctly signed, each get 400 and exactly one WARNING line (no ERROR, no
    traceback); a signed body past the size cap gets 413."""
    started = len(bot.output())
    for body, headers in JUNK:
        assert await bot.post_raw(body, {**headers, **sign(SIGNING_SECRET, body)}) == 400
    assert await post_large(bot, TWO_MB, {**JSON, **sign(SIGNING_SECRET, TWO_MB)}) == 413
    log = bot.output()[started:]
    assert len(lines_at(log, "WARNING")) == len(JUNK), log
    assert not lines_at(log, "ERROR") and "Traceback" not in log, log
    assert claude.requests == []


def odd_requests(slack: FakeSlack) -> list[tuple[str, dict[str, str]]]:
    """Signed bodies of shapes Slack never sends, which once failed with a 500 and an ERROR traceback."""

    def mention_with(**fields: Any) -> dict[str, Any]:
        event = app_mention_event(f"<@{slack.bot_user_id}> hi", user="U0ALICE", channel=CHANNEL)
        return event_envelope({**event, **fields}, team_id=slack.team_id)

    a_file = {"id": "F0ODD", "name": "a.txt", "url_private": "https://files.slack.com/files-pri/T-F0ODD/a.txt"}
    bodies = [
        json.dumps(mention_with(files=[{**a_file, "size": "big"}])),
        json.dumps(mention_with(files=[{**a_file, "size": [1]}])),
        json.dumps(mention_with(channel="C0:GEN")),
        json.dumps(mention_with(thread_ts=1700000000.1)),
        json.dumps({**mention_with(), "event": "oops"}),
        json.dumps({"type": "block_actions", "actions": "x", "user": "x"}),
        "[" * 100_000 + "]" * 100_000,  # nested deeper than Python's JSON parser goes
    ]
    return [(body, {**JSON, **sign(SIGNING_SECRET, body)}) for body in bodies]


async def test_signed_events_of_odd_shapes_are_answered_with_one_warning_each(
    bot: BotProcess, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    """Signed events whose fields have shapes Slack never sends (a file size that is a word, a ':' in a channel id,
    a number for thread_ts, an event that is a string, block actions that are not a list, JSON nested too deep) get
    200 or 400, never a 500, and exactly one WARNING line each, with no ERROR and no traceback."""
    started = len(bot.output())
    for body, headers in odd_requests(slack):
        assert await bot.post_raw(body, headers) in (200, 400)
    log = bot.output()[started:]
    assert len(lines_at(log, "WARNING")) == len(odd_requests(slack)), log
    assert not lines_at(log, "ERROR") and "Traceback" not in log, log
    assert claude.requests == []


async def test_the_largest_message_slack_sends_fits_under_the_cap(
    bot: BotProcess, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    """A mention of 40,000 Japanese characters (Slack's longest message; about 480 kB of escaped JSON) is taken."""
    text = ("日本語の長い文章です。" * 4000)[:40_000]
    assert await bot.post_event(mention(slack, text)) == 200
    await wait_until(lambda: len(claude.requests) == 1, timeout=10)
    assert text in json.dumps(claude.requests[0], ensure_ascii=False)


async def test_url_verification_answers_the_challenge(bot: BotProcess) -> None:
    """The signed url_verification request Slack sends when the Request URL is set gets its challenge back."""
    body = json.dumps(url_verification("a-challenge-123"))
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{bot.url}/slack/events", data=body, headers={**JSON, **sign(SIGNING_SECRET, body)}) as response,
    ):
        assert response.status == 200
        assert "a-challenge-123" in await response.text()
