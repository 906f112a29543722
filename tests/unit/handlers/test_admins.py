"""Scenario tests of who may do what through `/agent`: admins, the thread's people, and `/agent limits`."""

from __future__ import annotations

import json
import time
from typing import Any

from redis.asyncio import Redis

from bot.runtime.app import Bot, build_bot
from handlers.views import CONFIRM_CHANNEL_RESET
from store import keys
from store.models import CHANNEL_WIDE, ThreadRef
from store.spend import Payer, SpendStore
from tests.fakes import (
    FakeSlack,
    app_mention_event,
    block_actions_form,
    event_envelope,
    slash_command_form,
)
from tests.unit.handlers.scenario import dispatch, dispatch_command, settings_for
from tests.unit.handlers.test_command_listeners import (
    CHANNEL,
    THREAD_TS,
    answer_at,
    link,
    seed_agent,
    shown,
    thread_keys,
)
from tests.unit.metric_values import sample
from tests.unit.store.conftest import SPACE


async def run(bot: Bot, slack: FakeSlack, text: str, user: str) -> dict[str, Any]:
    """The ephemeral answer `/agent TEXT` run by `user` in CHANNEL is acknowledged with."""
    form = slash_command_form(
        "/agent", text, team_id=slack.team_id, channel_id=CHANNEL, user_id=user, response_url=slack.response_url()
    )
    response = await dispatch_command(bot, form)
    assert response.status == 200
    body: dict[str, Any] = json.loads(response.body)
    return body


async def test_a_channel_reset_is_for_admins_only_and_the_refusal_says_who_may(
    bot: Bot, slack: FakeSlack, redis: Redis
) -> None:
    """A member who is no admin gets no confirmation buttons but the list of who may; a click on a confirmation
    they got hold of resets nothing either."""
    slack.add_user("U0BOB", "bob")
    ref = await seed_agent(redis, slack.team_id)
    body = await run(bot, slack, "reset", "U0BOB")
    assert body["text"] == "Only the workspace's admins and owners may reset every agent of a channel."
    assert not body.get("blocks")
    payload, url = slack.click_ephemeral_button(CONFIRM_CHANNEL_RESET, CHANNEL, channel=CHANNEL, user="U0BOB")
    form = block_actions_form(payload)
    await dispatch_command(bot, form)
    assert (await answer_at(slack, url))["text"].startswith("Only the workspace's admins")
    assert await thread_keys(redis, ref) == 2
    assert not await redis.exists(SPACE.inbox(ThreadRef(slack.team_id, CHANNEL, CHANNEL_WIDE)))  # nothing queued


async def test_workspace_admins_and_owners_may_and_slack_is_asked_once(
    bot: Bot, slack: FakeSlack, redis: Redis
) -> None:
    """users.info's is_admin, is_owner and is_primary_owner each make an admin; the answer is cached in Redis."""
    slack.add_user("U0ADMIN", "ada", is_admin=True)
    slack.add_user("U0OWNER", "olga", is_owner=True)
    slack.add_user("U0PRIME", "pat", is_primary_owner=True)
    for user in ("U0ADMIN", "U0OWNER", "U0PRIME", "U0ADMIN"):
        body = await run(bot, slack, "reset", user)
        assert "Reset *every* agent" in body["text"], user
    assert [call["user"] for call in slack.calls_to("users.info")] == ["U0ADMIN", "U0OWNER", "U0PRIME"]
    assert 0 < await redis.ttl(keys.admin_role(slack.team_id, "U0ADMIN")) <= keys.ADMIN_ROLE_TTL


async def test_admin_user_ids_alone_when_workspace_admins_are_not_admins(slack: FakeSlack, redis: Redis) -> None:
    """WORKSPACE_ADMINS_ARE_ADMINS=false: a workspace admin is refused and Slack is not asked; ADMIN_USER_IDS may."""
    bot = build_bot(settings_for(slack, admin_user_ids="U0ROOT", workspace_admins_are_admins=False), redis)
    slack.add_user("U0ADMIN", "ada", is_admin=True)
    assert (await run(bot, slack, "reset", "U0ADMIN"))["text"] == ("Only <@U0ROOT> may reset every agent of a channel.")
    assert "Reset *every* agent" in (await run(bot, slack, "reset", "U0ROOT"))["text"]
    assert not slack.calls_to("users.info")


