"""Stop requests: a person asks that a thread's running answer stop, wherever it runs.

The request is taken by whichever process Slack reached (often a web process that runs no tasks). One script on the
thread's slot marks the running task (its stop_by), which the journal checks at every step and start, and names the
worker holding the thread; that worker is then told through its own stop list, which its stop listener blocks on.
The mark makes a stop durable: a notice lost (its worker died, Redis dropped it) still stops the task at its next
step, or when it resumes.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from enum import StrEnum

from store import decode, keys, lua
from store.connection import RedisClient
from store.errors import CorruptRecord
from store.models import ThreadRef

log = logging.getLogger(__name__)


class StopResult(StrEnum):
    """What a stop request found."""

    STOPPING = "stopping"  # the running answer was asked to stop now
    ALREADY_STOPPING = "already_stopping"  # someone asked before; it is stopping
    NOTHING_RUNNING = "nothing_running"  # no answer runs in the thread (none, or it has not started): nothing changed


@dataclass(frozen=True)
class StopOutcome:
    """What a stop request did: the task asked to stop, the worker told, and who asked (the first asker, if earlier)."""

    result: StopResult
    task_id: str = ""
    worker: str = ""  # the consumer that holds the thread and was told ("" if none holds it: the next start refuses)
    by: str = ""

    @property
    def stopping(self) -> bool:
        """Whether an answer is stopping (now or already)."""
        return self.result is not StopResult.NOTHING_RUNNING


NOTHING_RUNNING = StopOutcome(StopResult.NOTHING_RUNNING)


@dataclass(frozen=True)
class StopNotice:
    """A worker is told to stop one of its answers: the thread (ThreadRef.encode()), the task and who asked."""

    thread_key: str
    task_id: str
    by: str

    def to_json(self) -> str:
        """The notice as its worker's stop list holds it."""
        return json.dumps({"thread": self.thread_key, "task_id": self.task_id, "by": self.by}, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str) -> StopNotice:
        """Parse a notice; a malformed one raises CorruptRecord."""
        try:
            data = json.loads(raw)
            return cls(str(data["thread"]), str(data["task_id"]), str(data["by"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise CorruptRecord(f"malformed stop notice ({len(raw)} characters)") from exc


class StopRequests:
    """Asks running answers to stop, and hands each worker the notices meant for it."""

    def __init__(self, redis: RedisClient, space: keys.KeySpace | None = None) -> None:
        self._redis = redis
        self._keys = space or keys.KeySpace()  # the default shard count unless told
        self._stop = redis.register_script(lua.STOP)

    async def request(self, thread: ThreadRef, user_id: str) -> StopOutcome:
        """Ask the thread's running answer to stop (marked at once), and tell the worker holding it."""
        space = self._keys
        for _ in range(100):  # the head changes only as fast as the thread's tasks finish
            raw_head = await self._redis.lindex(space.inbox(thread), 0)
            if raw_head is None:
                return NOTHING_RUNNING
            head = decode.text(raw_head)
            reply = await self._stop(
                keys=[space.inbox(thread), space.queued(thread), space.thread_queue(thread), space.task(thread, head)],
                args=[head, user_id, repr(time.time())],
            )
            code = int(reply[0])
            if code == lua.INBOX_CHANGED:
                continue
            if code == 0:
                return NOTHING_RUNNING
            task_id, by, worker = (decode.text(value) for value in reply[1:4])
            if worker:  # (told again if asked again: the first notice may be what was lost)
                await self.notify(worker, StopNotice(thread.encode(), task_id, by))
            result = StopResult.STOPPING if code == 1 else StopResult.ALREADY_STOPPING
            return StopOutcome(result, task_id, worker=worker, by=by)
        raise RuntimeError(f"the inbox of thread {thread.encode()} kept changing; stop not asked")

    async def notify(self, worker: str, notice: StopNotice) -> None:
        """Put a notice on the worker's stop list (two commands on one key: one slot on a cluster)."""
        key = keys.stop_notices(worker)
        pipe = self._redis.pipeline(transaction=False)
        pipe.lpush(key, notice.to_json())
        pipe.expire(key, keys.STOP_NOTICE_TTL)
        await pipe.execute()

    async def next_notice(self, worker: str, timeout: float) -> StopNotice | None:
        """The worker's next stop notice, waiting up to `timeout` seconds for one (None if none came).

        A malformed notice is logged and skipped: it could name nothing to stop anyway."""
        popped = await self._redis.blpop([keys.stop_notices(worker)], timeout=timeout)
        if not popped:
            return None
        raw = decode.text(popped[1])
        try:
            return StopNotice.from_json(raw)
        except CorruptRecord as exc:
            log.warning("ignoring a stop notice: %s", exc)
            return None
