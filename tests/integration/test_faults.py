"""Faults, load and bad input through the running bot: nothing accepted is lost, nothing is answered twice."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any

import pytest
from redis.asyncio import Redis

from store.models import ThreadRef
from tests.fakes import (
    FakeAnthropic,
    FakeSlack,
    Reply,
    sign,
    signed_event_request,
    slash_command_form,
    user_texts,
    wait_until,
)
from tests.integration.conftest import BotFactory
from tests.integration.harness import SIGNING_SECRET, BotProcess
from tests.integration.redis_server import PrivateRedis
from tests.integration.stored import SPACE

pytestmark = pytest.mark.integration
CHANNEL = "C0GENERAL"
# The smallest valid PNG: one transparent pixel.
PIXEL_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


def mention(slack: FakeSlack, text: str, *, thread_ts: str | None = None) -> dict[str, Any]:
    return slack.post_user_message(
        CHANNEL, f"<@{slack.bot_user_id}> {text}", user="U0ALICE", thread_ts=thread_ts, mention=True
    )


def replies(slack: FakeSlack, thread_ts: str) -> list[str]:
    return [str(m.get("text")) for m in slack.bot_replies(CHANNEL, thread_ts)]


async def answer_of(slack: FakeSlack, envelope: dict[str, Any], timeout: float = 15) -> str:
    """The one reply the mention got, once it is final (not the "Thinking…" placeholder, nor a streamed preview)."""
    thread_ts = str(envelope["event"]["ts"])

    def final() -> list[str]:
        shown = replies(slack, thread_ts)
        busy = ("Thinking", "restarted", "retrying…", "cannot be reached")
        return [t for t in shown if not any(word in t for word in busy) and not t.endswith("✍️")]

    done = await wait_until(final, timeout=timeout)
    assert len(replies(slack, thread_ts)) == 1, replies(slack, thread_ts)
    return str(done[0])


async def test_claude_and_slack_hiccups(bot: BotProcess, slack: FakeSlack, claude: FakeAnthropic) -> None:
    """529 twice then success: one answer. A rejected key: the admin message and no retry storm. Slack
    answering 429 to the post and to the update: the answer still arrives, once."""
    claude.reply_error(529, "overloaded_error", "Overloaded", retry_after=0)
    claude.reply_error(529, "overloaded_error", "Overloaded", retry_after=0)
    claude.reply_text("third time lucky")
    overloaded = mention(slack, "are you there?")
    await bot.post_event(overloaded)
    assert await answer_of(slack, overloaded) == "third time lucky"
    assert len(claude.requests) == 3
    assert any("Claude is busy right now" in str(update.get("text")) for update in slack.updates)  # said while retrying

    claude.reply_error(401, "authentication_error", "invalid x-api-key")
    rejected = mention(slack, "hello")
    await bot.post_event(rejected)
    answer = await answer_of(slack, rejected)
    assert "An admin needs to fix the bot's ANTHROPIC_API_KEY" in answer and "401" not in answer
    await asyncio.sleep(3)  # longer than the runner's retry pause: nothing tries again
    assert len(claude.requests) == 4
    assert "AuthenticationError" in bot.output()  # the details are in the log

    posts = len(slack.calls_to("chat.postMessage"))
    slack.fail_next("chat.postMessage", status=429, retry_after=1)
    slack.fail_next("chat.update", status=429, retry_after=1)
    claude.reply_text("delivered anyway")
    limited = mention(slack, "hello again")
    await bot.post_event(limited)
    assert await answer_of(slack, limited) == "delivered anyway"
    assert len(slack.calls_to("chat.postMessage")) == posts + 2  # the refused post and its retry

    slack.fail_next("chat.postMessage", error="not_in_channel", times=3)  # every attempt's reply refused
    refused = mention(slack, "and now?")
    await bot.post_event(refused)
    answer = await answer_of(slack, refused, timeout=30)
    assert answer.startswith(":warning: Sorry, I could not finish this request. Slack would not take my message")
    assert "not_in_channel" in answer and "Traceback" not in answer


async def test_redis_down_during_a_burst_loses_nothing_and_answers_each_mention_once(
    make_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic, private_redis: PrivateRedis
) -> None:
    """Redis stops for 10 s mid-burst: refused deliveries get no ack (Slack sends them again), and when Redis is
    back every one of the 20 mentions is answered exactly once, without restarting the bot."""
    bot = make_bot(REDIS_URL=private_redis.url)
    await bot.start()
    gate = asyncio.Event()
    claude.reply_text("lost in the outage", gate=gate)
    slow = mention(slack, "a slow question")
    assert await bot.post_event(slow) == 200
    await wait_until(lambda: len(claude.requests) == 1, timeout=10)  # its model call is under way
    envelopes = [mention(slack, f"question {n}") for n in range(20)]
    statuses = [await bot.post_event(envelope) for envelope in envelopes[:10]]
    private_redis.stop()
    stopped = time.monotonic()
    gate.set()  # the slow answer comes back while Redis is down: it cannot be journaled yet
    statuses += [await bot.post_event(envelope) for envelope in envelopes[10:]]
    assert statuses[:10] == [200] * 10
    refused = [envelope for envelope, status in zip(envelopes, statuses, strict=True) if status != 200]
    assert len(refused) == 10 and all(status >= 500 for status in statuses[10:])  # no ack: Slack will retry
    await asyncio.sleep(max(0.0, 10 - (time.monotonic() - stopped)))
    private_redis.start()
    for envelope in refused:  # Slack's redelivery of what was not acknowledged
        body, headers = signed_event_request(envelope, SIGNING_SECRET, retry_num=1, retry_reason="http_error")
        assert await bot.post_raw(body, headers) == 200
    for envelope in [slow, *envelopes]:
        assert (await answer_of(slack, envelope, timeout=40)).startswith("echo:")  # one reply each
    # Meanwhile the slow one's thread was told why its answer was late.
    assert any("My memory (Redis) cannot be reached" in str(update.get("text")) for update in slack.updates)
    asked = "\n".join(text for request in claude.requests for text in user_texts(request))
    assert all(f"question {n}" in asked for n in range(20))
    assert "cannot" in bot.output()  # the workers said they were waiting for Redis


async def test_a_redis_restart_between_two_turns_keeps_the_history(
    make_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic, private_redis: PrivateRedis
) -> None:
    bot = make_bot(REDIS_URL=private_redis.url)
    await bot.start()
    first = mention(slack, "my name is Ada")
    await bot.post_event(first)
    await answer_of(slack, first)
    private_redis.stop()
    private_redis.start()  # from its append-only file
    thread_ts = str(first["event"]["ts"])
    second = mention(slack, "what is my name?", thread_ts=thread_ts)
    await wait_until(lambda: bot.post_event(second), timeout=15)  # the first try may meet a stale connection
    await wait_until(lambda: len(replies(slack, thread_ts)) == 2 and "Thinking" not in replies(slack, thread_ts)[1])
    assert "my name is Ada" in json.dumps(claude.requests[-1])


async def test_bad_input(bot: BotProcess, slack: FakeSlack, claude: FakeAnthropic) -> None:
    """Forged, stale and malformed requests are refused and the bot keeps serving; a 100,000-character message is
    cut with a note; an empty mention gets a hello without a model call; any Unicode reaches the model unchanged."""
    envelope = mention(slack, "genuine")
    body, headers = signed_event_request(envelope, "not-the-secret")
    assert await bot.post_raw(body, headers) == 401
    body, headers = signed_event_request(envelope, SIGNING_SECRET, timestamp=int(time.time()) - 600)
    assert await bot.post_raw(body, headers) == 401  # a replay of a genuine request, ten minutes late
    garbage = "{not json"
    assert await bot.post_raw(garbage, {"Content-Type": "application/json", **sign(SIGNING_SECRET, garbage)}) == 400
    assert await bot.post_raw(garbage, {"Content-Type": "application/json", **sign("wrong", garbage)}) == 401
    unknown = json.dumps({"type": "something_else"})
    assert (
        400 <= await bot.post_raw(unknown, {"Content-Type": "application/json", **sign(SIGNING_SECRET, unknown)}) < 500
    )
    assert claude.requests == []
    assert await bot.post_event(envelope) == 200
    assert (await answer_of(slack, envelope)).startswith("echo:")
    assert len(claude.requests) == 1 and "genuine" in user_texts(claude.requests[0])[-2]

    claude.requests.clear()
    claude.reply_text("read it")
    long_text = ("Zażółć gęślą jaźń 🦊 " * 6000)[:100_000]
    envelope = mention(slack, long_text)
    await bot.post_event(envelope)
    answer = await answer_of(slack, envelope)
    assert answer.startswith("read it") and "only the first 40,000 were read" in answer
    sent = user_texts(claude.requests[0])[-2]  # the message, just before the pinned state
    assert long_text[:39_000] in sent and long_text not in sent and "characters; only the first 40,000" in sent

    claude.requests.clear()
    envelope = slack.post_user_message(CHANNEL, f"<@{slack.bot_user_id}>", user="U0ALICE", mention=True)
    await bot.post_event(envelope)
    assert (await answer_of(slack, envelope)).startswith("Hi! Mention me with a question")
    assert claude.requests == []

    # CJK, Arabic with a right-to-left override, a combining accent, an emoji ZWJ sequence, a zero-width space,
    # mathematical letters outside the BMP and a private-use code point.
    text = "\u65e5\u672c\u8a9e \u0627\u0644\u0639\u0631\u0628\u064a\u0629 \u202ereversed\u202c e\u0301 "
    text += "\U0001f469\U0001f3fd\u200d\U0001f4bb zero\u200bwidth \U0001d518\U0001d52b \U0010fffd"
    envelope = mention(slack, text)
    await bot.post_event(envelope)
    assert (await answer_of(slack, envelope)).startswith("echo:")
    assert text in user_texts(claude.requests[0])[-2]  # the message itself, just before the pinned state


async def test_a_full_scenario_at_debug_logs_no_secret_and_nothing_anyone_wrote(
    make_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic, redis: Redis
) -> None:
    """At LOG_LEVEL=DEBUG, through a mention with a text file and an image, a Slack 429, an overloaded model, a
    streamed answer, a rejected key, a status (mentioned and by /agent) and a reset: the log holds no token, secret
    or key, and none of the messages, the file, the image or the answers."""
    bot = make_bot(LOG_LEVEL="DEBUG")
    await bot.start()
    assert await bot.post_raw("[]", {"Content-Type": "application/json"}) == 401  # logged at DEBUG
    file_text = "The vault combination is 31-41-59."
    shared = [
        slack.add_file("vault.txt", file_text.encode(), mimetype="text/plain"),
        slack.add_file("pixel.png", PIXEL_PNG, mimetype="image/png"),
    ]
    streamed = "Streamed confidential answer, word after word, " * 8
    slack.fail_next("chat.postMessage", status=429, retry_after=1)
    claude.reply_error(529, "overloaded_error", "Overloaded", retry_after=0)
    claude.enqueue(Reply([{"type": "text", "text": streamed}], "end_turn", chunk_size=20, chunk_delay=0.02))
    claude.reply_text("Second confidential answer")
    claude.reply_error(401, "authentication_error", "invalid x-api-key")
    first = slack.post_user_message(
        CHANNEL, f"<@{slack.bot_user_id}> private words", user="U0ALICE", mention=True, files=shared
    )
    await bot.post_event(first)
    assert await answer_of(slack, first) == streamed.strip()
    thread_ts = str(first["event"]["ts"])
    await bot.post_event(mention(slack, "more private words", thread_ts=thread_ts))
    await wait_until(lambda: "Second confidential answer" in replies(slack, thread_ts), timeout=15)
    third = mention(slack, "still more private words")
    await bot.post_event(third)
    await answer_of(slack, third)
    await bot.post_event(mention(slack, "status", thread_ts=thread_ts))
    await wait_until(lambda: any(t.startswith("*Agent status:*") for t in replies(slack, thread_ts)), timeout=10)
    url = slack.response_url()
    form = slash_command_form(
        "/agent", "status", team_id=slack.team_id, channel_id=CHANNEL, user_id="U0ALICE", response_url=url
    )
    assert (await bot.post_command(form))[0] == 200
    await bot.post_event(mention(slack, "reset", thread_ts=thread_ts))
    ref = ThreadRef(slack.team_id, CHANNEL, thread_ts)
    await wait_until(lambda: _gone(redis, ref), timeout=10)
    assert await bot.stop() == 0
    log = bot.output()
    assert " DEBUG handlers.signed_requests: refused a request" in log  # DEBUG is on for the bot's own lines
    for secret in (slack.bot_token, bot.env["SLACK_SIGNING_SECRET"], bot.env["ANTHROPIC_API_KEY"]):
        assert secret not in log
    written = ["private words", file_text, "31-41-59", base64.b64encode(PIXEL_PNG).decode()[:24]]
    answers = ["Streamed confidential", "confidential answer", "Second confidential answer"]
    for text in written + answers:
        assert text not in log, text


async def _gone(redis: Redis, ref: ThreadRef) -> bool:
    return not await redis.exists(SPACE.state(ref))