async def test_a_thread_is_reset_by_its_starter_or_a_participant_not_by_a_stranger(
    bot: Bot, slack: FakeSlack, redis: Redis
) -> None:
    """Who started the thread or wrote in it may reset its agent; anyone else is told who may."""
    slack.add_message(CHANNEL, "question", user="U0ANN", ts=THREAD_TS)
    slack.add_message(CHANNEL, "me too", user="U0BEN", thread_ts=THREAD_TS)
    ref = await seed_agent(redis, slack.team_id)
    refused = await run(bot, slack, f"reset {link()}", "U0CAL")
    assert refused["text"] == (
        "Only the workspace's admins and owners and the people who started or wrote in the thread may reset that "
        "thread's agent."
    )
    assert await thread_keys(redis, ref) == 2
    for user in ("U0BEN", "U0ANN"):
        assert "Reset the agent of" in (await run(bot, slack, f"reset {link()}", user))["text"]
        ref = await seed_agent(redis, slack.team_id)


async def test_limits_are_shown_to_anyone_and_changed_by_admins_only(slack: FakeSlack, redis: Redis) -> None:
    """Anyone sees the limits in force; a non-admin's change is refused; an admin's is stored, shown and undone
    with `default`; a bad name or value changes nothing."""
    bot = build_bot(settings_for(slack, admin_user_ids="U0ROOT", daily_budget_usd_per_user=2), redis)
    shown_to_all = (await run(bot, slack, "limits", "U0BOB"))["text"]
    assert "`user_daily_usd`: $2.00 (setting)" in shown_to_all and "`channel_daily_usd`: off (setting)" in shown_to_all
    refused = await run(bot, slack, "limits user_daily_usd 100", "U0BOB")
    assert refused["text"] == "Only <@U0ROOT> and the workspace's admins and owners may change the limits."
    assert not await redis.exists(keys.limits(slack.team_id))
    changed = (await run(bot, slack, "limits user_daily_usd 7.5", "U0ROOT"))["text"]
    assert changed.startswith("`user_daily_usd` is now $7.50.") and "$7.50 (set by an admin)" in changed
    assert await redis.hget(keys.limits(slack.team_id), "user_daily_usd") == "7.5"
    assert (await run(bot, slack, "limits user_daily_usd lots", "U0ROOT"))["text"].startswith("Nothing changed:")
    assert "no limit called `budget`" in (await run(bot, slack, "limits budget 5", "U0ROOT"))["text"]
    back = (await run(bot, slack, "limits user_daily_usd default", "U0ROOT"))["text"]
    assert back.startswith("`user_daily_usd` is back to its setting.") and "$2.00 (setting)" in back


async def test_a_workspace_admin_may_tighten_a_limit_but_not_lift_the_operators_setting(
    slack: FakeSlack, redis: Redis
) -> None:
    """The settings are the operator's ceilings: a workspace admin may lower a budget, not raise it past its setting
    or turn it off; an operator (ADMIN_USER_IDS) may."""
    slack.add_user("U0ADA", "ada", is_admin=True)
    bot = build_bot(settings_for(slack, admin_user_ids="U0ROOT", daily_budget_usd_per_user=2), redis)
    for lifted in ("limits user_daily_usd 100", "limits user_daily_usd off"):
        refused = (await run(bot, slack, lifted, "U0ADA"))["text"]
        assert refused.startswith("Nothing changed: only the app's operators (ADMIN_USER_IDS) may raise")
    assert not await redis.exists(keys.limits(slack.team_id))
    assert (await run(bot, slack, "limits user_daily_usd 1", "U0ADA"))["text"].startswith("`user_daily_usd` is now")
    assert (await run(bot, slack, "limits user_daily_usd 100", "U0ROOT"))["text"].startswith("`user_daily_usd` is now")
    assert await redis.hget(keys.limits(slack.team_id), "user_daily_usd") == "100.0"


