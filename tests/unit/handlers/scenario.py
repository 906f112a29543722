"""Helpers for scenario tests: the real Bolt app built by the composition root, fed signed requests."""

from __future__ import annotations

from typing import Any

from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from bot.runtime.app import Bot
from bot.runtime.settings import Settings
from tests.fakes import FakeSlack, signed_event_request, signed_form_request

SECRET = "unit-signing-secret"


def settings_for(slack: FakeSlack, **overrides: Any) -> Settings:
    """Settings pointing at the fake Slack; the Anthropic URL is a closed port (handlers never call it)."""
    values: dict[str, Any] = {
        "slack_bot_token": slack.bot_token,
        "slack_signing_secret": SECRET,
        "slack_api_url": slack.api_url,
        "anthropic_api_key": "unused",
        "anthropic_base_url": "http://127.0.0.1:9",
        "dyno": "test.1",
    }
    return Settings(**{**values, **overrides})


async def dispatch(bot: Bot, envelope: dict[str, Any], secret: str = SECRET, **retry: Any) -> int:
    """Dispatch a signed Events API envelope; returns Bolt's HTTP status."""
    body, headers = signed_event_request(envelope, secret, **retry)
    response = await bot.bolt.async_dispatch(AsyncBoltRequest(body=body, headers=headers))
    return response.status


async def dispatch_command(bot: Bot, form_body: str) -> BoltResponse:
    """Dispatch a signed slash-command form body; returns Bolt's response."""
    headers = signed_form_request(form_body, SECRET)
    return await bot.bolt.async_dispatch(AsyncBoltRequest(body=form_body, headers=headers))
