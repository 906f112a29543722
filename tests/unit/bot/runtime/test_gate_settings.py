"""The gate's settings: allow-lists of Slack ids, limits off by default but for the bots' turns."""

from __future__ import annotations

import pytest

from bot.core.errors import ConfigError
from bot.runtime.settings import load_settings

REQUIRED = {"slack_bot_token": "xoxb-1", "slack_signing_secret": "s3cret", "anthropic_api_key": "sk-ant-1"}


def test_everyone_may_use_the_bot_without_limits_by_default_but_bots_have_one() -> None:
    """Unset, the allow-lists are empty and the rate limits off; allowed bots get 20 turns a thread an hour."""
    settings = load_settings(**REQUIRED)
    assert settings.gate_allow_lists == ([], [])
    assert (settings.rate_limit_per_user, settings.rate_limit_per_thread) == (0, 0)
    assert settings.max_bot_turns_per_thread == 20


def test_allow_lists_are_parsed_from_comma_separated_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ids are split on commas, blanks dropped; `dm` names direct messages in the channel list."""
    monkeypatch.setenv("ALLOWED_CHANNEL_IDS", "C0GENERAL, G0PRIVATE,,dm")
    monkeypatch.setenv("ALLOWED_USER_IDS", "U0ALICE,W0BOB ")
    assert load_settings(**REQUIRED).gate_allow_lists == (["C0GENERAL", "G0PRIVATE", "dm"], ["U0ALICE", "W0BOB"])


@pytest.mark.parametrize(("name", "value"), [("ALLOWED_CHANNEL_IDS", "#general"), ("ALLOWED_USER_IDS", "@alice, dm")])
def test_names_instead_of_ids_stop_the_start(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    """A channel or person named rather than given by id would silently allow nobody: the start stops, naming it."""
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings(**REQUIRED)
    assert name in str(caught.value) and "not Slack ids" in str(caught.value)


def test_a_negative_limit_stops_the_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """Limits are counts: 0 turns one off, and below that is a mistake."""
    monkeypatch.setenv("RATE_LIMIT_PER_USER", "-1")
    with pytest.raises(ConfigError, match="RATE_LIMIT_PER_USER"):
        load_settings(**REQUIRED)
