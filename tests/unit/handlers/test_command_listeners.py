"""Scenario tests of `/agent` and its buttons: signed requests through the real Bolt app, a real Redis."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from redis.asyncio import Redis
from slack_bolt.request.async_request import AsyncBoltRequest

from bot.runtime.app import Bot, build_bot
from bot.tasks.channel_reset import ChannelResetter
from handlers.links import ThreadLink, parse_thread_link
from handlers.views import CANCEL_CHANNEL_RESET, CONFIRM_CHANNEL_RESET
from store.journal import Fold, TaskJournal
from store.models import CHANNEL_WIDE, Task, TaskKind, TaskStatus, ThreadRef, Turn, Usage
from store.tasks import ResetResult, TaskQueue
from store.threads import ThreadStore, window
from tests.fakes import (
    FakeSlack,
    block_actions_form,
    signed_form_request,
    slash_command_form,
)
from tests.unit.handlers.scenario import SECRET, dispatch_command, settings_for
from tests.unit.store.conftest import SPACE, lease_on, make_groups

CHANNEL = "C0GENERAL"
OTHER_CHANNEL = "C0RANDOM"
THREAD_TS = "1700000000.000100"
SECOND_TS = "1700000500.000100"
USAGE = Usage(input_tokens=7, output_tokens=3, model_calls=1, cache_read_tokens=93, cost_microusd=1234)


@pytest.fixture
def bot(slack: FakeSlack, redis: Redis) -> Bot:
    """The app with U0ALICE, who runs these commands, among ADMIN_USER_IDS (tests/unit/handlers/test_admins.py
    has the rest of the people)."""
    return build_bot(settings_for(slack, admin_user_ids="U0ALICE"), redis)


def link(ts: str = THREAD_TS, channel: str = CHANNEL, *, reply_ts: str | None = None) -> str:
    """A message link as Slack's "Copy link" gives it (a reply's link names its thread)."""
    if reply_ts is None:
        return f"<https://fake-team.slack.com/archives/{channel}/p{ts.replace('.', '')}>"
    return f"<https://fake-team.slack.com/archives/{channel}/p{reply_ts.replace('.', '')}?thread_ts={ts}&cid={channel}>"


async def seed_agent(
    redis: Redis, team_id: str, thread_ts: str = THREAD_TS, channel: str = CHANNEL, summary: str = ""
) -> ThreadRef:
    """A thread whose agent answered once."""
    ref = ThreadRef(team_id, channel, thread_ts)
    queue, journal = TaskQueue(redis, SPACE), TaskJournal(redis, SPACE)
    await make_groups(queue)
    await queue.submit(Task(f"Ev{channel}{thread_ts}", TaskKind.ANSWER, ref, "q", "U1", thread_ts, time.time()))
    lease = await lease_on(queue, ref, consumer="test.1")
    task = await queue.head(ref)
    assert task is not None
    turns = [Turn("user", "q"), Turn("assistant", "a")]
    fold = Fold(evict=0, summary=summary) if summary else None
    await journal.finish(lease, task, TaskStatus.DONE, turns=turns, usage=USAGE, fold=fold)
    assert journal.released(lease)
    return ref


async def thread_keys(redis: Redis, ref: ThreadRef) -> int:
    """How many turns the thread's agent remembers (its state hash's window; 0 without an agent)."""
    return len(window(await redis.hgetall(SPACE.state(ref))))


async def channel_usage_kept(redis: Redis, team_id: str, channel: str) -> bool:
    """Whether any shard holds usage counters of the channel."""
    return bool(await redis.exists(*(SPACE.channel_usage(team_id, channel, shard) for shard in range(SPACE.shards))))


async def run_command(bot: Bot, slack: FakeSlack, text: str, channel_id: str = CHANNEL) -> dict[str, Any]:
    """The ephemeral answer Bolt acknowledges an `/agent` command with (text and blocks)."""
    form = slash_command_form(
        "/agent",
        text,
        team_id=slack.team_id,
        channel_id=channel_id,
        user_id="U0ALICE",
        response_url=slack.response_url(),
    )
    response = await dispatch_command(bot, form)
    assert response.status == 200
    body: dict[str, Any] = json.loads(response.body)
    assert body["response_type"] == "ephemeral"
    return body


def shown(body: dict[str, Any]) -> str:
    """Everything the person sees: the text and every block's text."""
    return body["text"] + "\n" + json.dumps(body.get("blocks", []), ensure_ascii=False)


