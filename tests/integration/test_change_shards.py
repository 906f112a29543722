"""`python -m bot migrate --queue-shards N` as an operator runs it, then the bot started with the new QUEUE_SHARDS; and
the feedback on answers it moves (votes, thread, channel and workspace counts), through crashes and on a cluster."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis, RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError

from handlers.feedback import FEEDBACK_ACTION, POSITIVE, feedback_block
from store import keys
from store.connection import RedisClient
from store.feedback import AnswerVote, FeedbackCounts, FeedbackStore, Vote, VoteOutcome
from store.journal import TaskJournal
from store.keys import KeySpace
from store.layout import check_layout
from store.models import ThreadRef
from store.reshard import change_shards
from store.tasks import TaskQueue
from tests.conftest import redis_url_for_tests
from tests.fakes import (
    FakeAnthropic,
    FakeSlack,
    app_mention_event,
    block_actions_form,
    block_actions_payload,
    event_envelope,
    new_ts,
    user_texts,
    wait_until,
)
from tests.integration.conftest import BotFactory
from tests.integration.redis_cluster import LocalCluster
from tests.unit.store.reshard_data import IDLE, answer, build
from tests.unit.store.test_reshard import CrashingRedis, load, save, snapshot, tags

pytestmark = pytest.mark.integration


async def run(make_bot: BotFactory, *args: str, **env: str) -> tuple[int, str]:
    """Run `python -m bot ARGS` to its end; its exit code and what it logged."""
    process = make_bot(*args, **env)
    await process.start(wait_ready=False)
    assert process.process is not None
    return await process.process.wait(), process.output()


async def test_the_command_moves_the_data_and_the_bot_starts_only_with_the_new_number(
    make_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic, redis: Redis
) -> None:
    """Refused while a bot process is connected; run with every process stopped, it moves the data; then a bot with
    the old QUEUE_SHARDS refuses to start, naming the command, and one with the new number remembers the threads."""
    await build(redis)
    process = Redis.from_url(redis_url_for_tests(), client_name="agent-worker:worker.1")
    await process.ping()
    try:
        code, output = await run(make_bot, "migrate", "--queue-shards", "7", QUEUE_SHARDS="4")
        assert code == 1 and "worker.1 is connected" in output, output
    finally:
        await process.aclose()
    code, output = await run(make_bot, "migrate", "--queue-shards=7", QUEUE_SHARDS="4")
    assert code == 0, output
    assert "start every process with QUEUE_SHARDS=7" in output
    assert await redis.hgetall(keys.LAYOUT) == {"version": "2", "shards": "7"}

    code, output = await run(make_bot, QUEUE_SHARDS="4")
    assert code == 1 and "set QUEUE_SHARDS=7" in output and "migrate --queue-shards 4" in output, output
    bot = make_bot(QUEUE_SHARDS="7")
    await bot.start()
    mention = app_mention_event(
        f"<@{slack.bot_user_id}> and Q4?", user="U1", channel=IDLE.channel_id, ts=new_ts(), thread_ts=IDLE.thread_ts
    )
    assert await bot.post_event(event_envelope(mention, team_id=IDLE.team_id)) == 200
    await wait_until(lambda: any("and Q4?" in " ".join(user_texts(r)) for r in claude.requests), timeout=10)
    request = str(next(r for r in claude.requests if "and Q4?" in " ".join(user_texts(r))))
    assert "Ana asked about the Q3 budget." in request and "answer EvI1" in request


# Feedback under 16 shards, changed to 5. Shards are given as "of 16 -> of 5"; an old shard's counters beyond its
# threads' own go to shard (old % 5) of 5, often not the shard its threads move to.
FROM_16, TO_5 = KeySpace(16), KeySpace(5)
ANSWERED = ThreadRef("T1", "C1", "1700000000.000100")  # 15 -> 4; its counters' rest goes to 0
DISLIKED = ThreadRef("T1", "C1", "1700000004.000100")  # 5 -> 3
INTO_ZERO = ThreadRef("T1", "C2", "1700000008.000100")  # 3 -> 0: into the shard whose tag both numbers share
KEPT_IN_ZERO = ThreadRef("T1", "C2", "1700000018.000100")  # 0 -> 0: its keys stay
EXPIRED = ThreadRef("T1", "C2", "1700000001.000100")  # 8 -> 1: its own votes expired, its shard's counts did not
OTHER_TEAM = ThreadRef("T2", "C9", "1700000002.000100")  # 7 -> 2
VOTED = (ANSWERED, DISLIKED, INTO_ZERO, KEPT_IN_ZERO, EXPIRED, OTHER_TEAM)
VOTED_CHANNELS = (("T1", "C1"), ("T1", "C2"), ("T2", "C9"))
# Two people on two answers of each thread: (thread, answer, person, vote).
VOTES = [
    (ANSWERED, "1700000100.000100", "U1", Vote.UP),
    (ANSWERED, "1700000100.000100", "U2", Vote.DOWN),
    (ANSWERED, "1700000200.000100", "U1", Vote.UP),
    (ANSWERED, "1700000200.000100", "U2", Vote.UP),
    (DISLIKED, "1700000104.000100", "U1", Vote.DOWN),
    (DISLIKED, "1700000204.000100", "U2", Vote.DOWN),
    (INTO_ZERO, "1700000108.000100", "U1", Vote.UP),
    (INTO_ZERO, "1700000208.000100", "U2", Vote.UP),
    (KEPT_IN_ZERO, "1700000118.000100", "U1", Vote.UP),
    (KEPT_IN_ZERO, "1700000218.000100", "U2", Vote.DOWN),
    (EXPIRED, "1700000101.000100", "U1", Vote.DOWN),
    (EXPIRED, "1700000201.000100", "U2", Vote.UP),
    (OTHER_TEAM, "1700000102.000100", "U1", Vote.UP),
    (OTHER_TEAM, "1700000202.000100", "U2", Vote.DOWN),
]


@pytest.fixture
async def crashing() -> AsyncIterator[CrashingRedis]:
    """A client on the test database that dies after the write its `survive` says."""
    client = CrashingRedis.from_url(redis_url_for_tests(), decode_responses=True)
    client.seen = set()
    try:
        yield client
    finally:
        await client.aclose()


async def record_feedback(redis: RedisClient) -> None:
    """Agents for the threads and their votes under 16 shards, through the store; then EXPIRED's own votes and
    counters expire (they are refreshed by its votes only) while its shard's, refreshed by every thread's, stay."""
    queue, journal = TaskQueue(redis, FROM_16), TaskJournal(redis, FROM_16)
    await check_layout(redis, FROM_16, record_version=True)
    for shard in range(FROM_16.shards):
        await queue.ensure_group(shard)
    for number, ref in enumerate(VOTED):
        await answer(queue, journal, ref, f"Ev{number}", None)
    votes = FeedbackStore(redis, FROM_16)
    for ref, answer_ts, user, vote in VOTES:
        assert await votes.record(AnswerVote(ref, answer_ts, user, vote)) is VoteOutcome.NEW
    await redis.delete(FROM_16.answer_votes(EXPIRED), FROM_16.thread_feedback(EXPIRED))


async def feedback_view(redis: RedisClient, space: KeySpace) -> dict[str, Any]:
    """What the feedback readers see in `space`: each thread's counts, thumbs-down answers and votes; each channel's
    and workspace's counts."""
    votes = FeedbackStore(redis, space)
    seen: dict[str, Any] = {}
    for ref in VOTED:
        seen[ref.encode()] = (await votes.thread_feedback(ref), await redis.hgetall(space.answer_votes(ref)))
    for team, channel in VOTED_CHANNELS:
        seen[f"{team}:{channel}"] = await votes.channel_feedback(team, channel)
    for team in ("T1", "T2"):
        seen[team] = await votes.team_feedback(team)
    return seen


