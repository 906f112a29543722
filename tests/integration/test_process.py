"""The bot process as an operator sees it: health, request verification, Socket Mode, embedded Redis."""

from __future__ import annotations

import os
from pathlib import Path

import aiohttp
import pytest
from redis.asyncio import Redis

from tests.fakes import (
    FakeAnthropic,
    FakeSlack,
    signed_event_request,
    slash_command_fields,
    wait_until,
)
from tests.integration.conftest import BotFactory
from tests.integration.harness import BotProcess
from tests.integration.redis_server import PrivateRedis

pytestmark = pytest.mark.integration
CHANNEL = "C0GENERAL"


async def health(bot: BotProcess) -> tuple[int, dict[str, object]]:
    """GET /healthz: status and JSON body."""
    async with aiohttp.ClientSession() as session, session.get(f"{bot.url}/healthz") as response:
        return response.status, await response.json()


def mention(slack: FakeSlack, text: str, thread_ts: str | None = None) -> dict[str, object]:
    # Stored in the fake too: real Slack has every message an event announces, and the bot may read it back.
    return slack.post_user_message(
        CHANNEL, f"<@{slack.bot_user_id}> {text}", user="U0ALICE", thread_ts=thread_ts, mention=True
    )


def bot_texts(slack: FakeSlack, channel: str = CHANNEL) -> list[str]:
    return [str(m.get("text")) for m in slack.messages(channel) if m.get("bot_id")]


async def test_healthz_follows_redis(make_bot: BotFactory, private_redis: PrivateRedis) -> None:
    """/healthz answers 200 with Redis up, 503 while it is down, and 200 again once it is back."""
    bot = make_bot(REDIS_URL=private_redis.url)
    await bot.start()
    status, body = await health(bot)
    assert (status, body["status"], body["redis"]) == (200, "ok", "ok")
    private_redis.stop()
    status, body = await health(bot)
    assert (status, body["redis"]) == (503, "down")
    assert private_redis.url not in str(body)
    private_redis.start()
    await wait_until(lambda: health(bot), timeout=10)
    assert (await health(bot))[0] == 200


async def test_a_redis_connection_cap_is_lived_with(
    make_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic, tmp_path: Path
) -> None:
    """Small managed Redis plans cap connections: the bot starts anyway, says what to set, and answers."""
    capped = PrivateRedis(tmp_path / "capped", extra_args=("--maxclients", "12"))
    capped.start()
    try:
        bot = make_bot(REDIS_URL=capped.url)
        await bot.start()
        await wait_until(lambda: "Set REDIS_MAX_CONNECTIONS" in bot.output(), timeout=10)
        assert await bot.post_event(mention(slack, "hello on a small plan")) == 200
        await wait_until(lambda: any("echo:" in text for text in bot_texts(slack)), timeout=10)
        assert len(claude.requests) == 1
    finally:
        capped.stop()