@pytest.mark.parametrize("text", ["", "help", "HELP", "frobnicate the agents"])
async def test_help_empty_and_unknown_words_show_usage(bot: Bot, slack: FakeSlack, text: str) -> None:
    body = await run_command(bot, slack, text)
    assert "/agent status <link to a thread>" in body["text"] and "/agent reset" in body["text"]


async def test_channel_overview(bot: Bot, slack: FakeSlack, redis: Redis) -> None:
    """Counts, the channel's agents with links, turns, tokens, cost and activity; the queue and the workers."""
    empty = await run_command(bot, slack, "status")
    assert "No agents" in empty["text"] and "none alive" in shown(empty)  # no worker has read the queue yet
    await seed_agent(redis, slack.team_id, THREAD_TS)
    await seed_agent(redis, slack.team_id, SECOND_TS)
    await seed_agent(redis, slack.team_id, "1700000900.000100", channel=OTHER_CHANNEL)
    await seed_agent(redis, "T0ELSEWHERE", "1700000800.000100")
    await TaskQueue(redis).mark_alive("worker.1")
    queued = ThreadRef(slack.team_id, CHANNEL, "1700000700.000100")  # mentioned, not answered yet
    await TaskQueue(redis).submit(Task("EvQ", TaskKind.ANSWER, queued, "q", "U1", queued.thread_ts, time.time()))
    body = await run_command(bot, slack, "status")
    text = shown(body)
    assert body["text"].startswith("3 agent(s)")
    assert "3 · 0 working · 1 queued · 0 failing" in text
    assert "1 thread(s) of this workspace waiting or in progress" in text  # not the other workspace's
    assert "1 alive (worker.1)" in text
    assert "200 tokens in, 93% read from cache, 6 out, 2 model calls, about $0.0025" in text
    assert f"https://fake-team.slack.com/archives/{CHANNEL}/p1700000000000100" in text
    assert "1700000900" not in text and "1700000800" not in text  # other channel, other workspace


async def test_thread_detail_by_link(bot: Bot, slack: FakeSlack, redis: Redis) -> None:
    """Status, the running task and its step, tasks, turns, summary excerpt, usage, created and last active."""
    ref = await seed_agent(redis, slack.team_id, summary="Alice wants the Q3 report by Friday. " * 20)
    queue = TaskQueue(redis, SPACE)
    await queue.submit(Task("EvNow", TaskKind.ANSWER, ref, "next", "U1", "1700000001.000100", time.time()))
    lease = await lease_on(queue, ref, consumer="test.1")
    task = await queue.head(ref)
    assert task is not None
    journal = TaskJournal(redis, SPACE)
    await journal.start(lease, task)
    await journal.record_step(lease, task, {"kind": "model", "content": []})
    await journal.record_step(lease, task, {"kind": "tool", "name": "read_thread", "tool_use_id": "t1", "result": ""})
    for text in (f"status {link()}", f"status {link(reply_ts='1700000002.000100')}"):
        shown_text = shown(await run_command(bot, slack, text))
        assert "answer (running, attempt 1, 2 step(s) done, last: tool:read_thread)" in shown_text
        assert "1 done, 0 stopped, 0 failed" in shown_text and "2 (0 summarized)" in shown_text
        assert "Alice wants the Q3 report by Friday." in shown_text and "…" in shown_text
        assert "100 tokens in, 93% read from cache" in shown_text and "Created" in shown_text


async def test_bad_links_get_clear_messages(bot: Bot, slack: FakeSlack, redis: Redis) -> None:
    lone = slack.post_user_message(CHANNEL, "just a message", user="U0ALICE")["event"]["ts"]
    assert "could not read that as a link" in (await run_command(bot, slack, "status not-a-link"))["text"]
    assert "another channel" in (await run_command(bot, slack, f"reset {link(channel=OTHER_CHANNEL)}"))["text"]
    assert "not in a thread" in (await run_command(bot, slack, f"status {link(lone)}"))["text"]
    assert "cannot find that message" in (await run_command(bot, slack, f"reset {link('1600000000.000001')}"))["text"]
    in_thread = link(THREAD_TS, reply_ts="1700000001.000100")
    assert "has no agent" in (await run_command(bot, slack, f"reset {in_thread}"))["text"]
    assert await redis.dbsize() == 0


