"""Mentions answered in their thread by the real bot process, with the thread's agent kept in Redis."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fakes import (
    FakeAnthropic,
    FakeSlack,
    app_mention_event,
    event_envelope,
    message_event,
    new_ts,
    user_texts,
    wait_until,
)
from tests.integration.conftest import BotFactory
from tests.integration.harness import BotProcess

pytestmark = pytest.mark.integration
CHANNEL = "C0GENERAL"


def mention(slack: FakeSlack, text: str, *, user: str = "U0ALICE", thread_ts: str | None = None) -> dict[str, Any]:
    """A signed-ready envelope of a mention of the bot."""
    # Stored in the fake too: real Slack has every message an event announces, and the bot may read it back.
    return slack.post_user_message(
        CHANNEL, f"<@{slack.bot_user_id}> {text}", user=user, thread_ts=thread_ts, mention=True
    )


def answers(slack: FakeSlack, thread_ts: str) -> list[str]:
    """The texts of the bot's messages in a thread."""
    return [str(m.get("text", "")) for m in slack.bot_replies(CHANNEL, thread_ts)]


async def answered(slack: FakeSlack, thread_ts: str, expected: str, count: int = 1) -> None:
    """Wait until the thread holds `count` bot replies and the last one carries `expected`."""
    await wait_until(
        lambda: len(answers(slack, thread_ts)) == count and expected in answers(slack, thread_ts)[-1], timeout=10
    )


@pytest.mark.both_redis
async def test_mention_is_answered_once_in_its_thread(bot: BotProcess, slack: FakeSlack, claude: FakeAnthropic) -> None:
    """A mention starts a thread at its own ts and gets exactly one reply carrying the model's answer."""
    claude.reply_text("The capital of France is Paris.")
    envelope = mention(slack, "what is the capital of France?")
    assert await bot.post_event(envelope) == 200
    ts = envelope["event"]["ts"]
    await answered(slack, ts, "The capital of France is Paris.")
    [reply] = slack.bot_replies(CHANNEL, ts)
    assert reply["thread_ts"] == ts
    assert len(claude.requests) == 1
    assert "what is the capital of France?" in " ".join(user_texts(claude.last_request))


