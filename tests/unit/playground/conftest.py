"""Fixtures of the emulator's tests: a workspace with Slack's agent features, and a Web API client on it."""

from __future__ import annotations

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes import FakeSlack


@pytest.fixture
def agent_features(slack: FakeSlack) -> None:
    """The workspace has Slack's agent features (the shared `slack` fixture plays one without them)."""
    slack.agent_features = True


@pytest.fixture
def web(slack: FakeSlack) -> AsyncWebClient:
    """A slack_sdk client on the emulator."""
    return AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
