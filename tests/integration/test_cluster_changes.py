"""The bot on a real Redis Cluster that changes under it: slots moving mid-burst, a master failing over.

Every accepted mention must be answered exactly once, with nothing forked (no thread answered twice, no
answer in the wrong thread), and the bot must never meet a cross-slot error: a thread's keys and its shard's
stream share one slot, so they move together.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import pytest
from redis.crc import key_slot

from store.keys import DEFAULT_SHARDS, shard_tag
from tests.fakes import FakeAnthropic, FakeSlack, Reply, user_texts, wait_until
from tests.integration.conftest import BotFactory
from tests.integration.harness import BotProcess
from tests.integration.redis_cluster import LocalCluster
from tests.integration.redis_server import PrivateRedis

pytestmark = pytest.mark.integration
CHANNEL = "C0CLUSTER"


def answering(claude: FakeAnthropic) -> None:
    """The model answers each question by its number, so that an answer in the wrong thread shows."""

    def respond(body: dict[str, Any]) -> Reply:
        asked = re.findall(r"question number \d+", " ".join(user_texts(body)))
        return Reply([{"type": "text", "text": f"the answer to {asked[-1] if asked else 'nothing'}"}])

    claude.set_default(respond)


async def deliver_like_slack(bot: BotProcess, envelope: dict[str, Any]) -> None:
    """POST an event as Slack does: again, with its retry headers, while the bot answers with an error."""
    for attempt in range(10):  # (Slack tries 4 times over minutes; here, more often and sooner)
        retry = {"retry_num": attempt, "retry_reason": "http_error"} if attempt else {}
        if await bot.post_event(envelope, **retry) == 200:
            return
        await asyncio.sleep(1.0)
    raise AssertionError(f"event {envelope['event_id']} was never acknowledged")


async def mention_until(
    bot: BotProcess, slack: FakeSlack, done: asyncio.Event, *, at_least: int
) -> list[tuple[str, float]]:
    """Mention the bot in a new thread every 20 ms until `done` is set and `at_least` were sent; each one's ts, and
    when the bot acknowledged it (time.monotonic(), the clock of the fake's recorded calls)."""
    threads: list[tuple[str, float]] = []
    while len(threads) < at_least or not done.is_set():
        text = f"<@{slack.bot_user_id}> question number {len(threads)}"
        envelope = slack.post_user_message(CHANNEL, text, user="U0ALICE", mention=True)
        await deliver_like_slack(bot, envelope)
        threads.append((envelope["event"]["ts"], time.monotonic()))
        await asyncio.sleep(0.02)
    return threads


def bot_replies_by_thread(slack: FakeSlack) -> dict[str, list[str]]:
    """The texts of the bot's replies in each thread of the channel, from one read of the fake's messages.

    (One `slack.bot_replies` per thread copies the whole channel each time: polling that for a hundred threads
    took seconds per poll, during which the fakes, served by this test's event loop, answered the bot nothing.)
    """
    replies: dict[str, list[str]] = {}
    for message in slack.messages(CHANNEL):
        thread_ts = message.get("thread_ts")
        if message.get("bot_id") == slack.bot_id and thread_ts and message["ts"] != thread_ts:
            replies.setdefault(str(thread_ts), []).append(str(message.get("text", "")))
    return replies


async def each_answered_once(slack: FakeSlack, threads: list[str], timeout: float = 60) -> None:
    """Every thread ends with exactly one bot reply, and that reply answers its own question."""

    def answered() -> bool:
        replies = bot_replies_by_thread(slack)
        return all("the answer to" in str(replies.get(ts)) for ts in threads)

    await wait_until(answered, timeout=timeout, interval=0.1)
    await asyncio.sleep(1.0)  # time for a second reply, if one were coming
    replies = bot_replies_by_thread(slack)
    for number, ts in enumerate(threads):
        texts = replies.get(ts, [])
        assert len(texts) == 1, f"thread {number} got {len(texts)} replies: {texts}"
        assert f"the answer to question number {number}" == texts[0], f"thread {number}: {texts[0]!r}"


def slowest_answer(slack: FakeSlack, threads: list[tuple[str, float]]) -> tuple[float, int]:
    """The longest time from a mention's acknowledgement to the first Web API call carrying its answer, in seconds,
    and that mention's number."""
    answered_at: dict[int, float] = {}
    for call in slack.calls:
        if call.method in ("chat.postMessage", "chat.update"):
            for number in re.findall(r"the answer to question number (\d+)", str(call.args)):
                answered_at.setdefault(int(number), call.received)
    return max((answered_at[number] - sent, number) for number, (_ts, sent) in enumerate(threads))


def clean_log(bot: BotProcess, *, tracebacks: bool = False) -> None:
    """No cross-slot or MOVED error reached the bot's log, nor (unless allowed) a traceback, and the bot never took
    the task queue for lost: slots that move and masters that fail over keep every stream (and its group)."""
    output = bot.output()
    for sign in ("CROSSSLOT", "MOVED", *([] if tracebacks else ["Traceback"])):
        assert sign not in output, f"{sign} in the bot's log:\n{output[-3000:]}"
    healed = [line for line in output.splitlines() if "gone from Redis" in line]
    assert not healed, "the task queue was taken for lost:\n" + "\n".join(healed)


def serving(cluster: LocalCluster, slot: int) -> str:
    """The id of the master serving `slot`."""
    for node in cluster.masters():
        if any(first <= slot <= last for first, last in node.slots):
            return node.node_id
    raise AssertionError(f"no master serves slot {slot}")


async def test_slots_moving_in_the_middle_of_a_burst_lose_and_fork_nothing(
    make_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    """A reshard that moves several shards' slots (their keys with them) while mentions pour in: each is answered
    exactly once and well within a lease, no moving stream is taken for a lost queue, and the moved shards are
    served by their new node afterwards."""
    answering(claude)
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
        await each_answered_once(slack, [ts for ts, _sent in threads])
        moved = [
            slot for slot in shard_slots if before[slot] == source.node_id and serving(cluster, slot) != source.node_id
        ]
        assert moved, "the reshard moved none of the shards' slots"
        clean_log(bot)  # a stream being moved is read on its new node, not taken for lost and made again
        slowest, number = slowest_answer(slack, threads)
        assert slowest < 20.0, f"mention {number} waited {slowest:.1f} s for its answer (the lease is 30 s)"


async def test_a_master_failing_over_in_the_middle_of_a_burst_loses_and_forks_nothing(
    make_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    """CLUSTER FAILOVER of a master that holds shards, while mentions pour in and two workers answer them:
    each is answered exactly once."""
    answering(claude)
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
        await each_answered_once(slack, [ts for ts, _sent in threads])
        assert replica.node_id in {node.node_id for node in cluster.masters()}
        clean_log(first)
        clean_log(second)


async def test_every_node_restarted_between_two_turns_keeps_the_history(
    make_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    """Every node of the cluster killed and started again (its append-only file kept) between two mentions of a
    thread: the bot rides the outage out and the second answer carries the first exchange."""
    with LocalCluster(masters=3) as cluster:
        bot = make_bot(REDIS_URL=cluster.url)
        await bot.start()
        claude.reply_text("The budget is 4 apples.")
        first = slack.post_user_message(CHANNEL, f"<@{slack.bot_user_id}> what is the budget?", mention=True)
        await deliver_like_slack(bot, first)
        thread = first["event"]["ts"]
        await wait_until(lambda: "4 apples" in str(slack.bot_replies(CHANNEL, thread)), timeout=10)
        await asyncio.sleep(1.5)  # appendfsync everysec: what was written a second ago is on disk
        ports = cluster.ports
        for port in ports:
            cluster.kill(port)
        for port in ports:
            await asyncio.to_thread(cluster.restart, port, wait_ok=False)
        await asyncio.to_thread(cluster.wait_ok, 40.0)  # nodes agree again within seconds, slower on a busy machine
        claude.reply_text("Still 4 apples.")
        second = slack.post_user_message(CHANNEL, f"<@{slack.bot_user_id}> and now?", mention=True, thread_ts=thread)
        await deliver_like_slack(bot, second)
        await wait_until(lambda: "Still 4 apples." in str(slack.bot_replies(CHANNEL, thread)), timeout=40)
        assert len(slack.bot_replies(CHANNEL, thread)) == 2
        assert "what is the budget?" in " ".join(user_texts(claude.requests[-1]))
        # While every node restarts, redis-py's cluster client may fail inside itself (an AttributeError on a
        # connection another task closed); the queue readers log that with its traceback and go on.
        clean_log(bot, tracebacks=True)


async def exits_with_one_line(bot: BotProcess) -> str:
    """Wait for the bot to exit 1 at startup; the one line it logged (Bolt's startup notice aside)."""
    await bot.start(wait_ready=False)
    assert bot.process is not None
    assert await asyncio.wait_for(bot.process.wait(), timeout=40) == 1
    lines = [line for line in bot.output().splitlines() if "slack_bolt" not in line]
    assert len(lines) == 1 and "Traceback" not in bot.output(), bot.output()
    return lines[0]


async def test_a_cluster_that_does_not_serve_every_slot_stops_the_start_with_one_line(make_bot: BotFactory) -> None:
    """A cluster with a master down and no replica to take over: the bot exits 1 at start, saying why in one line."""
    with LocalCluster(masters=3) as cluster:
        down = cluster.masters()[1]
        cluster.kill(down.port)
        up = next(node for node in cluster.masters() if node.port != down.port)
        await wait_until(lambda: cluster.cluster_info(up.port).get("cluster_state", "").strip() == "fail", timeout=15)
        line = await exits_with_one_line(make_bot(REDIS_URL=f"redis://127.0.0.1:{up.port}"))
        assert "Redis Cluster" in line, line  # a node that does not answer, or the slots not all served


async def test_a_redis_that_refuses_scripts_stops_the_start_with_one_line(make_bot: BotFactory, tmp_path: Path) -> None:
    """A server that refuses Lua scripts (as some proxies do; here SCRIPT is renamed away): one line, exit 1."""
    server = PrivateRedis(tmp_path / "no-scripts", extra_args=("--rename-command", "SCRIPT", ""))
    server.start()
    try:
        line = await exits_with_one_line(make_bot(REDIS_URL=server.url))
    finally:
        server.stop()
    assert "Redis refused to set up the task queue" in line, line
