"""Scenario tests of app_uninstalled and tokens_revoked, signed and dispatched through the app the composition root
builds, in both modes."""

from __future__ import annotations

import time

from redis.asyncio import Redis
from slack_sdk.oauth.installation_store.models.installation import Installation

from bot.runtime.app import Bot, build_bot
from playground.payloads import app_uninstalled_event, event_envelope, tokens_revoked_event
from store import keys
from store.models import Task, TaskKind, ThreadRef
from store.tasks import TaskQueue
from tests.fakes import FakeSlack
from tests.unit.handlers.scenario import dispatch, settings_for

THREAD = ThreadRef("T1", "C1", "1700000000.000100")
OTHER_TEAM_THREAD = ThreadRef("T2", "C1", "1700000000.000100")


def oauth_bot(slack: FakeSlack, redis: Redis) -> Bot:
    """The app in OAuth mode (no bot token: Bolt finds each workspace's in the Redis installation store)."""
    return build_bot(
        settings_for(slack, slack_bot_token=None, slack_client_id="111.222", slack_client_secret="client-s3cret"),
        redis,
    )


def installation(team_id: str, user_id: str = "U1") -> Installation:
    """An installation as Bolt's OAuth flow saves it."""
    return Installation(
        app_id="A1",
        team_id=team_id,
        bot_token=f"xoxb-{team_id}",
        bot_id="B1",
        bot_user_id="UBOT",
        bot_scopes="app_mentions:read,chat:write",
        user_id=user_id,
        user_token=f"xoxp-{user_id}",
        installed_at=time.time(),
    )


async def queue_answer(bot: Bot, task_id: str, thread: ThreadRef = THREAD) -> None:
    """Queue an answer in the thread, as intake does for a mention."""
    task = Task(task_id, TaskKind.ANSWER, thread, "hi", "U1", "1700000001.000100", time.time())
    await TaskQueue(bot.redis, bot.space).submit(task)


async def status(bot: Bot, thread: ThreadRef, task_id: str) -> str:
    """A task's recorded status."""
    return str(await bot.redis.hget(bot.space.task(thread, task_id), "status"))


async def test_an_uninstall_cancels_the_workspaces_work_in_single_workspace_mode(bot: Bot, redis: Redis) -> None:
    """In single-workspace mode app_uninstalled cancels the team's queued tasks, and does not mark it as left (a
    reinstall there gives the bot a new token, not an install it could see); another team's work stays queued."""
    await queue_answer(bot, "Ev1")
    await queue_answer(bot, "Ev2", OTHER_TEAM_THREAD)

    assert await dispatch(bot, event_envelope(app_uninstalled_event(), team_id="T1")) == 200

    assert await status(bot, THREAD, "Ev1") == "cancelled"
    assert await status(bot, OTHER_TEAM_THREAD, "Ev2") == "queued"
    assert not await redis.exists(keys.team_left("T1"))
    assert await redis.zscore(keys.LEAVING, "T1") is None


async def test_tokens_revoked_in_single_workspace_mode_is_acknowledged(bot: Bot) -> None:
    """With no installation store there is nothing to forget: the event is acknowledged, nothing else."""
    envelope = event_envelope(tokens_revoked_event(bot_user_ids=["UBOT"], user_ids=[]), team_id="T1")
    assert await dispatch(bot, envelope) == 200


async def test_an_uninstall_in_oauth_mode_forgets_the_installation(slack: FakeSlack, redis: Redis) -> None:
    """In OAuth mode app_uninstalled also deletes the workspace's installation and bot; another workspace keeps its."""
    bot = oauth_bot(slack, redis)
    store = bot.bolt.installation_store
    assert store is not None
    await store.async_save(installation("T1"))
    await store.async_save(installation("T2"))

    assert await dispatch(bot, event_envelope(app_uninstalled_event(), team_id="T1")) == 200

    assert await store.async_find_installation(enterprise_id=None, team_id="T1") is None
    assert await store.async_find_bot(enterprise_id=None, team_id="T1") is None
    assert await store.async_find_installation(enterprise_id=None, team_id="T2") is not None
    assert await redis.exists(keys.team_left("T1"))
    assert await redis.zscore(keys.LEAVING, "T1") is not None


async def test_tokens_revoked_in_oauth_mode_forgets_the_bot_and_the_users_listed(
    slack: FakeSlack, redis: Redis
) -> None:
    """tokens_revoked deletes the listed users' installations and, with a bot listed, the bot; the team is not
    marked as left (that takes app_uninstalled)."""
    bot = oauth_bot(slack, redis)
    store = bot.bolt.installation_store
    assert store is not None
    await store.async_save(installation("T1", "U1"))
    await store.async_save(installation("T1", "U2"))
    envelope = event_envelope(tokens_revoked_event(bot_user_ids=["UBOT"], user_ids=["U2"]), team_id="T1")

    assert await dispatch(bot, envelope) == 200

    assert await store.async_find_bot(enterprise_id=None, team_id="T1") is None
    assert await store.async_find_installation(enterprise_id=None, team_id="T1", user_id="U2") is None
    assert not await redis.exists(keys.team_left("T1"))


async def test_an_install_clears_the_uninstall_mark(slack: FakeSlack, redis: Redis) -> None:
    """A workspace that installs the app again within the grace period is no longer marked or scheduled."""
    bot = oauth_bot(slack, redis)
    store = bot.bolt.installation_store
    assert store is not None
    await store.async_save(installation("T1"))
    assert await dispatch(bot, event_envelope(app_uninstalled_event(), team_id="T1")) == 200

    await store.async_save(installation("T1"))

    assert not await redis.exists(keys.team_left("T1"))
    assert await redis.zscore(keys.LEAVING, "T1") is None
