"""Settings: names, defaults, and the startup error for missing or invalid values."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.core.errors import ConfigError
from bot.runtime.settings import BOT_TOKEN_OR_OAUTH, DEFAULT_MODEL, MANIFEST_BOT_SCOPES, Settings, load_settings

REPO_ROOT = Path(__file__).resolve().parents[3]
REQUIRED = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s3cret", "ANTHROPIC_API_KEY": "sk-ant-1"}


def test_defaults_with_only_the_required_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the three required variables set, everything else takes its documented default."""
    for name, value in REQUIRED.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings.slack_api_url == "https://slack.com/api/"
    assert settings.anthropic_model == DEFAULT_MODEL
    assert settings.port == 3000
    assert settings.redis_url is None
    assert settings.dyno  # the host name
    assert not settings.socket_mode


def test_settings_are_read_from_a_dotenv_file(tmp_path: Path) -> None:
    """A .env file in the working directory is read (the autouse fixture made tmp_path the working directory)."""
    (tmp_path / ".env").write_text("SLACK_BOT_TOKEN=xoxb-2\nSLACK_APP_TOKEN=xapp-2\nANTHROPIC_API_KEY=k\nPORT=8080\n")
    settings = load_settings()
    assert settings.port == 8080
    assert settings.socket_mode


def test_every_missing_variable_is_named_at_once() -> None:
    """An empty environment names all three required variables in one error, and no secret value."""
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert caught.value.missing == [BOT_TOKEN_OR_OAUTH, "ANTHROPIC_API_KEY", "SLACK_SIGNING_SECRET"]


def test_socket_mode_needs_no_signing_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """With an app token the signing secret is optional."""
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-1")
    monkeypatch.setenv("SLACK_APP_TOKEN", "xapp-1")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "k")
    assert load_settings().slack_signing_secret is None


def test_invalid_values_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bad PORT is reported with the variable's name, not a traceback."""
    for name, value in REQUIRED.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PORT", "not-a-port")
    with pytest.raises(ConfigError, match="PORT"):
        load_settings()


def test_python_m_bot_exits_2_with_one_clear_message(tmp_path: Path) -> None:
    """`python -m bot` with settings missing prints one line naming them, no traceback, and exits with 2."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "ANTHROPIC_", "REDIS_"))}
    env["SLACK_BOT_TOKEN"] = "xoxb-must-not-leak"
    env["PYTHONPATH"] = str(REPO_ROOT)
    result = subprocess.run(
        [sys.executable, "-m", "bot"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "ANTHROPIC_API_KEY" in lines[0] and "SLACK_SIGNING_SECRET" in lines[0]
    assert "xoxb-must-not-leak" not in result.stderr + result.stdout


def test_python_m_bot_rejects_unknown_arguments(tmp_path: Path) -> None:
    """An unknown mode is a usage error with exit code 2."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "bot", "serve-everything"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "usage" in result.stderr


@pytest.mark.parametrize(
    ("ours", "theirs", "expected"),
    [("DEBUG", None, "INFO"), ("INFO", None, "INFO"), ("WARNING", None, "WARNING"), ("DEBUG", "DEBUG", "DEBUG")],
)
def test_libraries_log_at_info_or_above_unless_asked(
    monkeypatch: pytest.MonkeyPatch, ours: str, theirs: str | None, expected: str
) -> None:
    """LOG_LEVEL=DEBUG leaves the libraries at INFO (their DEBUG lines hold whole requests); only
    LOG_LEVEL_LIBRARIES lowers them."""
    for name, value in {**REQUIRED, "LOG_LEVEL": ours}.items():
        monkeypatch.setenv(name, value)
    if theirs is not None:
        monkeypatch.setenv("LOG_LEVEL_LIBRARIES", theirs)
    assert load_settings().library_log_level == expected


def test_log_format_is_text_unless_json_is_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    """LOG_FORMAT defaults to readable text, takes `json`, and refuses anything else by its name."""
    for name, value in REQUIRED.items():
        monkeypatch.setenv(name, value)
    assert load_settings().log_format == "text"
    monkeypatch.setenv("LOG_FORMAT", "json")
    assert load_settings().log_format == "json"
    monkeypatch.setenv("LOG_FORMAT", "logfmt")
    with pytest.raises(ConfigError, match="LOG_FORMAT"):
        load_settings()


def test_an_answer_may_run_to_two_full_calls_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """MAX_OUTPUT_TOKENS defaults to 16,000 (current models write 64k) and MAX_ANSWER_TOKENS to 32,000."""
    for name, value in REQUIRED.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert (settings.max_output_tokens, settings.max_answer_tokens) == (16_000, 32_000)


def test_an_answer_cap_below_one_call_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """MAX_ANSWER_TOKENS below MAX_OUTPUT_TOKENS stops the start, naming both; equal to it is fine."""
    for name, value in REQUIRED.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MAX_OUTPUT_TOKENS", "8000")
    monkeypatch.setenv("MAX_ANSWER_TOKENS", "7999")
    with pytest.raises(ConfigError, match=r"MAX_ANSWER_TOKENS \(.*must be at least MAX_OUTPUT_TOKENS \(8000\)"):
        load_settings()
    monkeypatch.setenv("MAX_ANSWER_TOKENS", "8000")
    assert load_settings().max_answer_tokens == 8000


