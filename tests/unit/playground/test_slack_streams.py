"""The Slack emulator's streaming methods, with their limits and errors, driven with the real slack_sdk."""

from __future__ import annotations

from typing import Any

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes import FakeSlack
from tests.unit.playground.agent_workspace import CHANNEL, FEEDBACK_BLOCK, thread

pytestmark = pytest.mark.usefixtures("agent_features")

RECIPIENTS = {"recipient_team_id": "T0TEAM", "recipient_user_id": "U0ALICE"}


def text(value: str) -> dict[str, str]:
    return {"type": "markdown_text", "text": value}


def task(task_id: str, title: str, status: str, **extra: str) -> dict[str, str]:
    return {"type": "task_update", "id": task_id, "title": title, "status": status, **extra}


async def error_of(call: object) -> str:
    with pytest.raises(SlackApiError) as info:
        await call  # type: ignore[misc]  # a coroutine of the SDK
    return str(info.value.response["error"])


async def start(web: AsyncWebClient, ts: str, **args: Any) -> str:
    response = await web.chat_startStream(channel=CHANNEL, thread_ts=ts, **{**RECIPIENTS, **args})
    return str(response["ts"])


async def test_a_stream_is_a_bot_message_that_grows_and_ends(slack: FakeSlack, web: AsyncWebClient) -> None:
    """Text chunks grow the stored reply; stopStream adds blocks and metadata, ends the stream and sets the session."""
    ts = thread(slack)
    stream_ts = await start(web, ts, chunks=[text("Hello")])
    assert slack.session(CHANNEL, ts).status == "processing" and slack.session(CHANNEL, ts).initiator_user_id == (
        "U0ALICE"
    )
    await web.chat_appendStream(channel=CHANNEL, ts=stream_ts, chunks=[text(", world")])
    replies = await web.conversations_replies(channel=CHANNEL, ts=ts)
    assert [m["text"] for m in replies["messages"]] == ["a question", "Hello, world"]
    assert replies["messages"][1]["bot_id"] == slack.bot_id and slack.is_streaming(CHANNEL, stream_ts)
    metadata = {"event_type": "answer", "event_payload": {"task": "t1"}}
    stopped = await web.chat_stopStream(
        channel=CHANNEL, ts=stream_ts, chunks=[text("!")], blocks=[FEEDBACK_BLOCK], metadata=metadata
    )
    assert stopped["message"]["text"] == "Hello, world!" and stopped["message"]["metadata"] == metadata
    assert stopped["message"]["blocks"][0]["type"] == "context_actions"
    assert not slack.is_streaming(CHANNEL, stream_ts) and slack.stream(CHANNEL, stream_ts).state == "stopped"
    assert slack.session(CHANNEL, ts).history == ["processing", "active"]
    assert await error_of(web.chat_appendStream(channel=CHANNEL, ts=stream_ts, chunks=[text("x")])) == (
        "message_not_in_streaming_state"
    )
    assert await error_of(web.chat_stopStream(channel=CHANNEL, ts=stream_ts)) == "message_not_in_streaming_state"


async def test_the_sdk_chat_stream_helper_works_against_the_fake(slack: FakeSlack, web: AsyncWebClient) -> None:
    """slack_sdk's chat_stream (chunks, a buffer, an empty final stop) streams a whole answer."""
    ts = thread(slack)
    streamer = await web.chat_stream(channel=CHANNEL, thread_ts=ts, buffer_size=4, **RECIPIENTS)
    for word in ("one ", "two ", "three"):
        await streamer.append(markdown_text=word)
    await streamer.stop(session_status="suspended")
    assert streamer.ts is not None and slack.stream(CHANNEL, streamer.ts).mode == "chunks"
    assert slack.bot_replies(CHANNEL, ts)[0]["text"] == "one two three"
    assert slack.session(CHANNEL, ts).status == "suspended"
    short = await web.chat_stream(channel=CHANNEL, thread_ts=ts, **RECIPIENTS)
    await short.stop()  # never flushed: the helper starts an empty stream and stops it with no chunk
    assert short.ts is not None and slack.stream(CHANNEL, short.ts).state == "stopped"