@pytest.mark.both_redis
async def test_second_mention_carries_the_first_exchange_and_other_threads_do_not(
    bot: BotProcess, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    """The agent remembers its own thread, and only its own."""
    claude.reply_text("Noted: the launch code is AZURE-7.")
    first = mention(slack, "remember the launch code AZURE-7")
    await bot.post_event(first)
    thread_ts = first["event"]["ts"]
    await answered(slack, thread_ts, "AZURE-7")

    await bot.post_event(mention(slack, "what was the code?", thread_ts=thread_ts))
    await answered(slack, thread_ts, "echo:", count=2)
    second_request = " ".join(user_texts(claude.last_request))
    assert "remember the launch code AZURE-7" in second_request
    assert "Noted: the launch code is AZURE-7." in second_request

    other = mention(slack, "hello from elsewhere")
    await bot.post_event(other)
    await answered(slack, other["event"]["ts"], "echo:")
    assert "AZURE-7" not in " ".join(user_texts(claude.last_request))


@pytest.mark.both_redis
async def test_restarted_bot_answers_with_the_old_history(
    make_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    """A new process on the same Redis continues the thread where the stopped one left it."""
    first_bot = make_bot()
    await first_bot.start()
    first = mention(slack, "my favourite colour is teal")
    await first_bot.post_event(first)
    thread_ts = first["event"]["ts"]
    await answered(slack, thread_ts, "echo:")
    assert await first_bot.stop() == 0

    second_bot = make_bot()
    await second_bot.start()
    await second_bot.post_event(mention(slack, "what is my favourite colour?", thread_ts=thread_ts))
    await answered(slack, thread_ts, "echo:", count=2)
    assert "my favourite colour is teal" in " ".join(user_texts(claude.last_request))


async def test_first_mention_in_a_busy_thread_reads_what_was_said(
    bot: BotProcess, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    """Joining a thread late, the agent reads its newest earlier messages (100, from the pages they are on)."""
    slack.add_user("U0BOB", "bob", real_name="Bob Builder", display_name="bob")
    parent = slack.add_message(CHANNEL, "Deploy is failing on step 3", user="U0BOB")
    for n in range(250):  # more than one page of conversations.replies
        slack.add_message(CHANNEL, f"log line {n}", user="U0BOB", thread_ts=parent)
    await bot.post_event(mention(slack, "can you help?", thread_ts=parent))
    await answered(slack, parent, "echo:")
    sent = " ".join(user_texts(claude.last_request))
    assert "log line 249" in sent and "log line 150" in sent
    assert "log line 149" not in sent and "Deploy is failing on step 3" not in sent  # read_thread reads those
    assert "bob" in sent
    assert 2 <= len(slack.calls_to("conversations.replies")) <= 3


async def test_first_mention_in_a_short_thread_reads_all_of_it_in_one_call(
    bot: BotProcess, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    """A thread of one page is read whole, its parent included, with one conversations.replies call."""
    parent = slack.add_message(CHANNEL, "Deploy is failing on step 3", user="U0BOB")
    for n in range(20):
        slack.add_message(CHANNEL, f"log line {n}", user="U0BOB", thread_ts=parent)
    await bot.post_event(mention(slack, "can you help?", thread_ts=parent))
    await answered(slack, parent, "echo:")
    sent = " ".join(user_texts(claude.last_request))
    assert "Deploy is failing on step 3" in sent and "log line 0" in sent and "log line 19" in sent
    assert len(slack.calls_to("conversations.replies")) == 1


async def test_later_thread_messages_are_context_not_requests(
    bot: BotProcess, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    """A human message in a thread with an agent is remembered for the next answer but not answered."""
    first = mention(slack, "start")
    await bot.post_event(first)
    thread_ts = first["event"]["ts"]
    await answered(slack, thread_ts, "echo:")
    note = message_event("the budget is 4200 EUR", user="U0CAROL", channel=CHANNEL, thread_ts=thread_ts)
    assert await bot.post_event(event_envelope(note, team_id=slack.team_id)) == 200
    unrelated = message_event("lunch?", user="U0CAROL", channel=CHANNEL, thread_ts=new_ts())
    assert await bot.post_event(event_envelope(unrelated, team_id=slack.team_id)) == 200
    await bot.post_event(mention(slack, "what is the budget?", thread_ts=thread_ts))
    await answered(slack, thread_ts, "echo:", count=2)
    assert len(claude.requests) == 2
    assert "the budget is 4200 EUR" in " ".join(user_texts(claude.last_request))


async def test_bot_ignores_its_own_and_other_bots_messages(
    bot: BotProcess, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    """Messages from this bot or another bot, even mentioning it or in a DM, cause no model call and no reply."""
    own = message_event(f"<@{slack.bot_user_id}> hi", user=slack.bot_user_id, channel="D0DM", channel_type="im")
    own["bot_id"] = slack.bot_id
    other = app_mention_event(f"<@{slack.bot_user_id}> hi", user="U0OTHERBOT", channel=CHANNEL)
    other["bot_id"] = "B0OTHER"
    other_dm = message_event("hi", user="U0OTHERBOT", channel="D0DM", channel_type="im", bot_id="B0OTHER")
    for event in (own, other, other_dm):
        assert await bot.post_event(event_envelope(event, team_id=slack.team_id)) == 200
    # A human mention afterwards is answered, so the earlier ones had their chance to be (wrongly) processed.
    human = mention(slack, "ping")
    await bot.post_event(human)
    await answered(slack, human["event"]["ts"], "echo:")
    assert len(claude.requests) == 1
    assert slack.messages("D0DM") == []


@pytest.mark.both_redis
async def test_direct_messages_are_all_for_the_bot(bot: BotProcess, slack: FakeSlack, claude: FakeAnthropic) -> None:
    """In a DM every message is answered without a mention; a top-level message starts a thread of its own, answered
    in it, a reply goes to its thread's agent, and another top-level message starts a new conversation."""

    def dm(text: str, thread_ts: str | None = None) -> dict[str, Any]:
        return slack.post_user_message("D0DM", text, user="U0ALICE", thread_ts=thread_ts, channel_type="im")

    async def answered_in(thread_ts: str, count: int) -> None:
        def texts() -> list[str]:
            return [str(m.get("text", "")) for m in slack.bot_replies("D0DM", thread_ts)]

        await wait_until(lambda: len(texts()) == count and texts()[-1].startswith("echo:"), timeout=10)

    first = dm("first DM")
    await bot.post_event(first)
    first_ts = first["event"]["ts"]
    await answered_in(first_ts, 1)
    await bot.post_event(dm("a reply in the first thread", thread_ts=first_ts))
    await answered_in(first_ts, 2)
    assert "first DM" in " ".join(user_texts(claude.last_request))  # the thread's agent remembers it
    second = dm("second DM")
    await bot.post_event(second)
    await answered_in(second["event"]["ts"], 1)
    assert "first DM" not in " ".join(user_texts(claude.last_request))  # a conversation of its own
    bot_messages = [m for m in slack.messages("D0DM") if m.get("bot_id")]
    assert len(bot_messages) == 3 and all(m.get("thread_ts") for m in bot_messages)


async def test_secrets_never_reach_the_log(bot: BotProcess, slack: FakeSlack, claude: FakeAnthropic) -> None:
    """Through an answer, a Slack error and a model error, no token, secret or key appears in the log."""
    slack.fail_next("users.info", error="ratelimited")
    claude.reply_error(400, "invalid_request_error", "bad request")
    await bot.post_event(mention(slack, "first"))
    await bot.post_event(mention(slack, "second"))
    await wait_until(lambda: len(claude.requests) == 2 and "model call failed" in bot.output(), timeout=10)
    log = bot.output()
    for secret in (slack.bot_token, bot.env["SLACK_SIGNING_SECRET"], bot.env["ANTHROPIC_API_KEY"]):
        assert secret not in log
