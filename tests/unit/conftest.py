"""Fixtures shared by the unit tests."""

from __future__ import annotations

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from handlers.gateway import WebApiGateway
from tests.fakes import FakeSlack


@pytest.fixture
def gateway(slack: FakeSlack) -> WebApiGateway:
    """The gateway the bot uses, on a real slack_sdk client pointed at the Slack emulator."""
    return WebApiGateway(AsyncWebClient(token=slack.bot_token, base_url=slack.api_url))
