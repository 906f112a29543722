"""What the bot keeps in Redis, read as the tests check it: every key named by the KeySpace the bot uses."""

from __future__ import annotations

import json
from typing import Any

from redis.asyncio import Redis

from store import decode, keys
from store.keys import KeySpace
from store.models import ThreadRef
from store.threads import window

# The bot's key names when QUEUE_SHARDS is not set; a test that sets it reads with KeySpace(that number).
SPACE = KeySpace()


async def turns(redis: Redis, ref: ThreadRef, space: KeySpace = SPACE) -> list[dict[str, Any]]:
    """The thread's window of turns (fields turn:N of its state hash), oldest first, each as its stored JSON."""
    return [json.loads(turn.to_json()) for turn in window(decode.fields(await redis.hgetall(space.state(ref))))]


async def window_text(redis: Redis, ref: ThreadRef, space: KeySpace = SPACE) -> str:
    """The text of every turn in the thread's window, joined: to look for words kept in it."""
    return " ".join(str(turn["text"]) for turn in await turns(redis, ref, space))


async def agent_keys(redis: Redis, ref: ThreadRef, space: KeySpace = SPACE) -> int:
    """How many of the thread's agent keys (state hash, inbox, queued flag) exist."""
    return int(await redis.exists(space.state(ref), space.inbox(ref), space.queued(ref)))


async def queued_entries(redis: Redis, space: KeySpace = SPACE) -> int:
    """How many entries every shard's queue stream holds (one per thread with work), streams that are gone as 0."""
    return sum([await redis.xlen(queue) for queue in space.queues()])


async def pending_entries(redis: Redis, space: KeySpace = SPACE) -> int:
    """How many entries are held by some consumer, over every shard's group (a lost group holds none)."""
    held = 0
    for queue in space.queues():
        if await redis.exists(queue):
            held += int((await redis.xpending(queue, keys.WORKER_GROUP))["pending"])
    return held


async def queue_empty(redis: Redis, space: KeySpace = SPACE) -> bool:
    """Whether no thread is queued or held in any shard (a thread is released as its last task finishes)."""
    return await queued_entries(redis, space) == 0 and await pending_entries(redis, space) == 0


async def consumers(redis: Redis, space: KeySpace = SPACE) -> set[str]:
    """The consumer names of every shard's group (a name appears in a shard once it has read from it)."""
    names: set[str] = set()
    for queue in space.queues():
        if await redis.exists(queue):
            names |= {str(c["name"]) for c in await redis.xinfo_consumers(queue, keys.WORKER_GROUP)}
    return names


async def task_field(redis: Redis, ref: ThreadRef, task_id: str, field: str, space: KeySpace = SPACE) -> str | None:
    """One field of a task's record (its key is in its thread's shard)."""
    value = await redis.hget(space.task(ref, task_id), field)
    return None if value is None else str(value)
