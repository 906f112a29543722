"""The metrics settings: /metrics credentials and where a worker-only process serves it."""

from __future__ import annotations

import pytest

from bot.core.errors import ConfigError
from bot.runtime.settings import load_settings

REQUIRED = {"slack_bot_token": "xoxb-1", "slack_signing_secret": "s3cret", "anthropic_api_key": "sk-ant-1"}


def test_metrics_are_open_and_workers_serve_none_by_default() -> None:
    """Unset, /metrics needs no credentials and a worker-only process opens no port."""
    settings = load_settings(**REQUIRED)
    assert settings.metrics_token is None and settings.metrics_basic_auth is None
    assert settings.worker_metrics_port is None


def test_a_worker_serves_metrics_on_port_if_set_else_metrics_port(monkeypatch: pytest.MonkeyPatch) -> None:
    """PORT, when the environment sets it, wins over METRICS_PORT; METRICS_PORT alone is used otherwise."""
    monkeypatch.setenv("METRICS_PORT", "9464")
    assert load_settings(**REQUIRED).worker_metrics_port == 9464
    monkeypatch.setenv("PORT", "5000")
    assert load_settings(**REQUIRED).worker_metrics_port == 5000


def test_basic_auth_must_name_a_user_and_a_password(monkeypatch: pytest.MonkeyPatch) -> None:
    """METRICS_BASIC_AUTH without a colon, a user or a password stops the start, naming the variable, not its value."""
    for bad in ("justapassword", ":pw9", "alice:"):
        monkeypatch.setenv("METRICS_BASIC_AUTH", bad)
        with pytest.raises(ConfigError) as caught:
            load_settings(**REQUIRED)
        assert "METRICS_BASIC_AUTH" in str(caught.value) and bad not in str(caught.value)
    monkeypatch.setenv("METRICS_BASIC_AUTH", "prom:pa:ss")
    secret = load_settings(**REQUIRED).metrics_basic_auth
    assert secret is not None and secret.get_secret_value() == "prom:pa:ss"


def test_a_blank_token_is_no_token(monkeypatch: pytest.MonkeyPatch) -> None:
    """`heroku config:set METRICS_TOKEN=` leaves the variable empty: it counts as unset, not as a token of ''."""
    monkeypatch.setenv("METRICS_TOKEN", " ")
    assert load_settings(**REQUIRED).metrics_token is None
