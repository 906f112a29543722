"""Scenario tests of `/agent memory` and its buttons: signed requests through the real Bolt app, a real Redis."""

from __future__ import annotations

import json
from typing import Any

import pytest
from redis.asyncio import Redis
from slack_bolt.request.async_request import AsyncBoltRequest

from bot.runtime.app import Bot, build_bot
from handlers.memory_views import CLEAR_MEMORY, REMOVE_MEMORY_FILE
from store.memory import MemoryChange, MemoryLimits, MemoryStore
from tests.fakes import FakeSlack, block_actions_form, signed_form_request, slash_command_form
from tests.unit.handlers.scenario import SECRET, dispatch_command, settings_for

CHANNEL = "C0GENERAL"
FILES = {"/memories/team.md": "Ana leads <the> team & Bo runs ops", "/memories/decisions/db.md": "Postgres, 2026"}


@pytest.fixture
def bot(slack: FakeSlack, redis: Redis) -> Bot:
    """The app with U0ALICE its only admin (workspace admins are not, so nobody else is)."""
    return build_bot(settings_for(slack, admin_user_ids="U0ALICE", workspace_admins_are_admins=False), redis)


async def seed(redis: Redis, team_id: str, channel: str = CHANNEL) -> MemoryStore:
    store = MemoryStore(redis, MemoryLimits(), ttl_seconds=3600, applied_ttl_seconds=60)
    scope = f"{team_id}:{channel}"
    await store.commit(scope, await store.snapshot(scope), MemoryChange(dict(FILES), "ok"), None)
    return store


async def command(
    bot: Bot, slack: FakeSlack, text: str, *, user: str = "U0ALICE", channel: str = CHANNEL
) -> dict[str, Any]:
    form = slash_command_form(
        "/agent", text, team_id=slack.team_id, channel_id=channel, user_id=user, response_url=slack.response_url()
    )
    response = await dispatch_command(bot, form)
    assert response.status == 200
    body: dict[str, Any] = json.loads(response.body)
    assert body["response_type"] == "ephemeral"
    return body


def shown(body: dict[str, Any]) -> str:
    return body["text"] + "\n" + json.dumps(body.get("blocks", []), ensure_ascii=False)


def buttons(body: dict[str, Any]) -> list[dict[str, Any]]:
    found = [block["accessory"] for block in body.get("blocks", []) if "accessory" in block]
    found += [
        element for block in body.get("blocks", []) if block["type"] == "actions" for element in block["elements"]
    ]
    return found


async def test_the_listing_shows_files_sizes_and_escaped_excerpts(bot: Bot, slack: FakeSlack, redis: Redis) -> None:
    """Anyone sees the channel's files with their sizes and an excerpt (escaped for mrkdwn); only admins get buttons."""
    await seed(redis, slack.team_id)
    await seed(redis, slack.team_id, "C0RANDOM")
    body = await command(bot, slack, "memory", user="U0BOB")
    text = shown(body)
    assert "has 2 file(s)" in body["text"]
    assert "/memories/team.md" in text and "Ana leads &lt;the&gt; team &amp; Bo" in text and "(34 bytes)" in text
    assert "`/agent reset` does not clear it" in text
    assert buttons(body) == []
    admin = await command(bot, slack, "memory")
    assert {b["action_id"] for b in buttons(admin)} == {REMOVE_MEMORY_FILE, CLEAR_MEMORY}


async def test_only_admins_change_it_and_remove_takes_a_file_or_folder(
    bot: Bot, slack: FakeSlack, redis: Redis
) -> None:
    """Someone else is told who may; an admin removes a file by its path (with or without /memories)."""
    store = await seed(redis, slack.team_id)
    scope = f"{slack.team_id}:{CHANNEL}"
    refused = await command(bot, slack, "memory clear", user="U0BOB")
    assert "Only <@U0ALICE> may clear" in refused["text"]
    assert len((await store.snapshot(scope)).files) == 2
    removed = await command(bot, slack, "memory remove decisions")
    assert "Removed /memories/decisions" in removed["text"]
    assert list((await store.snapshot(scope)).files) == ["/memories/team.md"]
    assert "Nothing removed" in (await command(bot, slack, "memory remove ../etc"))["text"]


async def test_the_clear_button_empties_this_channel_only(bot: Bot, slack: FakeSlack, redis: Redis) -> None:
    """An admin's click on Clear all empties the channel's memory and shows the empty listing; others keep theirs."""
    store = await seed(redis, slack.team_id)
    await seed(redis, slack.team_id, "C0RANDOM")
    payload, url = slack.click_ephemeral_button(CLEAR_MEMORY, CHANNEL, channel=CHANNEL, user="U0ALICE")
    form = block_actions_form(payload)
    response = await bot.bolt.async_dispatch(AsyncBoltRequest(body=form, headers=signed_form_request(form, SECRET)))
    assert response.status == 200
    answer = await slack.response_at(url, timeout=5)
    assert "Cleared the memory" in answer["text"] and answer["replace_original"] is True
    assert (await store.snapshot(f"{slack.team_id}:{CHANNEL}")).files == {}
    assert len((await store.snapshot(f"{slack.team_id}:C0RANDOM")).files) == 2


async def test_a_dm_has_no_memory(bot: Bot, slack: FakeSlack) -> None:
    """In a DM the command says memory is kept per channel."""
    assert "no memory in direct messages" in (await command(bot, slack, "memory", channel="D0ALICE"))["text"]


async def test_memory_off_says_so(slack: FakeSlack, redis: Redis) -> None:
    """With MEMORY_ENABLED=false the command says memory is off."""
    bot = build_bot(settings_for(slack, memory_enabled=False), redis)
    assert "off in this deployment" in (await command(bot, slack, "memory"))["text"]
