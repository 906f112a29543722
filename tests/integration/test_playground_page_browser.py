"""The playground page's agent features in a real browser, with the bot's side played by the test through the
emulator's Web API (so that the page is checked whatever the bot does yet): session status, task cards, Stop,
feedback buttons and the Messages tab with its suggested prompts."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs

import pytest
from aiohttp import web
from selenium.webdriver.remote.webdriver import WebDriver
from slack_sdk.web.async_client import AsyncWebClient

from playground.delivery import SlackDelivery
from playground.page_input import DM_CHANNEL, ME
from playground.playground import Playground
from tests.integration.browser_page import click, headless_chromium, needs_chromium, texts, type_into
from tests.integration.playground_process import eventually
from tests.unit.playground.agent_workspace import FEEDBACK_BLOCK

T = TypeVar("T")
CHANNEL = "C0GENERAL"
pytestmark = needs_chromium


class ScriptedBot:
    """The page and a Request URL that records what Slack sends, on an event loop of their own, beside Selenium."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []  # event envelopes' inner events and interactivity payloads
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.page = Playground(model="offline", signing_secret="page-secret")
        self._runner: web.AppRunner | None = None
        self.run(self._start())
        self.web = AsyncWebClient(token=self.page.bot_token, base_url=self.page.api_url)

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        """Run `work` on the page's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(work, self._loop).result(10)

    def close(self) -> None:
        self.run(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def got(self, kind: str) -> dict[str, Any] | None:
        """The latest event or payload of that type the bot received."""
        return next((item for item in reversed(self.received) if item.get("type") == kind), None)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/slack/events", self._receive)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        await self.page.start()
        url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/slack/events"
        self.page.delivery = SlackDelivery(url, self.page.signing_secret)

    async def _stop(self) -> None:
        if self.page.delivery is not None:
            await self.page.delivery.close()
        await self.page.stop()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _receive(self, request: web.Request) -> web.Response:
        body = await request.text()
        if request.content_type == "application/json":
            self.received.append(json.loads(body)["event"])
        else:
            self.received.append(json.loads(parse_qs(body)["payload"][0]))
        return web.Response(status=200)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    with headless_chromium(tmp_path / "chromium") as driver:
        yield driver


@pytest.fixture
def bot() -> Iterator[ScriptedBot]:
    scripted = ScriptedBot()
    try:
        yield scripted
    finally:
        scripted.close()


@pytest.mark.timeout(90)
def test_the_page_shows_the_session_its_task_cards_and_stop_presses_slacks_button(
    bot: ScriptedBot, browser: WebDriver
) -> None:
    """A processing session gets a Stop button; the streamed answer shows its task cards; Stop delivers the event."""
    browser.get(bot.page.url)
    type_into(browser, "composer", "@claude look into it")
    mention = eventually(lambda: bot.got("app_mention"), what="the mention delivered")
    thread_ts = mention["ts"]
    chunks = [
        {"type": "task_update", "id": "t1", "title": "Reading the thread", "status": "in_progress"},
        {"type": "markdown_text", "text": "Looking"},
    ]
    started = bot.run(
        bot.web.chat_startStream(
            channel=CHANNEL, thread_ts=thread_ts, recipient_team_id="T0TEAM", recipient_user_id=ME[0], chunks=chunks
        )
    )
    eventually(lambda: texts(browser, "#messages .replies-link") == ["1 reply"], what="the streamed reply")
    assert texts(browser, "#messages .session") == ["processing"]
    click(browser, "#messages .replies-link")
    eventually(lambda: texts(browser, "#stop-session"), what="the Stop button of the processing session")
    card = eventually(lambda: texts(browser, "#thread-messages .task"), what="the task card")
    assert "Reading the thread" in card[0] and "in progress" in card[0]
    assert texts(browser, "#thread-messages .streaming") == ["streaming"]

    click(browser, "#stop-session")
    stopped = eventually(lambda: bot.got("agent_session_stopped"), what="agent_session_stopped delivered")
    assert (stopped["thread_ts"], stopped["streaming_message_ts"]) == (thread_ts, [started["ts"]])
    eventually(lambda: texts(browser, "#thread-messages .stream-end") == ["(stopped by user)"], what="stream ended")

    # The bot's part: back to active, the partial answer marked, feedback buttons under it.
    bot.run(bot.web.agents_sessions_setStatus(channel_id=CHANNEL, thread_ts=thread_ts, status="active"))
    bot.run(bot.web.chat_update(channel=CHANNEL, ts=started["ts"], text="Looking… _Stopped._", blocks=[FEEDBACK_BLOCK]))
    eventually(lambda: texts(browser, "#session-status") == ["active"], what="the session shown active")
    assert not texts(browser, "#stop-session")
    eventually(lambda: texts(browser, "#thread-messages .feedback button"), what="the feedback buttons")
    click(browser, "#thread-messages .feedback button[data-fb='false']")
    clicked = eventually(lambda: bot.got("block_actions"), what="the feedback click delivered")
    assert clicked["actions"][0]["value"] == "negative" and clicked["message"]["ts"] == started["ts"]
    eventually(lambda: texts(browser, "#thread-messages .feedback button.chosen") == ["👎"], what="the vote shown")


@pytest.mark.timeout(60)
def test_the_messages_tab_shows_the_suggested_prompts_and_a_click_sends_one(
    bot: ScriptedBot, browser: WebDriver
) -> None:
    """Opening the app's Messages tab delivers app_home_opened; the prompts the app sets are buttons that send a DM."""
    browser.get(bot.page.url)
    eventually(lambda: texts(browser, "#apps .channel"), what="the app under Apps")
    click(browser, "#apps .channel")
    opened = eventually(lambda: bot.got("app_home_opened"), what="app_home_opened delivered")
    assert (opened["tab"], opened["channel"], opened["user"]) == ("messages", DM_CHANNEL, ME[0])
    prompts = [{"title": "Summarize", "message": "Summarize this for me"}, {"title": "Plan", "message": "Plan it"}]
    bot.run(bot.web.assistant_threads_setSuggestedPrompts(channel_id=DM_CHANNEL, prompts=prompts, title="Try these"))
    eventually(lambda: texts(browser, "#prompts button") == ["Summarize", "Plan"], what="the prompts shown")
    assert "Try these" in texts(browser, "#prompts .title")[0]
    click(browser, "#prompts button")
    sent = eventually(lambda: bot.got("message"), what="the prompt sent as a DM")
    assert (sent["text"], sent["channel"], sent["channel_type"]) == ("Summarize this for me", DM_CHANNEL, "im")
    eventually(lambda: "Summarize this for me" in " ".join(texts(browser, "#messages .body")), what="the DM shown")
