"""The playground page's agent side: Stop, feedback, the Messages tab and what the page is told to draw."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs

import aiohttp
import pytest
from aiohttp import web
from slack_sdk.web.async_client import AsyncWebClient

from playground.delivery import SlackDelivery
from playground.page_input import DM_CHANNEL, ME
from playground.playground import Playground
from tests.fakes import wait_until
from tests.unit.playground.agent_workspace import FEEDBACK_BLOCK

CHANNEL = "C0GENERAL"


class RecordingBot:
    """A Request URL that acknowledges everything and keeps what Slack (the playground) sent it."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.interactions: list[dict[str, Any]] = []

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.text()
        if request.content_type == "application/json":
            self.events.append(json.loads(body)["event"])
        else:
            self.interactions.append(json.loads(parse_qs(body)["payload"][0]))
        return web.Response(status=200)


@pytest.fixture
async def bot() -> AsyncIterator[tuple[RecordingBot, str]]:
    recorder = RecordingBot()
    app = web.Application()
    app.router.add_post("/slack/events", recorder.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield recorder, f"http://127.0.0.1:{port}/slack/events"
    finally:
        await runner.cleanup()


@pytest.fixture
async def page(bot: tuple[RecordingBot, str]) -> AsyncIterator[Playground]:
    async with Playground(model="offline", signing_secret="page-secret") as playground:
        playground.delivery = SlackDelivery(bot[1], "page-secret")
        try:
            yield playground
        finally:
            await playground.delivery.close()


@pytest.fixture
def web_client(page: Playground) -> AsyncWebClient:
    return AsyncWebClient(token=page.bot_token, base_url=page.api_url)


async def post(page: Playground, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as session, session.post(page.url + path, json=body) as response:
        answer: dict[str, Any] = await response.json()
        return response.status, answer


def conversation(page: Playground, channel: str) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in page.snapshot()["channels"] if c["id"] == channel)
    return found


async def test_a_dm_is_for_the_app_without_a_mention(page: Playground, bot: tuple[RecordingBot, str]) -> None:
    """A message in the Messages tab reaches the bot as message.im, without an app_mention."""
    status, answer = await post(page, "playground/messages", {"channel": DM_CHANNEL, "text": "hello there"})
    assert status == 200
    [event] = await wait_until(lambda: bot[0].events)
    assert (event["type"], event["channel_type"], event["channel"], event["user"]) == (
        "message",
        "im",
        DM_CHANNEL,
        ME[0],
    )
    dm = conversation(page, DM_CHANNEL)
    assert dm["kind"] == "im" and [m["ts"] for m in dm["messages"]] == [answer["ts"]]


async def test_opening_the_messages_tab_tells_the_app_and_shows_its_prompts(
    page: Playground, bot: tuple[RecordingBot, str], web_client: AsyncWebClient
) -> None:
    """Opening the tab delivers app_home_opened; the prompts the app sets for the DM are drawn."""
    assert (await post(page, "playground/messages-tab", {}))[0] == 200
    [event] = await wait_until(lambda: bot[0].events)
    assert (event["type"], event["tab"], event["channel"]) == ("app_home_opened", "messages", DM_CHANNEL)
    prompts = [{"title": "Summarize", "message": "Summarize this for me"}]
    await web_client.assistant_threads_setSuggestedPrompts(channel_id=DM_CHANNEL, prompts=prompts, title="Try")
    assert conversation(page, DM_CHANNEL)["prompts"] == {"title": "Try", "items": prompts}


async def test_stop_delivers_agent_session_stopped_and_ends_the_stream(
    page: Playground, bot: tuple[RecordingBot, str], web_client: AsyncWebClient
) -> None:
    """The page's Stop presses Slack's button: the stream stops and the bot gets agent_session_stopped."""
    thread_ts = page.say(CHANNEL, "@claude tell me", None)[0]["event"]["ts"]
    assert (await post(page, "playground/stop", {"channel": CHANNEL, "thread_ts": thread_ts}))[0] == 400
    chunks = [
        {"type": "task_update", "id": "t1", "title": "Reading the thread", "status": "in_progress"},
        {"type": "markdown_text", "text": "Part"},
    ]
    started = await web_client.chat_startStream(
        channel=CHANNEL, thread_ts=thread_ts, recipient_team_id=page.team_id, recipient_user_id=ME[0], chunks=chunks
    )
    [parent] = conversation(page, CHANNEL)["messages"]
    [reply] = parent["replies"]
    assert parent["session"] == {"status": "processing", "title": None}
    assert reply["streaming"] and reply["tasks"] == [
        {"id": "t1", "title": "Reading the thread", "status": "in_progress", "details": ""}
    ]
    status, answer = await post(page, "playground/stop", {"channel": CHANNEL, "thread_ts": thread_ts})
    assert status == 200 and answer["stopped"] == [started["ts"]]
    event = await wait_until(lambda: next((e for e in bot[0].events if e["type"] == "agent_session_stopped"), None))
    assert (event["thread_ts"], event["user"], event["streaming_message_ts"]) == (thread_ts, ME[0], [started["ts"]])
    [reply] = conversation(page, CHANNEL)["messages"][0]["replies"]
    assert not reply["streaming"] and reply["stream"] == "stopped_by_user"


async def test_feedback_buttons_are_drawn_and_a_click_reaches_the_bot(
    page: Playground, bot: tuple[RecordingBot, str], web_client: AsyncWebClient
) -> None:
    """An answer's feedback buttons show under it; a click delivers block_actions and is remembered on the page."""
    thread_ts = page.say(CHANNEL, "@claude tell me", None)[0]["event"]["ts"]
    plain = await web_client.chat_postMessage(channel=CHANNEL, thread_ts=thread_ts, text="plain")
    answer = await web_client.chat_postMessage(
        channel=CHANNEL, thread_ts=thread_ts, text="answer", blocks=[FEEDBACK_BLOCK]
    )

    async def click(ts: str, positive: object) -> int:
        return (await post(page, "playground/feedback", {"channel": CHANNEL, "ts": ts, "positive": positive}))[0]

    assert await click(plain["ts"], True) == 400, "a message without feedback buttons cannot be clicked"
    assert await click(answer["ts"], "yes") == 400
    assert await click(answer["ts"], False) == 200
    [payload] = bot[0].interactions
    assert payload["actions"][0]["value"] == "negative" and payload["message"]["ts"] == answer["ts"]
    shown = conversation(page, CHANNEL)["messages"][0]["replies"][-1]["feedback"]
    assert shown == {"positive": "👍", "negative": "👎", "mine": "negative"}