async def test_an_admin_of_another_workspace_is_no_admin_here(slack: FakeSlack, redis: Redis) -> None:
    """A Slack Connect member whose users.info says admin (of their own organisation) may not reset a channel here."""
    slack.add_user("U0GUEST", "gus", is_admin=True, is_owner=True, team_id="T0OTHERORG")
    bot = build_bot(settings_for(slack, admin_user_ids="U0ROOT"), redis)
    refused = (await run(bot, slack, "reset", "U0GUEST"))["text"]
    assert refused == "Only <@U0ROOT> and the workspace's admins and owners may reset every agent of a channel."


async def test_status_shows_todays_spend_against_each_budget(slack: FakeSlack, redis: Redis) -> None:
    """`/agent status` shows what the asker, the channel and the workspace spent today, and their budgets."""
    bot = build_bot(settings_for(slack, daily_budget_usd_per_user=1, daily_budget_usd_per_workspace=50), redis)
    await SpendStore(redis).add(Payer(slack.team_id, CHANNEL, "U0BOB"), 250_000, time.time())
    await SpendStore(redis).add(Payer(slack.team_id, "C0ELSE", "U0BOB"), 1_000_000, time.time())
    text = shown(await run(bot, slack, "status", "U0BOB"))
    assert "*Spent today* (UTC, resets in" in text
    assert "You $1.25 of $1.00 · This channel $0.2500 (no limit) · The workspace $1.25 of $50.00" in text


async def test_the_reset_and_stop_words_in_a_thread_are_for_admins_and_the_threads_people(
    bot: Bot, slack: FakeSlack, redis: Redis
) -> None:
    """`@bot reset` and `@bot stop` from someone who had not written in the thread are refused with a notice saying
    who may (counted), and the agent is kept; from the person who started it, a reset resets."""
    slack.add_message(CHANNEL, "question", user="U0ANN", ts=THREAD_TS)
    ref = await seed_agent(redis, slack.team_id)
    before = sample("slack_agent_mentions_total", outcome="refused", reason="permission")
    for word in ("reset", "stop"):
        event = app_mention_event(f"<@{slack.bot_user_id}> {word}", user="U0CAL", channel=CHANNEL, thread_ts=THREAD_TS)
        assert await dispatch(bot, event_envelope(event, team_id=slack.team_id)) == 200
    notices = [
        text
        for task_id in await redis.lrange(SPACE.inbox(ref), 0, -1)
        for kind, text in [await redis.hmget(SPACE.task(ref, task_id), "kind", "text")]
        if kind == "notice"
    ]
    assert notices == [
        "Only the workspace's admins and owners and the people who started or wrote in the thread may reset this "
        "thread's agent.",
        "Only the workspace's admins and owners and the people who started or wrote in the thread may stop this "
        "thread's answer.",
    ]
    assert await thread_keys(redis, ref) == 2 and not slack.calls_to("chat.postMessage")
    assert sample("slack_agent_mentions_total", outcome="refused", reason="permission") == before + 2
    event = app_mention_event(f"<@{slack.bot_user_id}> reset", user="U0ANN", channel=CHANNEL, thread_ts=THREAD_TS)
    assert await dispatch(bot, event_envelope(event, team_id=slack.team_id)) == 200
    assert await thread_keys(redis, ref) == 0


async def test_a_rate_limit_an_admin_sets_with_agent_limits_is_the_gates(slack: FakeSlack, redis: Redis) -> None:
    """`/agent limits user_per_minute 1` turns the gate's per-person limit on without a restart: the person's second
    mention in the minute is refused with the gate's notice."""
    bot = build_bot(settings_for(slack, admin_user_ids="U0ROOT"), redis)
    assert (await run(bot, slack, "limits user_per_minute 1", "U0ROOT"))["text"].startswith(
        "`user_per_minute` is now 1."
    )
    envelopes = [slack.post_user_message(CHANNEL, f"<@{slack.bot_user_id}> q{n}", mention=True) for n in (1, 2)]
    for envelope in envelopes:
        assert await dispatch(bot, envelope) == 200
    kinds = []
    for envelope in envelopes:
        ref = ThreadRef(slack.team_id, CHANNEL, envelope["event"]["ts"])
        for task_id in await redis.lrange(SPACE.inbox(ref), 0, -1):
            kinds.append(await redis.hmget(SPACE.task(ref, task_id), "kind", "text"))
    assert kinds[0] == ["answer", "q1"]
    assert kinds[1][0] == "notice" and "limit of 1 mentions a minute" in kinds[1][1]
