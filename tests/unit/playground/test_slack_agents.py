"""The Slack emulator's agent sessions, suggested prompts, Stop, renames and feedback, through the real slack_sdk."""

from __future__ import annotations

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes import FakeSlack
from tests.unit.playground.agent_workspace import CHANNEL, FEEDBACK_BLOCK, thread

pytestmark = pytest.mark.usefixtures("agent_features")


async def error_of(call: object) -> str:
    with pytest.raises(SlackApiError) as info:
        await call  # type: ignore[misc]  # a coroutine of the SDK
    return str(info.value.response["error"])


async def test_set_status_creates_the_session_then_keeps_its_title_and_history(
    slack: FakeSlack, web: AsyncWebClient
) -> None:
    """setStatus creates the session with its title; later calls change the status only and answer Slack's fields."""
    ts = thread(slack)
    first = await web.agents_sessions_setStatus(
        channel_id=CHANNEL, thread_ts=ts, status="processing", title="Trip", initiator_user_id="U0ALICE"
    )
    assert (first["status"], first["agent_status"], first["title"]) == ("processing", "processing", "Trip")
    later = await web.agents_sessions_setStatus(channel_id=CHANNEL, thread_ts=ts, status="active", title="ignored")
    assert (later["status"], later["agent_status"], later["title"]) == ("active", "active", "Trip")
    await web.agents_sessions_setStatus(channel_id=CHANNEL, thread_ts=ts, status="active")
    session = slack.session(CHANNEL, ts)
    assert (session.status, session.title, session.initiator_user_id) == ("active", "Trip", "U0ALICE")
    assert session.history == ["processing", "active"], "a repeated status adds nothing to the history"


async def test_set_status_refusals(slack: FakeSlack, web: AsyncWebClient) -> None:
    """A bad status, a missing thread, an empty channel or an overlong title are Slack's errors."""
    ts = thread(slack)
    assert await error_of(web.agents_sessions_setStatus(channel_id=CHANNEL, thread_ts=ts, status="busy")) == (
        "invalid_status"
    )
    assert await error_of(web.agents_sessions_setStatus(channel_id=CHANNEL, status="active")) == "thread_ts_required"
    assert await error_of(web.agents_sessions_setStatus(channel_id="", thread_ts=ts, status="active")) == (
        "channel_not_found"
    )
    long_title = web.agents_sessions_setStatus(channel_id=CHANNEL, thread_ts=ts, status="active", title="t" * 201)
    assert await error_of(long_title) == "invalid_arguments"
    assert not slack.has_session(CHANNEL, ts)


async def test_a_workspace_without_agent_features_refuses_sessions_streams_and_prompts(
    slack: FakeSlack, web: AsyncWebClient
) -> None:
    """With agent_features off, sessions and streams answer feature_disabled and prompts not_agent_app."""
    ts = thread(slack)
    slack.agent_features = False
    assert await error_of(web.agents_sessions_setStatus(channel_id=CHANNEL, thread_ts=ts, status="active")) == (
        "feature_disabled"
    )
    assert await error_of(web.agents_sessions_rename(channel_id=CHANNEL, thread_ts=ts, title="x")) == (
        "feature_disabled"
    )
    start = web.chat_startStream(channel=CHANNEL, thread_ts=ts, recipient_team_id="T0TEAM", recipient_user_id="U0A")
    assert await error_of(start) == "feature_disabled"
    prompts = web.assistant_threads_setSuggestedPrompts(channel_id="D0A", prompts=[{"title": "a", "message": "b"}])
    assert await error_of(prompts) == "not_agent_app"


async def test_rename_needs_a_session_and_a_title_of_1_to_200_characters(slack: FakeSlack, web: AsyncWebClient) -> None:
    """rename never creates a session (session_not_found) and refuses an empty or overlong title."""
    ts = thread(slack)
    assert await error_of(web.agents_sessions_rename(channel_id=CHANNEL, thread_ts=ts, title="New")) == (
        "session_not_found"
    )
    await web.agents_sessions_setStatus(channel_id=CHANNEL, thread_ts=ts, status="processing")
    for title in ("", "t" * 201):
        assert await error_of(web.agents_sessions_rename(channel_id=CHANNEL, thread_ts=ts, title=title)) == (
            "invalid_arguments"
        )
    assert await error_of(web.agents_sessions_rename(channel_id=CHANNEL, title="New")) == "thread_ts_required"
    assert (await web.agents_sessions_rename(channel_id=CHANNEL, thread_ts=ts, title="New"))["title"] == "New"
    assert slack.session(CHANNEL, ts).title == "New"


async def test_a_person_renaming_a_session_gives_the_title_changed_event(slack: FakeSlack, web: AsyncWebClient) -> None:
    """rename_session_as_user retitles the session and returns agent_session_title_changed with the old title."""
    ts = thread(slack)
    await web.agents_sessions_setStatus(channel_id=CHANNEL, thread_ts=ts, status="active", title="Old")
    envelope = slack.rename_session_as_user(CHANNEL, ts, "Mine", user="U0BOB")
    event = envelope["event"]
    assert envelope["type"] == "event_callback" and envelope["team_id"] == slack.team_id
    assert (event["type"], event["title"], event["previous_title"], event["user"]) == (
        "agent_session_title_changed",
        "Mine",
        "Old",
        "U0BOB",
    )
    assert slack.session(CHANNEL, ts).titles == ["Old", "Mine"]


