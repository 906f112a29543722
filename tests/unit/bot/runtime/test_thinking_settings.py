"""THINKING and THINKING_EFFORT: off by default, validated at start, and what the answer client is given."""

from __future__ import annotations

import pytest

from bot.agent.thinking import Thinking
from bot.core.errors import ConfigError
from bot.runtime.settings import load_settings

REQUIRED = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s3cret", "ANTHROPIC_API_KEY": "sk-ant-1"}


@pytest.fixture(autouse=True)
def required(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in REQUIRED.items():
        monkeypatch.setenv(name, value)


def test_thinking_is_off_by_default() -> None:
    """Without THINKING the answer model does not think and no effort is sent."""
    assert load_settings().answer_thinking is None


def test_adaptive_thinking_with_an_effort(monkeypatch: pytest.MonkeyPatch) -> None:
    """THINKING=adaptive and THINKING_EFFORT=low give the answer client adaptive thinking at low effort."""
    monkeypatch.setenv("THINKING", "adaptive")
    monkeypatch.setenv("THINKING_EFFORT", "low")
    assert load_settings().answer_thinking == Thinking("low")


def test_a_blank_effort_is_the_models_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """`THINKING_EFFORT=` (set but empty, as `heroku config:set` leaves it) sends no effort."""
    monkeypatch.setenv("THINKING", "adaptive")
    monkeypatch.setenv("THINKING_EFFORT", " ")
    assert load_settings().answer_thinking == Thinking(None)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"THINKING": "enabled"}, "THINKING"),
        ({"THINKING": "adaptive", "THINKING_EFFORT": "extreme"}, "THINKING_EFFORT"),
        ({"THINKING_EFFORT": "high"}, "THINKING_EFFORT"),  # an effort without thinking would be silently ignored
        ({"THINKING": "adaptive", "ANTHROPIC_MODEL": "claude-sonnet-4-5-20250929"}, "THINKING"),
        ({"THINKING": "adaptive", "ANTHROPIC_MODEL": "claude-3-7-sonnet-20250219"}, "THINKING"),
        (
            {"THINKING": "adaptive", "THINKING_EFFORT": "xhigh", "ANTHROPIC_MODEL": "claude-sonnet-4-6"},
            "THINKING_EFFORT",
        ),
    ],
)
def test_invalid_thinking_settings_fail_at_start(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], named: str
) -> None:
    """An unknown mode or effort, an effort without thinking, adaptive thinking or an effort level on a model that
    predates it: each is a startup error naming the variable, not a 400 on every mention."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert any(item.startswith(named + " ") for item in caught.value.invalid), caught.value.invalid


@pytest.mark.parametrize("model", ["claude-sonnet-4-6", "claude-opus-4-7", "claude-sonnet-5-5", "my-proxy-alias"])
def test_adaptive_thinking_is_accepted_on_newer_and_unknown_models(monkeypatch: pytest.MonkeyPatch, model: str) -> None:
    """Models from 4.6 on, and ids the bot cannot date (a proxy's alias), are left to the API to judge."""
    monkeypatch.setenv("THINKING", "adaptive")
    monkeypatch.setenv("ANTHROPIC_MODEL", model)
    assert load_settings().answer_thinking == Thinking()