async def test_task_updates_are_kept_per_id(slack: FakeSlack, web: AsyncWebClient) -> None:
    """A task_update with a known id replaces title and status and appends details; plan titles are kept."""
    ts = thread(slack)
    stream_ts = await start(web, ts, chunks=[task("t1", "Searching", "in_progress", details="a")])
    await web.chat_appendStream(
        channel=CHANNEL,
        ts=stream_ts,
        chunks=[task("t1", "Searched", "complete", details="b"), task("t2", "Reading", "pending"), text("Done")],
    )
    await web.chat_appendStream(channel=CHANNEL, ts=stream_ts, chunks=[{"type": "plan_update", "title": "Plan"}])
    stream = slack.stream(CHANNEL, stream_ts)
    first, second = stream.tasks.values()
    assert (first.title, first.status, first.details) == ("Searched", "complete", "ab")
    assert (second.id, second.status) == ("t2", "pending") and stream.plan_title == "Plan"
    assert slack.bot_replies(CHANNEL, ts)[0]["text"] == "Done"


async def test_start_stream_refusals(slack: FakeSlack, web: AsyncWebClient) -> None:
    """A missing thread, missing recipients outside a DM and a bad display mode are Slack's errors."""
    ts = thread(slack)
    assert await error_of(web.chat_startStream(channel=CHANNEL, thread_ts="", **RECIPIENTS)) == "invalid_thread_ts"
    assert await error_of(web.chat_startStream(channel=CHANNEL, thread_ts="1.000001", **RECIPIENTS)) == (
        "invalid_thread_ts"
    )
    no_user = web.chat_startStream(channel=CHANNEL, thread_ts=ts, recipient_team_id="T0TEAM")
    assert await error_of(no_user) == "missing_recipient_user_id"
    no_team = web.chat_startStream(channel=CHANNEL, thread_ts=ts, recipient_user_id="U0ALICE")
    assert await error_of(no_team) == "missing_recipient_team_id"
    assert await error_of(web.chat_startStream(channel="", thread_ts=ts)) == "channel_not_found"
    assert await error_of(start(web, ts, task_display_mode="cards")) == "invalid_arguments"
    dm_thread = thread(slack, "D0ALICE")
    dm_stream = await web.chat_startStream(channel="D0ALICE", thread_ts=dm_thread)  # a DM needs no recipients
    assert slack.is_streaming("D0ALICE", dm_stream["ts"])
    assert not slack.has_session(CHANNEL, ts), "a refused start creates no session"


async def test_text_limits_and_the_mode_lock(slack: FakeSlack, web: AsyncWebClient) -> None:
    """Over 12,000 characters in one markdown_text is msg_too_long; a stream keeps the mode it started with."""
    ts = thread(slack)
    assert await error_of(start(web, ts, markdown_text="x" * 12_001)) == "msg_too_long"
    assert await error_of(start(web, ts, chunks=[text("x" * 12_001)])) == "msg_too_long"
    by_chunks = await start(web, ts, chunks=[text("x" * 12_000)])
    mixed = web.chat_appendStream(channel=CHANNEL, ts=by_chunks, markdown_text="more")
    assert await error_of(mixed) == "streaming_mode_mismatch"
    by_markdown = await start(web, ts, markdown_text="Hi")
    assert await error_of(web.chat_appendStream(channel=CHANNEL, ts=by_markdown, chunks=[text("x")])) == (
        "streaming_mode_mismatch"
    )
    await web.chat_appendStream(channel=CHANNEL, ts=by_markdown, markdown_text=" there")
    assert await error_of(web.chat_appendStream(channel=CHANNEL, ts=by_markdown)) == "no_text"
    assert slack.stream(CHANNEL, by_markdown).mode == "markdown_text"


@pytest.mark.parametrize(
    "chunk",
    [
        {"type": "sparkles", "text": "x"},
        {"type": "markdown_text"},
        {"type": "task_update", "id": "t1", "title": "No status"},
        {"type": "task_update", "id": "t1", "title": "Done", "status": "completed"},
        {"type": "task_update", "id": "t1", "title": "x" * 257, "status": "complete"},
        {"type": "plan_update", "title": ""},
        {"type": "blocks", "blocks": []},
        "just text",
    ],
)
async def test_invalid_chunks_are_refused(slack: FakeSlack, web: AsyncWebClient, chunk: object) -> None:
    """Unknown chunk types, missing fields, a status outside pending/in_progress/complete/error: invalid_chunks."""
    ts = thread(slack)
    assert await error_of(start(web, ts, chunks=[chunk])) == "invalid_chunks"


