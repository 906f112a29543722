"""Every Redis key the bot uses, with its type and lifetime. Nothing else builds key strings.

Per team (T = team id, C = channel id, TS = thread ts, "" for a DM's top level):

  agent:T:thread:C:TS:state   hash    the agent's state (AgentState): counters, usage, and the rolling summary of
                                      turns folded out of the window. TTL AGENT_TTL, refreshed on activity.
  agent:T:thread:C:TS:turns   list    the window of recent turns (JSON), oldest first; bounded by the context
                                      budget, older turns live on in the summary. TTL AGENT_TTL, refreshed.
  agent:T:thread:C:TS:inbox   list    ids of the thread's unfinished tasks, in arrival order.
                                      TTL AGENT_TTL, refreshed on every push: an inbox older than that has no worker
                                      left to care.
  agent:T:thread:C:TS:queued  string  the id of the thread's entry in the queue stream, while it has one. No TTL:
                                      it lives as long as that entry (the worker that drains the inbox deletes both
                                      together, a reset replaces both together), and a TTL would make it evictable
                                      under volatile-* policies. Should the two disagree anyway (the stream deleted
                                      or evicted, a flag deleted by hand), they heal: a submit checks that the entry
                                      the flag names still exists and adds a new one if not; recreating the consumer
                                      group gives every surviving flag with work a new entry; and every fenced write
                                      checks that the flag names the writer's entry, so of two entries for one
                                      thread only the flag's is worked (the other is dropped) - see store/lua.py.
  agent:T:channel:C:threads   zset    thread ts -> time of the agent's last finished task (or of its first
                                      mention while none has finished), for /agent status and channel resets.
                                      TTL AGENT_TTL, refreshed on activity; members whose state expired are
                                      skipped by readers and trimmed by writers.
  agent:T:channel:C:usage     hash    the channel's usage counters (tokens, cache, model calls, cost), added up as
                                      tasks finish. TTL AGENT_TTL, refreshed on activity.
  agent:T:task:ID             hash    one task (Task fields + reply_ts, error; a reset task also the ts list of the
                                      messages of the tasks it cancelled). TTL TASK_TTL. Its existence is also
                                      the dedupe record for the Slack event_id that created it.
  agent:T:task:ID:steps       list    the task's journal: one JSON record per completed model, tool or summary
                                      call, so a resumed task continues after its last step. Deleted when the
                                      task finishes; TTL TASK_TTL in case it never does.
  agent:T:user:U              string  a user's display name. TTL USER_NAME_TTL.

Shared by all teams:

  agent:queue                 stream  one entry per thread with work; consumer group "workers". No TTL: entries
                                      are deleted (XACK + XDEL) when their thread's inbox is drained, so its length
                                      is the number of threads with work. Consumers of the group idle for
                                      CONSUMER_IDLE_LIMIT_MS (an hour) with nothing pending are removed.
  agent:workers               zset    worker name -> when it last said it was alive (every couple of seconds),
                                      for /agent status. TTL WORKERS_TTL, refreshed by every live worker: it
                                      goes when they all have.
  agent:health                string  written by every /healthz check, to see that Redis takes writes (not only
                                      that it answers). TTL HEALTH_TTL.

Redis must run with maxmemory-policy noeviction (README): evicting the stream, a flag or an inbox loses queued
work, and the keys with TTLs above are the ones volatile-* policies would evict first.
"""

from __future__ import annotations

from store.models import ThreadRef

PREFIX = "agent"
QUEUE = f"{PREFIX}:queue"
WORKERS = f"{PREFIX}:workers"
WORKER_GROUP = "workers"

DAY = 24 * 3600
AGENT_TTL = 30 * DAY
# Slack retries an event for minutes, not days; a day keeps recent failures visible while bounding storage.
TASK_TTL = DAY
USER_NAME_TTL = DAY
WORKERS_TTL = 60
HEALTH = f"{PREFIX}:health"
HEALTH_TTL = 60
# A live worker reads the queue at least every second, so a consumer idle for an hour has no process behind it.
CONSUMER_IDLE_LIMIT_MS = 3600 * 1000


def _thread(ref: ThreadRef, part: str) -> str:
    return f"{PREFIX}:{ref.team_id}:thread:{ref.channel_id}:{ref.thread_ts}:{part}"


def state(ref: ThreadRef) -> str:
    """The agent's state hash."""
    return _thread(ref, "state")


def turns(ref: ThreadRef) -> str:
    """The agent's turn list."""
    return _thread(ref, "turns")


def inbox(ref: ThreadRef) -> str:
    """The thread's unfinished task ids."""
    return _thread(ref, "inbox")


def queued(ref: ThreadRef) -> str:
    """The flag saying the thread has a queue entry."""
    return _thread(ref, "queued")


QUEUED_PATTERN = f"{PREFIX}:*:thread:*:queued"  # SCAN MATCH for every thread's flag


def thread_of_queued(key: str) -> ThreadRef | None:
    """The thread whose queued flag `key` is; None for a key that only looks like one."""
    parts = key.split(":")
    if len(parts) != 6 or parts[0] != PREFIX or parts[2] != "thread" or parts[5] != "queued":
        return None
    try:
        return ThreadRef(parts[1], parts[3], parts[4])
    except ValueError:
        return None


def channel_threads(team_id: str, channel_id: str) -> str:
    """The channel's threads with agents, by last activity."""
    return f"{PREFIX}:{team_id}:channel:{channel_id}:threads"


def channel_usage(team_id: str, channel_id: str) -> str:
    """The channel's usage counters."""
    return f"{PREFIX}:{team_id}:channel:{channel_id}:usage"


def task(team_id: str, task_id: str) -> str:
    """One task's hash."""
    return task_prefix(team_id) + task_id


def task_prefix(team_id: str) -> str:
    """What every task key of the team starts with (the reset script builds its inbox's task keys from it)."""
    return f"{PREFIX}:{team_id}:task:"


def steps(team_id: str, task_id: str) -> str:
    """One task's step journal."""
    return f"{PREFIX}:{team_id}:task:{task_id}:steps"


def user_name(team_id: str, user_id: str) -> str:
    """A cached display name."""
    return f"{PREFIX}:{team_id}:user:{user_id}"
