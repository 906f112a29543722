"""SUGGESTED_PROMPTS: its format, its bounds, its defaults, and the startup error for a bad value."""

from __future__ import annotations

import json

import pytest

from bot.core.errors import ConfigError
from bot.runtime.settings import load_settings
from handlers.suggested_prompts import (
    DEFAULT_SUGGESTED_PROMPTS,
    MAX_MESSAGE_CHARS,
    MAX_PROMPTS,
    MAX_TITLE_CHARS,
    SuggestedPrompt,
    parse_suggested_prompts,
)

REQUIRED = {"slack_bot_token": "xoxb-1", "slack_signing_secret": "s3cret", "anthropic_api_key": "sk-ant-1"}


def test_objects_and_plain_strings_are_prompts() -> None:
    """An object gives its title and message; a string is both (its title cut to a button's length)."""
    long_question = "Why " + "really " * 20 + "?"
    prompts = parse_suggested_prompts(json.dumps([{"title": " Plan ", "message": "Plan my day."}, long_question]))
    assert prompts[0] == SuggestedPrompt("Plan", "Plan my day.")
    assert prompts[1].message == long_question
    assert len(prompts[1].title) <= MAX_TITLE_CHARS and prompts[1].title.endswith("really…")
    assert parse_suggested_prompts("[]") == ()


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ("Plan my day", "not JSON"),
        ('{"title": "a", "message": "b"}', "JSON list"),
        (json.dumps(["a"] * (MAX_PROMPTS + 1)), "at most 4 prompts"),
        (json.dumps([{"title": "a"}]), "prompt 1"),
        (json.dumps(["ok", {"title": "a", "message": "b", "extra": 1}]), "prompt 2"),
        (json.dumps([{"title": " ", "message": "b"}]), "not blank"),
        (json.dumps([{"title": 1, "message": "b"}]), "must be text"),
        (json.dumps([{"title": "a" * (MAX_TITLE_CHARS + 1), "message": "b"}]), "at most 75"),
        (json.dumps([{"title": "a", "message": "b" * (MAX_MESSAGE_CHARS + 1)}]), "2000"),
    ],
)
def test_anything_else_is_refused_saying_why(raw: str, says: str) -> None:
    """A value that is not a list of at most four bounded prompts raises ValueError naming the problem."""
    with pytest.raises(ValueError, match=says):
        parse_suggested_prompts(raw)


def test_the_defaults_are_four_valid_prompts() -> None:
    """The default value parses to four prompts (Slack's most), each within the bounds."""
    prompts = load_settings(**REQUIRED).messages_tab_prompts
    assert prompts == parse_suggested_prompts(DEFAULT_SUGGESTED_PROMPTS)
    assert len(prompts) == MAX_PROMPTS


def test_a_bad_value_stops_the_start_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """SUGGESTED_PROMPTS from the environment is checked at start, like every setting."""
    monkeypatch.setenv("SUGGESTED_PROMPTS", '[{"title": "only a title"}]')
    with pytest.raises(ConfigError) as error:
        load_settings(**REQUIRED)
    assert "SUGGESTED_PROMPTS" in str(error.value)
    monkeypatch.setenv("SUGGESTED_PROMPTS", '["Plan my day"]')
    assert load_settings(**REQUIRED).messages_tab_prompts == (SuggestedPrompt("Plan my day", "Plan my day"),)
