"""Answers in a workspace with Slack's agent features: the session's status, native streaming with step updates,
feedback buttons, titles, and what a crash mid-stream leaves; through the running bot process."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.asyncio import Redis

from store.models import ThreadRef
from tests.fakes import FakeAnthropic, FakeSlack, Reply, block_actions_form, continuing, slash_command_form, wait_until
from tests.integration.conftest import BotFactory
from tests.integration.harness import BotProcess
from tests.integration.stored import task_field
from tests.integration.test_replies import long_answer

pytestmark = pytest.mark.integration
CHANNEL = "C0GENERAL"
ANSWER = " ".join(f"Sentence number {n} of a long and thoughtful answer." for n in range(60))


@pytest.fixture(autouse=True)
def _agent_features(slack: FakeSlack) -> None:
    slack.agent_features = True


def mention(slack: FakeSlack, text: str, channel: str = CHANNEL) -> dict[str, Any]:
    return slack.post_user_message(channel, f"<@{slack.bot_user_id}> {text}", user="U0ALICE", mention=True)


def statuses(slack: FakeSlack, thread_ts: str, channel: str = CHANNEL) -> list[str]:
    return list(slack.session(channel, thread_ts).history) if slack.has_session(channel, thread_ts) else []


async def done(
    redis: Redis, slack: FakeSlack, envelope: dict[str, Any], channel: str = CHANNEL, thread_ts: str | None = None
) -> None:
    ref = ThreadRef(slack.team_id, channel, thread_ts or str(envelope["event"]["ts"]))
    task_id = str(envelope["event_id"])

    async def finished() -> bool:
        return await task_field(redis, ref, task_id, "status") in ("done", "failed", "stopped", "cancelled")

    await wait_until(finished, timeout=30)


async def test_an_answer_streams_natively_with_the_session_working_then_active_and_feedback_at_the_end(
    bot: BotProcess, slack: FakeSlack, claude: FakeAnthropic, redis: Redis
) -> None:
    claude.enqueue(Reply([{"type": "text", "text": ANSWER}], "end_turn", chunk_size=40, chunk_delay=0.05))
    envelope = mention(slack, "tell me everything")
    await bot.post_event(envelope)
    thread_ts = str(envelope["event"]["ts"])
    await done(redis, slack, envelope)
    [reply] = slack.bot_replies(CHANNEL, thread_ts)  # one message
    stream = slack.stream(CHANNEL, reply["ts"])
    assert stream.state == "stopped"
    assert reply["text"] == ANSWER
    appended = [call for call in slack.calls_to("chat.appendStream") if call["ts"] == reply["ts"]]
    assert len([c for c in appended if any(chunk["type"] == "markdown_text" for chunk in c["chunks"])]) >= 2
    [start] = slack.calls_to("chat.startStream")
    assert (start["recipient_team_id"], start["recipient_user_id"]) == (slack.team_id, "U0ALICE")
    assert all(card.status == "complete" for card in stream.tasks.values())  # no step left "in progress"
    assert [block["type"] for block in reply["blocks"]][-1:] == ["context_actions"]  # the feedback buttons
    # The session goes back to active as the task ends, after FINISH (what done() waits for): wait for it too.
    await wait_until(lambda: statuses(slack, thread_ts)[-1:] == ["active"], timeout=5)
    assert statuses(slack, thread_ts)[0] == "processing"
    assert slack.calls_to("reactions.add") == []  # the session shows the work: no 👀


async def test_the_session_goes_back_to_active_when_the_answer_fails(
    bot: BotProcess, slack: FakeSlack, claude: FakeAnthropic, redis: Redis
) -> None:
    claude.reply_error(400, "invalid_request_error", "bad request")
    envelope = mention(slack, "hello")
    await bot.post_event(envelope)
    thread_ts = str(envelope["event"]["ts"])
    await done(redis, slack, envelope)
    await wait_until(lambda: statuses(slack, thread_ts)[-1:] == ["active"], timeout=5)
    [reply] = slack.bot_replies(CHANNEL, thread_ts)
    assert ":warning:" in str(reply["text"])
    assert not slack.is_streaming(CHANNEL, reply["ts"])


async def test_a_reset_mid_answer_leaves_the_session_active(
    bot: BotProcess, slack: FakeSlack, claude: FakeAnthropic, redis: Redis
) -> None:
    claude.enqueue(Reply([{"type": "text", "text": ANSWER}], "end_turn", chunk_size=10, chunk_delay=0.2))
    envelope = mention(slack, "tell me everything")
    await bot.post_event(envelope)
    thread_ts = str(envelope["event"]["ts"])
    await wait_until(lambda: statuses(slack, thread_ts) == ["processing"], timeout=10)
    await bot.post_event(
        slack.post_user_message(
            CHANNEL, f"<@{slack.bot_user_id}> reset", thread_ts=thread_ts, user="U0ALICE", mention=True
        )
    )
    await wait_until(lambda: statuses(slack, thread_ts)[-1:] == ["active"], timeout=15)


async def test_tool_steps_show_as_task_updates_in_the_stream(
    bot: BotProcess, slack: FakeSlack, claude: FakeAnthropic, redis: Redis
) -> None:
    claude.reply_tool_use("read_thread", {"limit": 5}, text_before="Let me look at the thread.")
    claude.reply_tool_use("read_thread", {"limit": 10})
    claude.reply_text("Here is what the thread says.")
    envelope = mention(slack, "what did we decide?")
    await bot.post_event(envelope)
    thread_ts = str(envelope["event"]["ts"])
    await done(redis, slack, envelope)
    [reply] = slack.bot_replies(CHANNEL, thread_ts)
    stream = slack.stream(CHANNEL, reply["ts"])
    tool_ids = [
        block["id"]
        for request in claude.requests
        for message in request["messages"]
        for block in (message["content"] if isinstance(message["content"], list) else [])
        if block.get("type") == "tool_use"
    ]
    cards = {card_id: (card.title, card.status) for card_id, card in stream.tasks.items()}
    for tool_id in set(tool_ids):
        assert cards[tool_id] == ("Reading the thread", "complete")
    assert len(set(tool_ids)) == 2
    updates = [
        chunk
        for call in slack.calls_to("chat.appendStream")
        for chunk in call["chunks"]
        if chunk["type"] == "task_update" and chunk["id"] in tool_ids
    ]
    assert [u["status"] for u in updates if u["id"] == tool_ids[0]][:1] == ["in_progress"]  # shown while it ran
    assert reply["text"] == "Here is what the thread says."  # the narration before the tools is not the answer


async def test_a_crash_mid_stream_finishes_the_same_message_once(
    make_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic, redis: Redis
) -> None:
    claude.enqueue(Reply([{"type": "text", "text": ANSWER}], "end_turn", chunk_size=20, chunk_delay=0.2))
    claude.reply_text("the whole answer, at last")
    bot = make_bot()
    await bot.start()
    envelope = mention(slack, "tell me everything")
    await bot.post_event(envelope)
    thread_ts = str(envelope["event"]["ts"])
    await wait_until(
        lambda: any(
            c.get("chunks") and c["chunks"][0]["type"] == "markdown_text" for c in slack.calls_to("chat.appendStream")
        ),
        timeout=15,
    )
    await bot.kill()  # mid-stream: part of the answer is showing, its stream still open
    restarted = make_bot()
    await restarted.start()
    await done(redis, slack, envelope)
    await asyncio.sleep(0.5)  # time for a duplicate to appear, if there were to be one
    [reply] = slack.bot_replies(CHANNEL, thread_ts)
    assert reply["text"] == "the whole answer, at last"
    assert not slack.is_streaming(CHANNEL, reply["ts"])
    await wait_until(lambda: statuses(slack, thread_ts)[-1:] == ["active"], timeout=5)  # set after FINISH
    working = [c for c in slack.calls_to("agents.sessions.setStatus") if c["status"] == "processing"]
    assert len(working) == 2  # the resumed task said again that it works


async def test_a_20000_character_answer_in_pieces_arrives_whole_after_a_crash_half_way(
    make_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic, redis: Redis
) -> None:
    answer = long_answer()
    claude.set_default(continuing(answer))
    settings = {"MAX_OUTPUT_TOKENS": "1500", "MAX_ANSWER_TOKENS": "20000"}
    bot = make_bot(BOT_CRASH_AT="answer.cut", **settings)  # killed after a piece is journaled, before the next
    await bot.start()
    envelope = mention(slack, "write it all down")
    await bot.post_event(envelope)
    thread_ts = str(envelope["event"]["ts"])
    assert bot.process is not None
    await asyncio.wait_for(bot.process.wait(), 30)
    restarted = make_bot(**settings)
    await restarted.start()
    await done(redis, slack, envelope)
    await asyncio.sleep(1.0)
    texts = [str(m.get("text")) for m in slack.bot_replies(CHANNEL, thread_ts)]
    assert len(texts) >= 2 and all(len(text) <= 12_000 for text in texts)
    rejoined = "\n".join(texts).replace("\n```\n```sql\n", "\n")
    assert [line for line in rejoined.split("\n") if line.strip()] == [
        line for line in answer.split("\n") if line.strip()
    ]
    assert len(claude.requests) >= 4  # it took several pieces


async def test_feedback_is_counted_once_per_person_and_can_be_changed(
    bot: BotProcess, slack: FakeSlack, claude: FakeAnthropic, redis: Redis
) -> None:
    claude.reply_text("A fine answer.")
    envelope = mention(slack, "hello")
    await bot.post_event(envelope)
    thread_ts = str(envelope["event"]["ts"])
    await done(redis, slack, envelope)
    [reply] = slack.bot_replies(CHANNEL, thread_ts)
    for user, positive in (("U0ALICE", True), ("U0BOB", True), ("U0BOB", True), ("U0BOB", False)):
        payload = slack.click_feedback(CHANNEL, reply["ts"], positive, user=user)
        status, _ = await bot.post_command(block_actions_form(payload))
        assert status == 200
    link = f"<https://fake-team.slack.com/archives/{CHANNEL}/p{thread_ts.replace('.', '')}>"
    form = slash_command_form(
        "/agent",
        f"status {link}",
        team_id=slack.team_id,
        channel_id=CHANNEL,
        user_id="U0ALICE",
        response_url=slack.response_url(),
    )
    status, body = await bot.post_command(form)
    assert status == 200
    assert ":+1: 1" in body and ":-1: 1" in body and "50%" in body, body  # Bob's second vote replaced his first


async def test_a_stream_slack_ends_early_is_finished_by_updating_its_message(
    bot: BotProcess, slack: FakeSlack, claude: FakeAnthropic, redis: Redis
) -> None:
    slack.stream_lifetime = 1.0  # Slack ends streams by itself (about five minutes after their start)
    claude.enqueue(Reply([{"type": "text", "text": ANSWER}], "end_turn", chunk_size=100, chunk_delay=0.1))
    envelope = mention(slack, "tell me everything")
    await bot.post_event(envelope)
    thread_ts = str(envelope["event"]["ts"])
    await done(redis, slack, envelope)
    [reply] = slack.bot_replies(CHANNEL, thread_ts)
    assert slack.stream(CHANNEL, reply["ts"]).state == "timed_out"
    assert reply["text"] == ANSWER
    assert [block["type"] for block in reply["blocks"]] == ["markdown", "context_actions"]


async def test_where_slack_refuses_a_stream_the_answer_updates_a_posted_message(
    bot: BotProcess, slack: FakeSlack, claude: FakeAnthropic, redis: Redis
) -> None:
    slack.fail_next("chat.startStream", error="restricted_action_thread_locked")
    claude.reply_text("An answer all the same.")
    envelope = mention(slack, "hello")
    await bot.post_event(envelope)
    thread_ts = str(envelope["event"]["ts"])
    await done(redis, slack, envelope)
    [reply] = slack.bot_replies(CHANNEL, thread_ts)
    assert reply["text"] == "An answer all the same."
    assert slack.calls_to("chat.postMessage") and not slack.streams_of(CHANNEL, thread_ts)
    await wait_until(lambda: statuses(slack, thread_ts)[-1:] == ["active"], timeout=5)  # set after FINISH


async def test_a_dm_thread_is_titled_from_its_first_question_once_and_a_person_s_title_is_kept(
    bot: BotProcess, slack: FakeSlack, claude: FakeAnthropic, redis: Redis
) -> None:
    dm = slack.dm_channel("U0ALICE")
    claude.reply_text("Start with the old town.")
    first = slack.post_user_message(
        dm, "How do I plan a trip to <#C0LIS|lisbon>?\nSome details.", user="U0ALICE", channel_type="im"
    )
    await bot.post_event(first)
    thread_ts = str(first["event"]["ts"])
    await done(redis, slack, first, channel=dm)
    assert slack.session(dm, thread_ts).title == "How do I plan a trip to #lisbon?"
    await bot.post_event(slack.rename_session_as_user(dm, thread_ts, "Lisbon", user="U0ALICE"))
    claude.reply_text("Then the coast.")
    second = slack.post_user_message(dm, "And then?", user="U0ALICE", thread_ts=thread_ts, channel_type="im")
    await bot.post_event(second)
    await done(redis, slack, second, channel=dm, thread_ts=thread_ts)
    assert slack.session(dm, thread_ts).title == "Lisbon"
    assert len(slack.calls_to("agents.sessions.rename")) == 1