async def test_reset_by_link_clears_that_thread_only(bot: Bot, slack: FakeSlack, redis: Redis) -> None:
    """The linked thread's agent is gone and a reset task will tell the thread; nothing else is touched."""
    target = await seed_agent(redis, slack.team_id, THREAD_TS)
    sibling = await seed_agent(redis, slack.team_id, SECOND_TS)
    other_channel = await seed_agent(redis, slack.team_id, THREAD_TS, channel=OTHER_CHANNEL)
    other_team = await seed_agent(redis, "T0ELSEWHERE", THREAD_TS)
    body = await run_command(bot, slack, f"reset {link()}")
    assert "Reset the agent of" in body["text"]
    assert await thread_keys(redis, target) == 0
    for untouched in (sibling, other_channel, other_team):
        assert await thread_keys(redis, untouched) == 2
    [task_id] = await redis.lrange(SPACE.inbox(target), 0, -1)
    assert await redis.hget(SPACE.task(target, task_id), "kind") == "reset"
    assert await redis.hget(SPACE.task(target, task_id), "user_id") == "U0ALICE"
    overview = shown(await run_command(bot, slack, "status"))
    assert "1700000000000100" not in overview and "1700000500000100" in overview


async def test_reset_without_link_asks_first(bot: Bot, slack: FakeSlack, redis: Redis) -> None:
    await seed_agent(redis, slack.team_id)
    before = await redis.dbsize()
    body = await run_command(bot, slack, "reset")
    buttons = next(block for block in body["blocks"] if block["type"] == "actions")["elements"]
    assert [b["action_id"] for b in buttons] == [CONFIRM_CHANNEL_RESET, CANCEL_CHANNEL_RESET]
    assert all(b["value"] == CHANNEL for b in buttons)
    assert await redis.dbsize() == before


async def click(bot: Bot, slack: FakeSlack, action_id: str, channel: str = CHANNEL, value: str = CHANNEL) -> str:
    """Click a button of the confirmation; returns the response_url the answer goes to."""
    payload, url = slack.click_ephemeral_button(action_id, value, channel=channel, user="U0ALICE")
    form = block_actions_form(payload)
    response = await bot.bolt.async_dispatch(AsyncBoltRequest(body=form, headers=signed_form_request(form, SECRET)))
    assert response.status == 200
    return url


async def answer_at(slack: FakeSlack, url: str) -> dict[str, Any]:
    """The answer posted to a response_url once it is not the "Resetting every agent…" progress note."""
    return await slack.response_at(
        url, unless=lambda body: str(body["text"]).startswith("Resetting every agent"), timeout=5
    )


async def run_channel_reset(redis: Redis, team_id: str, channel: str = CHANNEL) -> None:
    """Run the channel's queued CHANNEL_RESET task as a worker would (the bot's runner is not started here)."""
    queue, journal = TaskQueue(redis, SPACE), TaskJournal(redis, SPACE)
    ref = ThreadRef(team_id, channel, CHANNEL_WIDE)
    lease = await lease_on(queue, ref, consumer="test.1")
    task = await queue.head(ref)
    assert task is not None and task.kind is TaskKind.CHANNEL_RESET
    resetter = ChannelResetter(journal, queue, ThreadStore(redis, SPACE))
    await resetter(lease, task, attempt=await journal.start(lease, task))
    assert journal.released(lease)


async def test_confirm_resets_every_agent_of_the_channel(bot: Bot, slack: FakeSlack, redis: Redis) -> None:
    first = await seed_agent(redis, slack.team_id, THREAD_TS)
    second = await seed_agent(redis, slack.team_id, SECOND_TS)
    other_channel = await seed_agent(redis, slack.team_id, THREAD_TS, channel=OTHER_CHANNEL)
    other_team = await seed_agent(redis, "T0ELSEWHERE", THREAD_TS)
    """The confirmation queues one channel reset (two agents to reset) that, run, resets every agent of the channel
    and its usage totals, and tells each thread; other channels and workspaces keep theirs."""
    answer = await answer_at(slack, await click(bot, slack, CONFIRM_CHANNEL_RESET))
    assert answer["text"].startswith("Resetting 2 agent(s)") and answer["replace_original"] is True
    assert await thread_keys(redis, first) == 2  # queued, not done yet
    await run_channel_reset(redis, slack.team_id)
    assert await thread_keys(redis, first) == 0 and await thread_keys(redis, second) == 0
    for ref in (first, second):
        [task_id] = await redis.lrange(SPACE.inbox(ref), 0, -1)
        assert await redis.hget(SPACE.task(ref, task_id), "kind") == "reset"
    assert not await channel_usage_kept(redis, slack.team_id, CHANNEL)
    assert await thread_keys(redis, other_channel) == 2 and await thread_keys(redis, other_team) == 2
    assert await channel_usage_kept(redis, slack.team_id, OTHER_CHANNEL)