async def negative_counts(redis: RedisClient, space: KeySpace) -> list[str]:
    """Every channel or workspace counter of a shard that is below zero (readers would read it as zero)."""
    names = [space.team_feedback(team, shard) for team in ("T1", "T2") for shard in range(space.shards)]
    names += [space.channel_feedback(*channel, shard) for channel in VOTED_CHANNELS for shard in range(space.shards)]
    return [
        f"{name} {field}" for name in names for field, value in (await redis.hgetall(name)).items() if int(value) < 0
    ]


def feedback_click(ref: ThreadRef, answer_ts: str, user: str, value: str) -> str:
    """The form Slack posts (the harness signs it) when `user` presses a feedback button under answer `answer_ts`."""
    block = feedback_block("feedback-Ev0")
    message = {"type": "message", "user": "UBOT", "text": "The answer.", "ts": answer_ts, "thread_ts": ref.thread_ts}
    message["blocks"] = [block]
    payload = block_actions_payload(
        FEEDBACK_ACTION, value, team_id=ref.team_id, channel_id=ref.channel_id, user_id=user, message=message
    )
    payload["actions"][0].update(type="feedback_buttons", block_id="feedback-Ev0")
    return block_actions_form(payload)


async def test_feedback_moves_through_a_crash_and_the_command_and_a_vote_changed_after_moves_the_counts(
    make_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic, redis: Redis, crashing: CrashingRedis
) -> None:
    """A change from 16 to 5 shards that dies half way and is finished by the command leaves every vote, thread,
    channel and workspace count as it was; a vote changed afterwards through the bot moves the counts by one."""
    await record_feedback(redis)
    before = await feedback_view(redis, FROM_16)
    assert (before["T1:C1"], before["T1:C2"]) == (FeedbackCounts(up=3, down=3), FeedbackCounts(up=4, down=2))
    assert (before["T1"], before["T2"]) == (FeedbackCounts(up=7, down=5), FeedbackCounts(up=1, down=1))
    saved = await save(redis)
    await change_shards(crashing, FROM_16, TO_5)  # a clean run, to count its writes
    await load(redis, saved)
    crashing.survive, crashing.writes = crashing.writes // 2, 0
    with pytest.raises(RedisConnectionError):
        await change_shards(crashing, FROM_16, TO_5)

    code, output = await run(make_bot, "migrate", "--queue-shards", "5", QUEUE_SHARDS="16")
    assert code == 0 and "not a key this release knows" not in output, output
    assert await feedback_view(redis, TO_5) == before
    gone = tags(FROM_16) - tags(TO_5)
    assert not [key for key in await redis.keys("*") if any(tag in key for tag in gone)]

    bot = make_bot(QUEUE_SHARDS="5")
    await bot.start()
    status, _ = await bot.post_command(feedback_click(ANSWERED, "1700000100.000100", "U2", POSITIVE))
    assert status == 200
    store = FeedbackStore(redis, TO_5)
    changed = one_down_turned_up(before[ANSWERED.encode()][0].counts)

    async def vote_changed() -> bool:
        return (await store.thread_feedback(ANSWERED)).counts == changed

    await wait_until(vote_changed, timeout=10)  # (Slack is answered before the vote is written)
    assert await store.channel_feedback("T1", "C1") == one_down_turned_up(before["T1:C1"])
    assert await store.channel_feedback("T1", "C2") == before["T1:C2"]
    assert await store.team_feedback("T1") == one_down_turned_up(before["T1"])
    assert await negative_counts(redis, TO_5) == []


