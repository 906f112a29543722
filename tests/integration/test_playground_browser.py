"""`python -m bot dev` as a newcomer meets it: a page in a real browser (headless Chromium, driven by Selenium)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.webdriver.remote.webdriver import WebDriver

from tests.integration.browser_page import click, headless_chromium, needs_chromium, texts, type_into
from tests.integration.playground_process import Playground, eventually

pytestmark = needs_chromium


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    with headless_chromium(tmp_path / "chromium") as driver:
        yield driver


def bot_reply_text(driver: WebDriver) -> str | None:
    replies = texts(driver, "#thread-messages .message[data-bot='true'] .body")
    return replies[-1] if replies else None


@pytest.mark.timeout(120)
def test_a_mention_streams_its_answer_into_the_thread_and_status_shows_the_agent(
    playground: Playground, browser: WebDriver
) -> None:
    browser.get(playground.url)
    eventually(lambda: "running" in texts(browser, "#bot-state")[0], what="the bot shown running")
    assert "offline" in texts(browser, "#bot-model")[0]

    type_into(browser, "composer", "@claude what is the capital of France?")
    eventually(lambda: texts(browser, "#messages .replies-link") == ["1 reply"], what="one reply under the mention")
    click(browser, "#messages .replies-link")

    # The answer grows in place as the model streams it, then stays: one message, the whole answer.
    seen: list[str] = []

    def finished() -> bool:
        text = bot_reply_text(browser)
        if text and (not seen or seen[-1] != text):
            seen.append(text)
        return bool(text and "in this thread" in text)

    eventually(finished, 30, "the finished answer")
    final = seen[-1]
    assert "Offline stand-in model" in final and "what is the capital of France?" in final
    assert any(text != final and text.strip() for text in seen[:-1]), f"no partial answer was ever shown: {seen}"
    assert len(texts(browser, "#thread-messages .message[data-bot='true']")) == 1

    type_into(browser, "composer", "/agent status")
    status = eventually(
        lambda: next((text for text in texts(browser, "#messages .ephemeral") if "Agents in" in text), None),
        what="the status answer",
    )
    assert "Only visible to you" in status
    assert "Agents in #general: 1" in status and "idle" in status


def stop_button_shown(driver: WebDriver) -> bool:
    return bool(texts(driver, "#stop-session"))


@pytest.mark.timeout(150)
def test_stop_pressed_mid_answer_stops_the_answer(playground: Playground, browser: WebDriver) -> None:
    """Stop pressed while the agent streams a long answer: the answer stops growing, marked stopped, session active."""
    browser.get(playground.url)
    eventually(lambda: "running" in texts(browser, "#bot-state")[0], what="the bot shown running")
    type_into(browser, "composer", "@claude write me a long story")
    eventually(lambda: texts(browser, "#messages .replies-link") == ["1 reply"], what="one reply under the mention")
    click(browser, "#messages .replies-link")

    def streaming_with_stop() -> bool:
        text = bot_reply_text(browser) or ""
        return stop_button_shown(browser) and "You said" in text and "Paragraph 12 of 12" not in text

    eventually(streaming_with_stop, 40, "the answer streaming under a session with a Stop button")
    click(browser, "#stop-session")

    # Slack stops the stream at once; the bot stops its work and moves the session out of processing.
    eventually(
        lambda: not stop_button_shown(browser) and texts(browser, "#session-status") == ["active"],
        15,
        "the session active again, without a Stop button",
    )

    def marked_stopped() -> str | None:
        text = bot_reply_text(browser)
        return text if text and "Stopped by" in text else None

    stopped = eventually(marked_stopped, 15, "the partial answer marked stopped")
    # Nothing more arrives: watch the answer for a few seconds (the model would have written on at 40 characters a
    # second).
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        assert bot_reply_text(browser) == stopped, "the answer kept growing after Stop"
        time.sleep(0.2)
    assert "Paragraph 12 of 12" not in stopped
    assert len(texts(browser, "#thread-messages .message[data-bot='true']")) == 1


@pytest.mark.timeout(120)
def test_a_workspace_added_with_allow_gets_answers_and_the_page_switches_between_workspaces(
    playground: Playground, browser: WebDriver
) -> None:
    """Adding a workspace shows Slack's authorize screen; Allow installs the app and shows the new workspace, whose
    #general starts empty and gets the bot's answer; switching back shows the first workspace's own messages."""
    browser.get(playground.url)
    eventually(lambda: "running" in texts(browser, "#bot-state")[0], what="the bot shown running")
    type_into(browser, "composer", "@claude this is the first workspace")
    eventually(lambda: texts(browser, "#messages .replies-link") == ["1 reply"], what="the answer in the first")

    click(browser, "#add-workspace")
    eventually(
        lambda: texts(browser, "#authorize:not([hidden]) #authorize-team") == ["Workspace 2"], what="Slack's screen"
    )
    assert "app_mentions:read" in texts(browser, "#authorize-scopes")[0]
    click(browser, "#authorize-allow")
    eventually(lambda: texts(browser, "#workspaces .workspace.active") == ["W2\nWorkspace 2"], what="the switch")
    assert texts(browser, "#authorize:not([hidden])") == [], "Slack's screen is still shown"
    assert texts(browser, "#messages .message") == [], "the new workspace's #general is its own"

    type_into(browser, "composer", "@claude this is the second workspace")
    eventually(lambda: texts(browser, "#messages .replies-link") == ["1 reply"], what="the answer in the second")
    click(browser, "#messages .replies-link")
    eventually(lambda: "this is the second workspace" in (bot_reply_text(browser) or ""), 30, what="its answer")

    click(browser, "#workspaces .workspace[data-team='T0TEAM']")
    eventually(
        lambda: any("this is the first workspace" in text for text in texts(browser, "#messages .message .body")),
        what="the first workspace's messages again",
    )
    assert not any("second workspace" in text for text in texts(browser, "#messages .message .body"))