OAUTH = {"SLACK_CLIENT_ID": "111.222", "SLACK_CLIENT_SECRET": "client-s3cret"}


def _set(monkeypatch: pytest.MonkeyPatch, values: dict[str, str]) -> None:
    for name, value in values.items():
        monkeypatch.setenv(name, value)


def test_a_bot_token_means_one_workspace(monkeypatch: pytest.MonkeyPatch) -> None:
    """SLACK_BOT_TOKEN alone keeps the single-workspace mode."""
    _set(monkeypatch, REQUIRED)
    settings = load_settings()
    assert not settings.oauth_mode
    assert settings.slack_client_secret is None


def test_the_client_id_and_secret_mean_oauth_installs(monkeypatch: pytest.MonkeyPatch) -> None:
    """The client id and secret without a bot token turn on the OAuth mode, asking for the manifest's scopes."""
    _set(monkeypatch, {**REQUIRED, **OAUTH})
    monkeypatch.delenv("SLACK_BOT_TOKEN")
    settings = load_settings()
    assert settings.oauth_mode
    assert settings.slack_bot_token is None
    assert settings.bot_scopes == list(MANIFEST_BOT_SCOPES)
    assert settings.slack_redirect_uri is None


def test_slack_scopes_override_the_manifests(monkeypatch: pytest.MonkeyPatch) -> None:
    """SLACK_SCOPES is a comma-separated list, blanks dropped."""
    _set(monkeypatch, {**REQUIRED, **OAUTH, "SLACK_SCOPES": "chat:write, commands,"})
    monkeypatch.delenv("SLACK_BOT_TOKEN")
    assert load_settings().bot_scopes == ["chat:write", "commands"]


def test_a_bot_token_and_the_oauth_pair_together_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both ways at once is a ConfigError that names the variables, and no secret value."""
    _set(monkeypatch, {**REQUIRED, **OAUTH})
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert "SLACK_BOT_TOKEN and SLACK_CLIENT_ID" in message
    assert "client-s3cret" not in message and "xoxb-1" not in message


def test_a_client_id_without_its_secret_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """Half of the OAuth pair names the missing half."""
    _set(monkeypatch, {"SLACK_CLIENT_ID": "111.222", "SLACK_SIGNING_SECRET": "s", "ANTHROPIC_API_KEY": "k"})
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert caught.value.missing == ["SLACK_CLIENT_SECRET (with SLACK_CLIENT_ID)"]


def test_the_oauth_conflict_is_named_beside_other_bad_values(monkeypatch: pytest.MonkeyPatch) -> None:
    """With another invalid variable too, the error still names the credentials' conflict."""
    _set(monkeypatch, {**REQUIRED, **OAUTH, "PORT": "not-a-port"})
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert any("SLACK_CLIENT_ID" in item for item in caught.value.invalid)
    assert any(item.startswith("PORT") for item in caught.value.invalid)


def test_an_empty_bot_token_counts_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    """SLACK_BOT_TOKEN set to nothing beside the OAuth pair is the OAuth mode, not a conflict."""
    _set(monkeypatch, {**REQUIRED, **OAUTH, "SLACK_BOT_TOKEN": ""})
    settings = load_settings()
    assert settings.oauth_mode and settings.slack_bot_token is None


def test_mcp_servers_are_parsed_and_a_bad_one_is_named_without_its_token(monkeypatch: pytest.MonkeyPatch) -> None:
    """MCP_SERVERS is a JSON list whose tokens stay secret: not in the settings' repr, nor in the startup error."""
    for name, value in REQUIRED.items():
        monkeypatch.setenv(name, value)
    token = "mcp-startup-secret"
    monkeypatch.setenv("MCP_SERVERS", f'[{{"name": "docs", "url": "https://mcp.example.com/", "token": "{token}"}}]')
    settings = load_settings()
    [docs] = settings.mcp_server_list
    assert (docs.name, docs.token) == ("docs", token)
    assert token not in repr(settings)
    monkeypatch.setenv("MCP_SERVERS", f'[{{"name": "docs", "url": "http://mcp.example.com/", "token": "{token}"}}]')
    with pytest.raises(ConfigError, match=r"MCP_SERVERS.*https") as refused:
        load_settings()
    assert token not in str(refused.value)
    with pytest.raises(ValidationError) as raw:  # built directly, the pydantic error does not quote it either
        Settings()
    assert token not in str(raw.value)


def test_channel_models_must_fit_slacks_menu_and_be_model_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    """CHANNEL_MODELS fills the /agent config menu (100 options at most, the default one of them) and is stored in
    a channel's configuration: too many, or something that is not a model id, is refused at start."""
    for name, value in REQUIRED.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CHANNEL_MODELS", "claude-opus-4-5, claude-haiku-4-5")
    assert load_settings().models_for_channels == ["claude-opus-4-5", "claude-haiku-4-5"]
    for bad in (",".join(f"claude-m-{n}" for n in range(100)), "claude opus", "x" * 101):
        monkeypatch.setenv("CHANNEL_MODELS", bad)
        with pytest.raises(ConfigError, match="CHANNEL_MODELS"):
            load_settings()
