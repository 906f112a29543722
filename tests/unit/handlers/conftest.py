"""Fixtures for scenario tests of the Slack listeners."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from bot.runtime.app import Bot, build_bot
from tests.fakes import FakeSlack
from tests.unit.handlers.scenario import settings_for


@pytest.fixture
def bot(slack: FakeSlack, redis: Redis) -> Bot:
    """The app as the composition root builds it, on the test Redis; its runner is not started."""
    return build_bot(settings_for(slack), redis)
