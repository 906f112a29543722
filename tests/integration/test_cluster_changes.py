"""The bot on a real Redis Cluster that changes under it: slots moving mid-burst, a master failing over.

Every accepted mention must be answered exactly once, with nothing forked (no thread answered twice, no
answer in the wrong thread), and the bot must never meet a cross-slot error: a thread's keys and its shard's
stream share one slot, so they move together.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from redis.crc import key_slot

from store.keys import DEFAULT_SHARDS, shard_tag
from tests.fakes import FakeSlack, wait_until
from tests.integration.conftest import BotFactory
from tests.integration.harness import BotProcess
from tests.integration.redis_cluster import LocalCluster

pytestmark = pytest.mark.integration
CHANNEL = "C0CLUSTER"


async def deliver_like_slack(bot: BotProcess, envelope: dict[str, Any]) -> None:
    """POST an event as Slack does: again, with its retry headers, while the bot answers with an error."""
    for attempt in range(4):
        retry = {"retry_num": attempt, "retry_reason": "http_error"} if attempt else {}
        if await bot.post_event(envelope, **retry) == 200:
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"event {envelope['event_id']} was never acknowledged")


async def mention_until(bot: BotProcess, slack: FakeSlack, done: asyncio.Event, *, at_least: int) -> list[str]:
    """Mention the bot in a new thread every 20 ms until `done` is set and `at_least` were sent; their ts."""
    threads: list[str] = []
    while len(threads) < at_least or not done.is_set():
        text = f"<@{slack.bot_user_id}> question number {len(threads)}"
        envelope = slack.post_user_message(CHANNEL, text, user="U0ALICE", mention=True)
        await deliver_like_slack(bot, envelope)
        threads.append(envelope["event"]["ts"])
        await asyncio.sleep(0.02)
    return threads


async def each_answered_once(slack: FakeSlack, threads: list[str], timeout: float = 60) -> None:
    """Every thread ends with exactly one bot reply, and that reply answers its own question."""

    def answered() -> bool:
        return all(len(slack.bot_replies(CHANNEL, ts)) >= 1 for ts in threads)

    await wait_until(answered, timeout=timeout)
    await asyncio.sleep(1.0)  # time for a second reply, if one were coming
    for number, ts in enumerate(threads):
        replies = [str(reply.get("text", "")) for reply in slack.bot_replies(CHANNEL, ts)]
        assert len(replies) == 1, f"thread {number} got {len(replies)} replies: {replies}"
        assert f"question number {number}" in replies[0], f"thread {number} got another thread's answer"


def clean_log(bot: BotProcess) -> None:
    """No cross-slot or MOVED error reached the bot's log, nor a traceback."""
    output = bot.output()
    for sign in ("CROSSSLOT", "MOVED", "Traceback"):
        assert sign not in output, f"{sign} in the bot's log:\n{output[-3000:]}"


def serving(cluster: LocalCluster, slot: int) -> str:
    """The id of the master serving `slot`."""
    for node in cluster.masters():
        if any(first <= slot <= last for first, last in node.slots):
            return node.node_id
    raise AssertionError(f"no master serves slot {slot}")


async def test_slots_moving_in_the_middle_of_a_burst_lose_and_fork_nothing(
    make_bot: BotFactory, slack: FakeSlack
) -> None:
    """A reshard that moves several shards' slots (their keys with them) while mentions pour in: each is
    answered exactly once, and the moved shards are served by their new node afterwards."""
    with LocalCluster(masters=3) as cluster:
        bot = make_bot(REDIS_URL=cluster.url)
        await bot.start()
        source, target = cluster.masters()[:2]
        shard_slots = [key_slot(shard_tag(shard, DEFAULT_SHARDS).encode()) for shard in range(DEFAULT_SHARDS)]
        before = {slot: serving(cluster, slot) for slot in shard_slots}
        done = asyncio.Event()
        sending = asyncio.create_task(mention_until(bot, slack, done, at_least=40))
        await asyncio.sleep(0.3)
        await asyncio.to_thread(cluster.reshard, source.node_id, target.node_id, source.slot_count // 2)
        done.set()
        threads = await sending
        await each_answered_once(slack, threads)
        moved = [
            slot for slot in shard_slots if before[slot] == source.node_id and serving(cluster, slot) != source.node_id
        ]
        assert moved, "the reshard moved none of the shards' slots"
        clean_log(bot)


async def test_a_master_failing_over_in_the_middle_of_a_burst_loses_and_forks_nothing(
    make_bot: BotFactory, slack: FakeSlack
) -> None:
    """CLUSTER FAILOVER of a master that holds shards, while mentions pour in and two workers answer them:
    each is answered exactly once."""
    with LocalCluster(masters=3, replicas=1) as cluster:
        first = make_bot(REDIS_URL=cluster.url, DYNO="web.1")
        second = make_bot("worker", REDIS_URL=cluster.url, DYNO="worker.1")
        await first.start()
        await second.start(wait_ready=False)
        master = cluster.masters()[0]
        replica = next(node for node in cluster.nodes() if node.master_id == master.node_id)
        done = asyncio.Event()
        sending = asyncio.create_task(mention_until(first, slack, done, at_least=40))
        await asyncio.sleep(0.3)
        started = time.monotonic()
        await asyncio.to_thread(cluster.failover, replica.port)
        assert time.monotonic() - started < 15
        await asyncio.sleep(0.5)
        done.set()
        threads = await sending
        await each_answered_once(slack, threads)
        assert replica.node_id in {node.node_id for node in cluster.masters()}
        clean_log(first)
        clean_log(second)
