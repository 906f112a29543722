"""Property tests (hypothesis): payload parsing, the context window and summary cut, the task record and queue."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from bot.agent.context import Budget, TokenEstimator, assemble, turns_to_evict
from bot.agent.messages import strip_mention
from handlers.event_listeners import parse_message
from handlers.links import parse_thread_link
from store.journal import TaskJournal
from store.models import Task, TaskKind, TaskStatus, ThreadRef, Turn
from store.tasks import SubmitResult, TaskQueue
from tests.conftest import redis_url_for_tests
from tests.unit.store.conftest import SPACE, make_groups, queue_empty

ids = st.from_regex(r"[A-Z0-9]{3,11}", fullmatch=True)
timestamps = st.builds(
    lambda s, us: f"{s}.{us:06d}", st.integers(1_000_000_000, 9_999_999_999), st.integers(0, 999_999)
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
)


@given(
    event=st.fixed_dictionaries(
        {},
        optional={
            "type": st.sampled_from(["app_mention", "message"]) | st.text(),
            "subtype": st.none() | st.sampled_from(["bot_message", "message_changed", "file_share"]) | json_values,
            "channel": ids | json_values,
            "user": ids | json_values,
            "bot_id": st.none() | ids,
            "text": st.text() | json_values,
            "ts": timestamps | json_values,
            "thread_ts": st.none() | timestamps | json_values,
            "channel_type": st.sampled_from(["channel", "im", "group"]),
            "team": ids,
            "files": st.lists(st.fixed_dictionaries({"id": ids, "url_private": st.text(), "size": json_values})),
        },
    ),
    body_extra=st.dictionaries(st.sampled_from(["event_id", "team_id"]), ids | json_values),
)
def test_parsing_any_event_gives_a_message_or_nothing_and_never_raises(
    event: dict[str, Any], body_extra: dict[str, Any]
) -> None:
    """Whatever an event's fields hold, it parses to a message intake can file under a thread, or to nothing."""
    message = parse_message({**body_extra}, event, allowed_bot_ids=frozenset({"B0FRIEND"}))
    if message is not None:
        assert message.ts == event["ts"] and message.channel_id == str(event["channel"])
        assert message.thread().channel_id == message.channel_id  # intake can always key it
        assert not event.get("bot_id") or event["bot_id"] == "B0FRIEND"  # other bots never get through


@given(channel=ids, parent=timestamps, reply=st.none() | timestamps, noise=st.text())
def test_thread_links_round_trip_and_other_text_never_raises(
    channel: str, parent: str, reply: str | None, noise: str
) -> None:
    base = f"https://team.slack.com/archives/{channel}/p"
    url = base + (reply or parent).replace(".", "") + (f"?thread_ts={parent}&cid={channel}" if reply else "")
    link = parse_thread_link(f"<{url}>")
    assert link is not None and (link.channel_id, link.thread_ts, link.is_reply) == (channel, parent, bool(reply))
    parse_thread_link(noise)  # whatever people type: a link or None, never an exception