async def test_a_crash_after_any_write_then_a_second_run_counts_every_vote_once(
    redis: Redis, crashing: CrashingRedis
) -> None:
    """Whichever write a change from 16 to 5 shards dies after, running it again leaves the same data as one clean
    run, whose feedback reads as it did before: no count is lost or added twice."""
    await record_feedback(redis)
    before = await feedback_view(redis, FROM_16)
    saved = await save(redis)
    report = await change_shards(crashing, FROM_16, TO_5, concurrency=1)
    clean, writes = await snapshot(redis, TO_5), crashing.writes
    assert await feedback_view(redis, TO_5) == before
    assert report.unknown == 0 and report.feedback_totals == 10  # channel and workspace counters of 5 old shards
    for survive in range(1, writes):
        await load(redis, saved)
        crashing.survive, crashing.writes = survive, 0
        with pytest.raises(RedisConnectionError):
            await change_shards(crashing, FROM_16, TO_5, concurrency=1)
        await change_shards(redis, FROM_16, TO_5, page_keys=4)  # (a staging key may come before or after its source)
        assert await snapshot(redis, TO_5) == clean, f"died after write {survive}"


async def test_on_a_cluster_the_counts_move_to_other_slots_and_a_changed_vote_moves_them(
    redis_cluster: LocalCluster,
) -> None:
    """On a three-master Redis Cluster (a thread's old and new counters in different slots, often on different
    nodes) the feedback reads the same after a change from 16 to 5 shards, and a vote changed afterwards moves the
    counts by one."""
    client = RedisCluster.from_url(redis_cluster.url, decode_responses=True)
    try:
        await record_feedback(client)
        before = await feedback_view(client, FROM_16)
        await change_shards(client, FROM_16, TO_5)
        assert await feedback_view(client, TO_5) == before
        store = FeedbackStore(client, TO_5)
        changed = AnswerVote(ANSWERED, "1700000100.000100", "U2", Vote.UP)
        assert await store.record(changed) is VoteOutcome.CHANGED
        assert await store.team_feedback("T1") == one_down_turned_up(before["T1"])
        assert await negative_counts(client, TO_5) == []
    finally:
        await client.aclose()


def one_down_turned_up(counts: FeedbackCounts) -> FeedbackCounts:
    """The counts once one thumbs down among them is changed to a thumbs up."""
    return FeedbackCounts(counts.up + 1, counts.down - 1)