async def test_bad_signature_gets_401_and_no_model_call(
    bot: BotProcess, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    """A request signed with the wrong secret is refused and never reaches the model; a genuine one is answered."""
    body, headers = signed_event_request(mention(slack, "forged request"), "not-the-signing-secret")
    assert await bot.post_raw(body, headers) == 401
    assert await bot.post_event(mention(slack, "genuine request")) == 200
    await wait_until(lambda: len(bot_texts(slack)) == 1 and "echo:" in bot_texts(slack)[0], timeout=10)
    assert len(claude.requests) == 1
    assert "forged request" not in str(claude.requests[0])


async def test_socket_mode_answers_a_mention(make_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic) -> None:
    """With SLACK_APP_TOKEN set the bot connects over Socket Mode, acks envelopes, answers mentions and commands."""
    bot = make_bot(SLACK_APP_TOKEN=slack.app_token)
    bot.env.pop("SLACK_SIGNING_SECRET")  # Socket Mode needs none
    await bot.start()
    await wait_until(lambda: slack.socket_connected, timeout=10)
    claude.reply_text("Hello over the socket.")
    envelope_id = await slack.send_socket_event(mention(slack, "hi there"))
    await slack.wait_for_ack(envelope_id)
    await wait_until(lambda: "Hello over the socket." in bot_texts(slack), timeout=10)
    assert (await health(bot))[1]["mode"] == "socket"
    assert slack.calls_to("apps.connections.open")
    command = slash_command_fields("/agent", "status", team_id=slack.team_id, channel_id=CHANNEL, user_id="U0ALICE")
    ack = await slack.wait_for_ack(await slack.send_socket_command(command))
    assert ack["payload"]["response_type"] == "ephemeral"
    assert "agent(s) in this channel" in ack["payload"]["text"]  # the slash command answers in its acknowledgement
    click, url = slack.click_ephemeral_button("agent_reset_channel_cancel", CHANNEL, channel=CHANNEL, user="U0ALICE")
    await slack.wait_for_ack(await slack.send_socket_interactive(click))
    cancelled = await slack.response_at(url)
    assert cancelled["text"] == "Cancelled: nothing was reset."  # buttons work over the socket too
    assert await bot.stop() == 0


async def test_embedded_redis_keeps_threads_across_restarts(
    make_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic, tmp_path: Path
) -> None:
    """Without REDIS_URL the bot runs its own Redis, persisted to DATA_DIR, and stops it on exit."""
    data_dir = tmp_path / "data"
    first = make_bot(DATA_DIR=str(data_dir))
    del first.env["REDIS_URL"]
    await first.start()
    envelope = mention(slack, "the password is swordfish")
    await first.post_event(envelope)
    thread_ts = str(envelope["event"]["ts"])  # type: ignore[index]
    await wait_until(lambda: any("echo:" in t for t in bot_texts(slack)), timeout=10)
    assert "embedded Redis started" in first.output()
    assert await first.stop() == 0
    assert "embedded Redis stopped" in first.output()
    assert any(data_dir.rglob("*.aof*")), "no append-only file written"

    second = make_bot(DATA_DIR=str(data_dir))
    del second.env["REDIS_URL"]
    await second.start()
    await second.post_event(mention(slack, "what is the password?", thread_ts=thread_ts))
    await wait_until(lambda: len(claude.requests) == 2, timeout=10)
    assert "the password is swordfish" in str(claude.requests[-1]["messages"])
    await wait_until(lambda: len(bot_texts(slack)) == 2 and "echo:" in bot_texts(slack)[-1], timeout=10)
    await second.kill()
    # Killed with SIGKILL, the bot cannot stop its Redis itself: Linux's parent-death signal does it.
    pid_text = second.output().split("embedded Redis started (pid ")[1].split(",")[0]
    await wait_until(lambda: not _alive(int(pid_text)), timeout=10)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_a_web_process_without_workers_leaves_the_answer_to_a_worker_process(
    make_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    """RUN_WORKERS_IN_WEB=false: the web process only records the task; `python -m bot worker` answers it."""
    web = make_bot(RUN_WORKERS_IN_WEB="false")
    await web.start()
    envelope = mention(slack, "who answers this?")
    assert await web.post_event(envelope) == 200
    await wait_until(lambda: "web.1 running" in web.output(), timeout=5)
    assert "with workers" not in web.output()
    worker = make_bot("worker", DYNO="worker.1")
    await worker.start(wait_ready=False)
    await wait_until(lambda: any("echo:" in text for text in bot_texts(slack)), timeout=15)
    assert "worker only" in worker.output()
    assert await worker.stop() == 0


async def test_a_redis_that_lost_its_data_gets_its_queue_back(
    bot: BotProcess, slack: FakeSlack, claude: FakeAnthropic, redis: Redis
) -> None:
    """After Redis forgets everything (a restart without persistence), the next mention is still answered."""
    await redis.flushdb()
    envelope = mention(slack, "are you still there?")
    assert await bot.post_event(envelope) == 200
    await wait_until(lambda: any("echo:" in text for text in bot_texts(slack)), timeout=15)
    assert "creating it again" in bot.output()
