"""The OAuth mode's Bolt settings: Slack's pages on SLACK_API_URL's host, the paths fixed, the stores in Redis."""

from __future__ import annotations

from redis.asyncio import Redis

from bot.runtime.settings import MANIFEST_BOT_SCOPES, Settings
from bot.runtime.workspaces import INSTALL_PATH, REDIRECT_PATH, authorization_url, build_oauth_settings
from handlers.installation_store import RedisInstallationStore, RedisOAuthStateStore


def oauth_settings(**overrides: str) -> Settings:
    fields = {
        "slack_client_id": "111.222",
        "slack_client_secret": "client-s3cret",
        "slack_signing_secret": "s",
        "anthropic_api_key": "k",
        **overrides,
    }
    return Settings(**fields)  # type: ignore[arg-type]  # pydantic parses the strings


def test_slacks_authorize_page_is_on_the_api_hosts_origin() -> None:
    """slack.com's API gives slack.com's authorize page; a fake's API URL gives the fake's."""
    assert authorization_url("https://slack.com/api/") == "https://slack.com/oauth/v2/authorize"
    assert authorization_url("http://127.0.0.1:8123/api/") == "http://127.0.0.1:8123/oauth/v2/authorize"


def test_the_oauth_settings_carry_the_apps_credentials_and_the_redis_stores() -> None:
    """Bolt gets the client id and secret, the manifest's scopes, the fixed paths and the Redis stores."""
    redis = Redis()  # never connected: the stores only keep it
    bolt_settings = build_oauth_settings(oauth_settings(slack_api_url="http://127.0.0.1:9/api/"), redis)
    assert (bolt_settings.client_id, bolt_settings.client_secret) == ("111.222", "client-s3cret")
    assert bolt_settings.scopes == list(MANIFEST_BOT_SCOPES)
    assert (bolt_settings.install_path, bolt_settings.redirect_uri_path) == (INSTALL_PATH, REDIRECT_PATH)
    assert bolt_settings.redirect_uri is None
    assert bolt_settings.authorize_url_generator.authorization_url == "http://127.0.0.1:9/oauth/v2/authorize"
    assert isinstance(bolt_settings.installation_store, RedisInstallationStore)
    assert isinstance(bolt_settings.state_store, RedisOAuthStateStore)