async def test_cancel_changes_nothing(bot: Bot, slack: FakeSlack, redis: Redis) -> None:
    await seed_agent(redis, slack.team_id)
    before = {key: await redis.type(key) for key in await redis.keys("*")}
    answer = await answer_at(slack, await click(bot, slack, CANCEL_CHANNEL_RESET))
    assert answer["text"] == "Cancelled: nothing was reset."
    assert {key: await redis.type(key) for key in await redis.keys("*")} == before


async def test_a_button_for_another_channel_resets_nothing(bot: Bot, slack: FakeSlack, redis: Redis) -> None:
    ref = await seed_agent(redis, slack.team_id)
    url = await click(bot, slack, CONFIRM_CHANNEL_RESET, channel=CHANNEL, value=OTHER_CHANNEL)
    assert "another channel" in (await answer_at(slack, url))["text"]
    assert await thread_keys(redis, ref) == 2


async def test_a_slow_redis_still_gets_a_prompt_ack_and_the_answer_later(
    bot: Bot, slack: FakeSlack, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Slack needs the ack within 3 s: past ANSWER_WITHIN the ack says so and the answer follows by response_url."""
    await seed_agent(redis, slack.team_id)
    real_counts = ThreadStore.channel_counts

    async def slow_counts(self: ThreadStore, team_id: str, channel_id: str) -> Any:
        await asyncio.sleep(3.0)  # Redis under load
        return await real_counts(self, team_id, channel_id)

    monkeypatch.setattr(ThreadStore, "channel_counts", slow_counts)
    url = slack.response_url()
    form = slash_command_form(
        "/agent", "status", team_id=slack.team_id, channel_id=CHANNEL, user_id="U0ALICE", response_url=url
    )
    started = time.monotonic()
    response = await dispatch_command(bot, form)
    assert time.monotonic() - started < 2.8
    assert json.loads(response.body)["text"] == "Working on it…"
    answer = await answer_at(slack, url)
    assert answer["text"].startswith("1 agent(s)") and answer["response_type"] == "ephemeral"


def test_thread_links_parse_to_their_thread() -> None:
    """A parent's link gives its own ts; a reply's link gives its thread's ts; other text gives None."""
    assert parse_thread_link(link()) == ThreadLink(CHANNEL, THREAD_TS)
    reply = f"https://x.slack.com/archives/{CHANNEL}/p1700000099000200?thread_ts={THREAD_TS}&cid={CHANNEL}"
    assert parse_thread_link(reply) == ThreadLink(CHANNEL, THREAD_TS, is_reply=True)
    assert parse_thread_link("status please") is None


class CrashesAfterOneReset(TaskQueue):
    """A queue whose process dies (an exception) right after its first reset of the run."""

    resets = 0

    async def reset(self, task: Task) -> ResetResult:
        """Reset, then fail once the first reset is done."""
        result = await super().reset(task)
        self.resets += 1
        if self.resets == 1:
            raise RuntimeError("the process died here")
        return result


async def test_a_channel_reset_that_crashes_half_way_finishes_when_run_again(
    bot: Bot, slack: FakeSlack, redis: Redis
) -> None:
    """The channel reset task dies after resetting one of three agents; run again (as the runner retries it), it
    resets the others, each thread once (one reset task in each inbox), and the usage totals go."""
    refs = [await seed_agent(redis, slack.team_id, ts) for ts in (THREAD_TS, SECOND_TS, "1700000900.000100")]
    await answer_at(slack, await click(bot, slack, CONFIRM_CHANNEL_RESET))
    journal = TaskJournal(redis, SPACE)
    crashing = CrashesAfterOneReset(redis, SPACE)
    lease = await lease_on(crashing, ThreadRef(slack.team_id, CHANNEL, CHANNEL_WIDE), consumer="test.1")
    for attempt in (1, 2):
        task = await crashing.head(lease.thread)
        assert task is not None and task.kind is TaskKind.CHANNEL_RESET
        resetter = ChannelResetter(journal, crashing, ThreadStore(redis, SPACE))
        if attempt == 1:
            with pytest.raises(RuntimeError):
                await resetter(lease, task, attempt=await journal.start(lease, task))
            assert sum([await thread_keys(redis, ref) == 0 for ref in refs]) == 1  # one reset, the rest untouched
        else:
            await resetter(lease, task, attempt=await journal.start(lease, task))
    assert journal.released(lease)
    for ref in refs:
        assert await thread_keys(redis, ref) == 0
        [task_id] = await redis.lrange(SPACE.inbox(ref), 0, -1)
        assert await redis.hget(SPACE.task(ref, task_id), "kind") == "reset"
    assert not await channel_usage_kept(redis, slack.team_id, CHANNEL)