turns = st.lists(
    st.builds(
        Turn,
        role=st.sampled_from(["user", "assistant"]),
        text=st.text(min_size=1, max_size=3000),
        user_id=st.just("U1"),
    ),
    max_size=40,
)


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(window=turns, question=st.text(min_size=1, max_size=2000), total=st.integers(4_000, 30_000))
def test_the_context_keeps_a_suffix_of_the_window_within_the_budget(
    window: list[Turn], question: str, total: int
) -> None:
    """Whatever the turns, the request fits the budget plus its new message, and keeps the newest turns in order."""
    estimator = TokenEstimator()
    budget = Budget(total=total, summary_max=total // 4)
    new = Turn("user", question, user_id="U1")
    context = assemble(
        system_prompt="You help.",
        summary="",
        window=window,
        new_turns=[new],
        pinned="[state]",
        budget=budget,
        estimator=estimator,
    )
    assert context.estimated_tokens <= total + estimator.turns([new]) + 50
    kept = window[context.omitted_turns :]
    assert kept == window[len(window) - len(kept) :]
    assert context.omitted_turns == len(window) or not kept or kept[0].role == "user" or len(kept) == 1


@given(window=turns, room=st.integers(0, 20_000))
def test_a_fold_cuts_the_oldest_turns_and_never_empties_the_window(window: list[Turn], room: int) -> None:
    estimator = TokenEstimator()
    evict = turns_to_evict(window, room=room, estimator=estimator)
    assert 0 <= evict <= max(len(window) - 1, 0)
    rest = window[evict:]
    assert evict == 0 or estimator.turns(rest) <= room or len(rest) == 1 or rest[0].role == "user"


@given(
    text=st.text(),
    kind=st.sampled_from(list(TaskKind)),
    status=st.sampled_from(list(TaskStatus)),
    attempts=st.integers(0, 100),
    original=st.integers(0, 10**7),
)
def test_a_task_record_reads_back_as_written(
    text: str, kind: TaskKind, status: TaskStatus, attempts: int, original: int
) -> None:
    task = Task(
        "Ev1",
        kind,
        ThreadRef("T1", "C1", "1.000001"),
        text,
        "U1",
        "1.000002",
        1.5,
        status,
        attempts,
        None,
        None,
        original,
    )
    assert Task.from_fields(task.to_fields()) == task


@given(text=st.text(), bot=ids)
def test_stripping_the_mention_leaves_no_mention_of_the_bot(text: str, bot: str) -> None:
    assert f"<@{bot}>" not in strip_mention(f"<@{bot}> {text} <@{bot}|name>", bot).replace(text, "")


# The queue as a state machine: any sequence of mentions, resets and worker steps on one thread keeps its
# invariants: each accepted task finishes or is cancelled exactly once, answers run in arrival order, and the
# thread ends with no work, no queue entry and no stray flag.
operations = st.lists(st.sampled_from(["mention", "mention", "reset", "work", "work", "retry"]), max_size=25)


@settings(
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture], deadline=None, max_examples=40
)
@given(ops=operations)
def test_any_sequence_of_mentions_resets_and_work_keeps_the_queue_consistent(ops: list[str]) -> None:
    asyncio.run(_run_queue_machine(ops))


async def _run_queue_machine(ops: list[str]) -> None:
    redis = Redis.from_url(redis_url_for_tests(), decode_responses=True)
    await redis.flushdb()
    queue, journal = TaskQueue(redis, SPACE), TaskJournal(redis, SPACE)
    await make_groups(queue)
    thread = ThreadRef("T1", "C1", "1700000000.000100")
    submitted: list[str] = []
    finished: list[str] = []
    sent = 0

    async def work_one() -> None:
        shard = SPACE.shard_of(thread)
        leases = await queue.claim_new("w1", [shard], 10, None) + await queue.claim_own_pending("w1", shard)
        for lease in leases[:1]:
            task = await queue.head(thread)
            if task is None:
                await queue.release(lease)
                continue
            await journal.start(lease, task)
            if await journal.finish(lease, task, TaskStatus.DONE):
                finished.append(task.task_id)
            journal.released(lease)  # finishing the last task gave the thread back, or another waits

    try:
        for op in ops:
            if op in ("mention", "retry"):
                if op == "retry" and not submitted:
                    continue
                task_id = submitted[-1] if op == "retry" else f"Ev{sent}"
                sent += op == "mention"
                task = Task(task_id, TaskKind.ANSWER, thread, "q", "U1", "1700000000.000200", time.time())
                result = await queue.submit(task)
                assert (result is SubmitResult.DUPLICATE) == (op == "retry")  # Slack's redelivery is ignored
                if result is SubmitResult.ACCEPTED:
                    submitted.append(task_id)
            elif op == "reset":
                reset_id = f"Reset{len(submitted)}-{sent}"
                await queue.reset(Task(reset_id, TaskKind.RESET, thread, "reset", "U1", thread.thread_ts, time.time()))
                submitted.append(reset_id)
            else:
                await work_one()
        for _ in range(len(submitted) + 2):
            await work_one()
        statuses = {task_id: await redis.hget(SPACE.task(thread, task_id), "status") for task_id in submitted}
        assert set(statuses.values()) <= {"done", "cancelled"}, statuses
        assert sorted(finished) == sorted(t for t, s in statuses.items() if s == "done")  # finished once each
        answers = [t for t in finished if t.startswith("Ev")]
        assert answers == sorted(answers, key=lambda t: int(t[2:]))  # in arrival order
        assert await redis.llen(SPACE.inbox(thread)) == 0
        assert await queue_empty(redis) and not await redis.exists(SPACE.queued(thread))
    finally:
        await redis.flushdb()
        await redis.aclose()