async def test_stop_stream_refusals(slack: FakeSlack, web: AsyncWebClient) -> None:
    """Too many blocks, malformed feedback buttons or metadata, and an unknown message are refused at stop."""
    ts = thread(slack)
    stream_ts = await start(web, ts, chunks=[text("Hi")])
    divider = {"type": "divider"}
    assert await error_of(web.chat_stopStream(channel=CHANNEL, ts=stream_ts, blocks=[divider] * 51)) == (
        "msg_blocks_too_many"
    )
    broken = {"type": "context_actions", "elements": [{"type": "feedback_buttons", "positive_button": {}}]}
    assert await error_of(web.chat_stopStream(channel=CHANNEL, ts=stream_ts, blocks=[broken])) == "invalid_blocks"
    assert await error_of(web.chat_stopStream(channel=CHANNEL, ts=stream_ts, metadata={"event_payload": {}})) == (
        "invalid_metadata_format"
    )
    assert await error_of(web.chat_stopStream(channel=CHANNEL, ts="1.000001")) == "message_not_found"
    plain = await web.chat_postMessage(channel=CHANNEL, thread_ts=ts, text="not a stream")
    assert await error_of(web.chat_stopStream(channel=CHANNEL, ts=plain["ts"])) == "message_not_in_streaming_state"
    assert slack.is_streaming(CHANNEL, stream_ts), "a refused stop leaves the stream running"


async def test_a_streaming_message_cannot_be_updated_or_deleted(slack: FakeSlack, web: AsyncWebClient) -> None:
    """chat.update on a message still streaming is streaming_state_conflict; it works once the stream ended."""
    ts = thread(slack)
    stream_ts = await start(web, ts, chunks=[text("Hi")])
    assert await error_of(web.chat_update(channel=CHANNEL, ts=stream_ts, text="edited")) == "streaming_state_conflict"
    assert await error_of(web.chat_delete(channel=CHANNEL, ts=stream_ts)) == "cant_delete_message"
    await web.chat_stopStream(channel=CHANNEL, ts=stream_ts)
    await web.chat_update(channel=CHANNEL, ts=stream_ts, text="edited")
    assert slack.bot_replies(CHANNEL, ts)[0]["text"] == "edited"


async def test_a_stream_stops_by_itself_after_its_lifetime(slack: FakeSlack, web: AsyncWebClient) -> None:
    """Slack ends a stream some minutes after its start: appends then fail and the session becomes active."""
    ts = thread(slack)
    stream_ts = await start(web, ts, chunks=[text("Hi")])
    slack.time_out_stream(CHANNEL, stream_ts)
    assert await error_of(web.chat_appendStream(channel=CHANNEL, ts=stream_ts, chunks=[text("x")])) == (
        "message_not_in_streaming_state"
    )
    assert slack.stream(CHANNEL, stream_ts).state == "timed_out" and slack.session(CHANNEL, ts).status == "active"
    slack.stream_lifetime = 0.0
    second = await start(web, ts, chunks=[text("Hi")])
    assert not slack.is_streaming(CHANNEL, second)


async def test_a_message_over_40000_characters_is_truncated_with_a_warning(
    slack: FakeSlack, web: AsyncWebClient
) -> None:
    """Appends may pass 40,000 characters in all; Slack keeps the first 40,000 and warns message_truncated."""
    ts = thread(slack)
    stream_ts = await start(web, ts, chunks=[text("x" * 12_000)])
    for _ in range(2):
        await web.chat_appendStream(channel=CHANNEL, ts=stream_ts, chunks=[text("y" * 12_000)])
    last = await web.chat_appendStream(channel=CHANNEL, ts=stream_ts, chunks=[text("z" * 12_000)])
    assert last["warning"] == "message_truncated"
    assert len(slack.bot_replies(CHANNEL, ts)[0]["text"]) == 40_000
