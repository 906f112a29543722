"""The key names of layout v1 (the releases before Redis Cluster support), for the migration to v2 only.

  agent:T:thread:C:TS:state    hash    the agent: counters, usage, summary (as in v2, less the turns)
  agent:T:thread:C:TS:turns    list    the window of turns, oldest first (v2: fields turn:N of the state)
  agent:T:thread:C:TS:inbox    list    the thread's unfinished task ids, oldest first (had a TTL; v2's has none)
  agent:T:thread:C:TS:queued   string  the id of the thread's entry in agent:queue
  agent:T:channel:C:threads    zset    the channel's threads by last activity (v2: one per shard)
  agent:T:channel:C:usage      hash    the channel's usage counters (v2: one per shard, summed by readers)
  agent:T:task:ID              hash    a task (v2: in its thread's shard, the same fields)
  agent:T:task:ID:steps        list    the task's journal (v2: fields step:N of the task)
  agent:queue                  stream  one entry per thread with work, consumer group "workers"

User names (agent:T:user:U), agent:workers and agent:health did not change. No v1 key carries a hash tag, so
the third part of a v1 key is a plain word ("thread", "channel", "task") where a v2 key has its tag ("{3-17}").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from store.keys import PREFIX
from store.models import ThreadRef

QUEUE = f"{PREFIX}:queue"
MATCH = f"{PREFIX}:*"  # SCAN MATCH for every key of either layout; parse() tells the v1 ones apart

Part = Literal["state", "turns", "inbox", "queued"]
THREAD_PARTS: tuple[Part, ...] = ("state", "turns", "inbox", "queued")


def thread_key(ref: ThreadRef, part: Part) -> str:
    """One of the thread's keys."""
    return f"{PREFIX}:{ref.team_id}:thread:{ref.channel_id}:{ref.thread_ts}:{part}"


def thread_keys(ref: ThreadRef) -> list[str]:
    """The thread's state, turns, inbox and queued flag, in that order."""
    return [thread_key(ref, part) for part in THREAD_PARTS]


def channel_threads(team_id: str, channel_id: str) -> str:
    """The channel's index of threads."""
    return f"{PREFIX}:{team_id}:channel:{channel_id}:threads"


def channel_usage(team_id: str, channel_id: str) -> str:
    """The channel's usage counters."""
    return f"{PREFIX}:{team_id}:channel:{channel_id}:usage"


def task(team_id: str, task_id: str) -> str:
    """A task's hash."""
    return f"{PREFIX}:{team_id}:task:{task_id}"


def steps(team_id: str, task_id: str) -> str:
    """A task's journal."""
    return f"{task(team_id, task_id)}:steps"


@dataclass(frozen=True)
class V1Key:
    """What a v1 key is: a thread's (ref), a channel's (team, channel, part) or a task's (team, task id, part)."""

    kind: Literal["thread", "channel", "task"]
    team_id: str
    name: str  # the channel id, or the task id
    part: str  # thread: state/turns/inbox/queued; channel: threads/usage; task: "" or "steps"
    ref: ThreadRef | None = None


def parse(key: str) -> V1Key | None:
    """The v1 key `key` is, or None (a v2 key, a key both layouts share, or something else)."""
    parts = key.split(":")
    if len(parts) < 4 or parts[0] != PREFIX:
        return None
    team, kind = parts[1], parts[2]
    try:
        if kind == "thread" and len(parts) == 6 and parts[5] in THREAD_PARTS:
            ref = ThreadRef(team, parts[3], parts[4])
            return V1Key("thread", team, parts[3], parts[5], ref)
        if kind == "channel" and len(parts) == 5 and parts[4] in ("threads", "usage"):
            ThreadRef(team, parts[3], "")  # the same checks of ids
            return V1Key("channel", team, parts[3], parts[4])
        if kind == "task" and (len(parts) == 4 or (len(parts) == 5 and parts[4] == "steps")) and parts[3]:
            return V1Key("task", team, parts[3], parts[4] if len(parts) == 5 else "")
    except ValueError:  # an id ThreadRef refuses: not a key v1 wrote
        return None
    return None
