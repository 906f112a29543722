"""The deploy files agree with the code: manifest, Procfile, app.json, requirements."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from bot.runtime.settings import MANIFEST_BOT_SCOPES, Settings

ROOT = Path(__file__).resolve().parents[2]


def test_manifest_has_the_scopes_events_and_command_the_bot_needs() -> None:
    """manifest.yml asks for every scope and event the bot uses and points everything at /slack/events."""
    manifest = yaml.safe_load((ROOT / "manifest.yml").read_text())
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    assert scopes == {
        "app_mentions:read",
        "assistant:write",
        "channels:history",
        "groups:history",
        "im:history",
        "chat:write",
        "commands",
        "files:read",
        "reactions:write",
        "search:read.public",
        "users:read",
    }
    events = manifest["settings"]["event_subscriptions"]
    assert set(events["bot_events"]) == {
        "agent_session_stopped",
        "agent_session_title_changed",
        "app_home_opened",
        "app_mention",
        "app_uninstalled",
        "message.channels",
        "message.groups",
        "message.im",
        "tokens_revoked",
    }
    [command] = manifest["features"]["slash_commands"]
    assert command["command"] == "/agent" and command["usage_hint"]
    urls = [events["request_url"], manifest["settings"]["interactivity"]["request_url"], command["url"]]
    assert all(url.endswith("/slack/events") for url in urls)
    assert manifest["features"]["bot_user"]["display_name"]


def test_every_event_the_bot_listens_for_is_subscribed_in_the_manifest() -> None:
    """Slack sends an event only to an app subscribed to it: each `.event("...")` listener's type is in bot_events
    (`message` as its message.* channel types)."""
    listened = set()
    for path in sorted((ROOT / "handlers").glob("*.py")):
        listened |= set(re.findall(r'\.event\("([a-z_]+)"\)', path.read_text()))
    manifest = yaml.safe_load((ROOT / "manifest.yml").read_text())
    subscribed = set(manifest["settings"]["event_subscriptions"]["bot_events"])
    assert "app_uninstalled" in listened and "message" in listened  # the search finds the listeners
    assert {"message" if event.startswith("message.") else event for event in subscribed} == listened


def test_manifest_declares_an_agent_with_its_messages_tab() -> None:
    """The app is an agent (agent_view, not the legacy assistant_view) whose Messages tab people can write in, and
    it does not subscribe to assistant_thread_started, which agent apps replace with app_home_opened."""
    manifest = yaml.safe_load((ROOT / "manifest.yml").read_text())
    features = manifest["features"]
    assert features["agent_view"]["agent_description"] and "assistant_view" not in features
    home = features["app_home"]
    assert home["messages_tab_enabled"] is True and home["messages_tab_read_only_enabled"] is False
    assert "assistant_thread_started" not in manifest["settings"]["event_subscriptions"]["bot_events"]


def test_procfile_runs_the_web_and_worker_processes() -> None:
    """Heroku starts `python -m bot` for web and `python -m bot worker` for workers."""
    lines = dict(line.split(": ", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line)
    assert lines == {"web": "python -m bot", "worker": "python -m bot worker"}


def test_app_json_asks_for_the_required_settings_and_redis() -> None:
    """The Deploy button asks for every required setting by its real name and adds Redis."""
    app = json.loads((ROOT / "app.json").read_text())
    required = {name for name, spec in app["env"].items() if spec.get("required")}
    assert required == {"SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "ANTHROPIC_API_KEY"}
    known = {name.upper() for name in Settings.model_fields}
    assert set(app["env"]) <= known
    assert any(addon["plan"].startswith("heroku-redis") for addon in app["addons"])


def test_app_json_turns_tls_verification_off_for_heroku_redis() -> None:
    """Heroku Redis's certificates are self-signed, so the Deploy button sets REDIS_TLS_VERIFY=false with it."""
    app = json.loads((ROOT / "app.json").read_text())
    assert any(addon["plan"].startswith("heroku-redis") for addon in app["addons"])
    assert app["env"]["REDIS_TLS_VERIFY"]["value"] == "false"
    assert Settings.model_fields["redis_tls_verify"].default is True  # verified everywhere else


def test_every_setting_is_documented_in_the_readme() -> None:
    """Each Settings field appears, by its environment name, in the README's settings table."""
    readme = (ROOT / "README.md").read_text()
    documented = set(re.findall(r"^\| `([A-Z_]+)` \|", readme, flags=re.MULTILINE))
    assert documented == {name.upper() for name in Settings.model_fields}


def test_requirements_pin_every_runtime_dependency() -> None:
    """requirements.txt (what Heroku installs) pins each dependency pyproject.toml names."""
    pins = {
        re.split(r"[=<>; ]", line)[0].lower().replace("_", "-")
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line and not line.startswith("#")
    }
    pyproject = (ROOT / "pyproject.toml").read_text()
    block = pyproject.split("dependencies = [", 1)[1].split("]", 1)[0]
    names = {re.split(r"[=<>;\[ ]", entry.strip().strip('",'))[0].lower() for entry in re.findall(r'"[^"]+"', block)}
    assert names <= pins


def test_the_oauth_installs_ask_for_the_manifests_scopes() -> None:
    """SLACK_SCOPES' default asks for exactly manifest.yml's bot scopes."""
    manifest = yaml.safe_load((ROOT / "manifest.yml").read_text())
    assert list(MANIFEST_BOT_SCOPES) == manifest["oauth_config"]["scopes"]["bot"]
