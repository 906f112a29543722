"""What `python -m bot dev` hands the bot process: the playground's Slack and Redis, never the developer's."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from playground.install_flow import BrowserInstall
from playground.page_input import ME
from playground.playground import Playground
from playground.supervisor import FirstInstall, anthropic_key, bot_environment


@pytest.fixture
def playground() -> Playground:
    return Playground(model="offline", signing_secret="s3cret")


def test_offline_the_bot_talks_to_the_stand_in_model(playground: Playground, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-the-developers-real-token")
    monkeypatch.setenv("SLACK_APP_TOKEN", "xapp-would-switch-to-socket-mode")
    monkeypatch.setenv("REDIS_URL", "redis://production:6379/0")
    monkeypatch.setenv("SYSTEM_PROMPT", "Be brief.")
    env = bot_environment(
        slack=playground, redis_url="redis://127.0.0.1:1234/0", bot_port=4567, api_key=None, offline_url="http://x"
    )
    assert "SLACK_BOT_TOKEN" not in env, "OAuth mode: each workspace's token comes from its install"
    assert (env["SLACK_CLIENT_ID"], env["SLACK_CLIENT_SECRET"]) == (playground.client_id, playground.client_secret)
    assert env["SLACK_SIGNING_SECRET"] == "s3cret"
    assert "SLACK_APP_TOKEN" not in env, "the playground delivers over HTTP, not Socket Mode"
    assert env["SLACK_API_URL"] == playground.api_url
    assert env["REDIS_URL"] == "redis://127.0.0.1:1234/0" and env["PORT"] == "4567"
    assert env["ANTHROPIC_BASE_URL"] == "http://x" and env["ANTHROPIC_API_KEY"] == "offline"
    assert env["SYSTEM_PROMPT"] == "Be brief.", "the developer's other settings still apply"


def test_with_a_key_the_bot_talks_to_claude(playground: Playground, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-from-env")
    assert anthropic_key() == "sk-ant-from-env"
    env = bot_environment(
        slack=playground, redis_url="redis://r", bot_port=1, api_key="sk-ant-from-env", offline_url=None
    )
    assert env["ANTHROPIC_API_KEY"] == "sk-ant-from-env"
    assert "ANTHROPIC_BASE_URL" not in env


def test_the_bots_timers_run_on_the_playgrounds_clock(
    playground: Playground, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """BOT_TEST_CLOCK_FILE names the playground's clock file, which the page moves on; never the developer's own."""
    monkeypatch.setenv("BOT_TEST_CLOCK_FILE", "/somewhere/else")
    common: dict[str, Any] = {"slack": playground, "redis_url": "redis://r", "bot_port": 1, "api_key": None}
    env = bot_environment(**common, offline_url="http://x", clock_file=tmp_path / "clock")
    assert env["BOT_TEST_CLOCK_FILE"] == str(tmp_path / "clock")
    assert "BOT_TEST_CLOCK_FILE" not in bot_environment(**common, offline_url="http://x")


def test_the_key_may_come_from_a_dot_env_file(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    # clean_environment has moved us into an empty tmp_path and cleared ANTHROPIC_*.
    assert anthropic_key() is None
    with open(".env", "w") as env_file:
        env_file.write("ANTHROPIC_API_KEY=sk-ant-from-file\n")
    assert anthropic_key() == "sk-ant-from-file"


async def test_a_first_install_the_bot_cannot_answer_is_shown_and_tried_again(playground: Playground) -> None:
    """When the bot's install page cannot be reached, the page is told, and the next start of the bot tries again."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        nobody = f"http://127.0.0.1:{closed.getsockname()[1]}"  # bound, never listening: connections are refused
        installs = BrowserInstall(playground, nobody, ME[0])
        notices: list[str] = []
        first_install = FirstInstall(installs, playground.team_id, notices.append)
        try:
            await first_install()
            await first_install()
        finally:
            await installs.close()
    assert not first_install.done and len(notices) == 2
    assert "installing the app failed" in notices[0] and "Restart bot" in notices[0]