async def test_press_stop_stops_the_sessions_streams_and_returns_the_event(
    slack: FakeSlack, web: AsyncWebClient
) -> None:
    """Stop ends the thread's streams (appends then get stopped_by_user) and leaves the status for the app to change."""
    ts = thread(slack)
    with pytest.raises(LookupError):
        slack.press_stop(CHANNEL, ts)  # no session: there is no Stop button
    started = await web.chat_startStream(
        channel=CHANNEL,
        thread_ts=ts,
        recipient_team_id="T0TEAM",
        recipient_user_id="U0ALICE",
        chunks=[{"type": "markdown_text", "text": "Part"}],
    )
    envelope = slack.press_stop(CHANNEL, ts, user="U0ALICE")
    event = envelope["event"]
    assert (event["type"], event["channel"], event["user"], event["thread_ts"]) == (
        "agent_session_stopped",
        CHANNEL,
        "U0ALICE",
        ts,
    )
    assert event["streaming_message_ts"] == [started["ts"]] and "team_id" not in event
    assert envelope["team_id"] == slack.team_id
    append = web.chat_appendStream(channel=CHANNEL, ts=started["ts"], chunks=[{"type": "markdown_text", "text": "x"}])
    assert await error_of(append) == "stopped_by_user"
    assert await error_of(web.chat_stopStream(channel=CHANNEL, ts=started["ts"])) == "message_not_in_streaming_state"
    assert slack.session(CHANNEL, ts).status == "processing"
    await web.chat_update(channel=CHANNEL, ts=started["ts"], text="Part (stopped)")  # allowed once it has ended
    await web.agents_sessions_setStatus(channel_id=CHANNEL, thread_ts=ts, status="active")
    with pytest.raises(LookupError):
        slack.press_stop(CHANNEL, ts)  # Stop shows only while processing


async def test_suggested_prompts_pin_to_the_messages_tab_without_thread_ts(
    slack: FakeSlack, web: AsyncWebClient
) -> None:
    """Prompts set without thread_ts are kept per DM; with thread_ts an agent app's call silently does nothing."""
    envelope = slack.open_messages_tab("U0ALICE")
    event = envelope["event"]
    dm = event["channel"]
    assert (event["type"], event["tab"], event["user"], dm) == ("app_home_opened", "messages", "U0ALICE", "D0ALICE")
    prompts = [{"title": f"Idea {n}", "message": f"Tell me about {n}"} for n in range(4)]
    await web.assistant_threads_setSuggestedPrompts(channel_id=dm, prompts=prompts, title="Try")
    assert slack.suggested_prompts[dm] == prompts and slack.suggested_prompts_title[dm] == "Try"
    other = [{"title": "Other", "message": "other"}]
    assert (await web.assistant_threads_setSuggestedPrompts(channel_id=dm, prompts=other, thread_ts="1.000001"))["ok"]
    assert slack.suggested_prompts[dm] == prompts


@pytest.mark.parametrize(
    "prompts",
    [
        [],
        [{"title": f"t{n}", "message": "m"} for n in range(5)],
        [{"title": "no message"}],
        [{"title": "", "message": "m"}],
    ],
)
async def test_suggested_prompts_refusals(slack: FakeSlack, web: AsyncWebClient, prompts: list[dict[str, str]]) -> None:
    """No prompt, more than four, or a prompt without a title and a message is invalid_arguments."""
    call = web.assistant_threads_setSuggestedPrompts(channel_id="D0ALICE", prompts=prompts)
    assert await error_of(call) == "invalid_arguments"
    assert await error_of(web.assistant_threads_setSuggestedPrompts(channel_id="", prompts=[])) == "channel_not_found"


async def test_click_feedback_gives_the_block_actions_payload(slack: FakeSlack, web: AsyncWebClient) -> None:
    """A click on a feedback button is block_actions with a feedback_buttons action whose value tells which one."""
    ts = thread(slack)
    plain = await web.chat_postMessage(channel=CHANNEL, thread_ts=ts, text="no buttons")
    with pytest.raises(LookupError):
        slack.click_feedback(CHANNEL, plain["ts"], positive=True)
    answer = await web.chat_postMessage(channel=CHANNEL, thread_ts=ts, text="answer", blocks=[FEEDBACK_BLOCK])
    payload = slack.click_feedback(CHANNEL, answer["ts"], positive=False, user="U0BOB")
    [action] = payload["actions"]
    assert payload["type"] == "block_actions" and payload["user"]["id"] == "U0BOB"
    assert (action["type"], action["action_id"], action["value"]) == ("feedback_buttons", "answer_feedback", "negative")
    assert action["text"]["text"] == "👎" and action["block_id"] and action["action_ts"]
    assert payload["message"]["ts"] == payload["container"]["message_ts"] == answer["ts"]
    assert payload["container"]["thread_ts"] == ts and payload["response_url"].startswith(slack.url)
    assert slack.click_feedback(CHANNEL, answer["ts"], positive=True)["actions"][0]["value"] == "positive"
