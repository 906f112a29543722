"""Every Redis key the bot uses, with its type and lifetime. Nothing else builds key strings.

Work is spread over S queue shards (QUEUE_SHARDS, fixed for the life of a deployment). A thread belongs to one
shard (a stable hash of its reference), and every key that a thread's atomic steps touch carries that shard's
hash tag {g}, so on Redis Cluster they all live in one slot, beside the shard's queue stream: each Lua script
runs on one node, and declares every key it touches. The tags are chosen so that the S slots spread evenly over
the 16384 slots of a cluster; on a standalone Redis they change nothing. Per team (T = team id, C = channel id,
TS = thread ts, "" for a DM's top level):

  agent:T:{g}:thread:C:TS:state   hash    the agent (AgentState): counters, usage, the rolling summary of turns folded
                                          out of the window, and the window of recent turns itself, one field per
                                          turn ("turn:N" = turn N's JSON, N counted from the agent's first turn):
                                          turns `summarized_turns` to `turns` - 1. One key, so a finished task
                                          writes its turns and counters in one command and a reader gets them in
                                          one. TTL AGENT_TTL, refreshed on activity.
  agent:T:{g}:thread:C:TS:inbox   list    ids of the thread's unfinished tasks, in arrival order. No TTL, for the
                                          flag's reason below: it lives exactly as long as the thread's entry
                                          (FINISH empties both, a reset replaces both), and a worker drains it.
  agent:T:{g}:thread:C:TS:queued  string  the thread's entry in its shard's stream while it has one, and its lease:
                                          "ENTRY" while queued, "ENTRY CONSUMER" once a worker holds it. No TTL: it
                                          lives as long as that entry (the script that empties the inbox deletes
                                          both, a reset replaces both), and a TTL would make it evictable under
                                          volatile-* policies. Every fenced write checks it names the writer.
  agent:T:{g}:channel:C:threads   zset    thread ts -> time of the agent's last finished task (or of its first
                                          mention), for /agent status and channel resets: one per shard, read
                                          across shards. TTL AGENT_TTL, refreshed on activity; members whose thread
                                          has no agent any more are dropped by readers.
  agent:T:{g}:channel:C:usage     hash    the channel's usage counters (tokens, cache, model calls, cost) of the
                                          shard's threads, added up as tasks finish; readers sum the shards.
                                          TTL AGENT_TTL, refreshed on activity.
  agent:T:{g}:channel:C:usage:S   hash    only while the number of shards changes (store/reshard.py): the counters
                                          of old shard S's usage hash on their way into shard g's, which they are
                                          added to once S's is gone. The TTL the old hash had.
  agent:T:{g}:thread:C:TS:votes   hash    feedback on the thread's answers: "ANSWER_TS USER" -> "+" or "-", one vote per
                                          person per answer (store/feedback.py caps the fields). TTL AGENT_TTL,
                                          refreshed on a vote.
  agent:T:{g}:thread:C:TS:feedback hash   the thread's feedback counters ("up", "down": current votes). TTL
                                          AGENT_TTL, refreshed on a vote.
  agent:T:{g}:channel:C:feedback  hash    the same counters for the channel's threads of one shard; readers sum the
                                          shards. TTL AGENT_TTL, refreshed on a vote.
  agent:T:{g}:team:feedback       hash    the same counters for the workspace's threads of one shard; readers sum the
                                          shards. TTL AGENT_TTL, refreshed on a vote.
  agent:T:{g}:channel:C:feedback:S hash   only while the number of shards changes (store/reshard.py): what old
  agent:T:{g}:team:feedback:S     hash    shard S's channel or workspace feedback counters still hold once every
                                          thread moved out with its own counts (those of threads whose own counters
                                          expired first), on their way into shard g's. The TTL the old hash had.
  agent:T:{g}:task:ID             hash    one task (Task fields + reply_ts, error; a reset task also the ts list of
                                          the messages of the tasks it cancelled) and its journal: "step:N" = the
                                          JSON record of its Nth completed model, tool or summary call, so a resumed
                                          task continues after its last step (the steps are deleted when the task
                                          finishes). TTL TASK_TTL. Its existence is also the dedupe record for the
                                          Slack event_id that created it (an event always names the same thread).
  agent:T:user:U                  string  a user's display name. TTL USER_NAME_TTL.
  agent:T:title:C:TS              string  who titled the thread's agent session (store/titles.py): JSON {"by": "bot",
                                          "task"} once a task of the bot claimed it, {"by": "person", "title",
                                          "user"} once a person did.
                                          TTL AGENT_TTL, refreshed as the thread's tasks start. No hash tag: read
                                          and written alone, so it stays put when QUEUE_SHARDS changes, and the
                                          mark outlives a reset (Slack keeps the session's title through one).
  agent:T:installations           hash    where the app is installed (store/installations.py): "latest" = the latest
                                          installation, "user:U" = user U's latest, "bot" = the latest bot (its
                                          token, and the refresh token and expiry when tokens rotate), each JSON
                                          {"at": installed_at, "user", "record"} (a rotating bot's also "expires",
                                          by which it is ordered). T is the enterprise id (E...) for
                                          an org-wide install, found for every team of the org. The links between
                                          an org-wide install and the teams it serves: "org" = E in a team's hash,
                                          "team:T" in the org's. No TTL: an installation lasts until the app is
                                          uninstalled or its tokens revoked, and losing it would lock the workspace
                                          out; the links outlive an uninstall (a reinstall within the grace period
                                          brings the teams' agents back) and the grace period's sweep deletes them.
                                          No hash tag: one key, changed by single-key scripts.
  agent:T:left                    string  the time the app was uninstalled from team T (store/leaving.py): a task of
                                          the team that starts while it is set is refused. TTL the uninstall grace
                                          period plus a day (its data is deleted by then); an install deletes it.
                                          No hash tag: read and written alone.
  agent:T:rate:user:U             zset    the gate's rate limits (store/rate_limits.py): the mentions counted
  agent:T:rate:thread:C:TS        zset    against person U, against thread TS, and the allowed bots' mentions
  agent:T:rate:bots:C:TS          zset    counted against thread TS: Slack event id -> when (ms). Entries older
                                          than the window are dropped as the key is used. TTL the window (a minute;
                                          an hour for bots), refreshed by each entry. No hash tag: each is one key,
                                          read and written alone by a single-key script.
  agent:T:told:KIND:...           string  the event id of the refusal that told someone "no" (KIND not_allowed:C:U,
                                          rate:U, or bots:C:TS), so that each is told once: a day for the allow-lists,
                                          the wait it announced for the limits (its TTL). No hash tag: one key, alone.
  agent:T:limits                  hash    limits an admin set with `/agent limits` (store/limits.py): name -> value,
                                          overriding the settings (user_daily_usd, channel_daily_usd,
                                          workspace_daily_usd, user_per_minute, thread_per_minute,
                                          bot_turns_per_thread). No TTL: an admin's choice lasts until changed.
                                          No hash tag: read and written alone.
  agent:T:spend:DAY               hash    what the workspace spent on day DAY (UTC, YYYY-MM-DD) in micro-dollars
                                          (store/spend.py): "user:U", "channel:C" and "team" counters, each call's
                                          estimate reserved before it and settled to its real cost after. One key,
                                          so one script checks and reserves all three at once. TTL SPEND_TTL past
                                          the day's end (`/agent status` shows the day; nothing reads it later).
  agent:T:admin:U                 string  "1" or "0": whether users.info says U is a workspace admin or owner
                                          (bot/tasks/admins.py). TTL ADMIN_ROLE_TTL. No hash tag: read alone.
  agent:T:{g}:schedule:ID         hash    one schedule (store/schedules.py): its thread, kind (once, every), next run
                                          (ms), period, note, end (count, until, goal), created_by, fired count,
                                          consecutive failures, paused flag, ends_at (ms: when it can run no more,
                                          its until or its lifetime cap). In its thread's shard, so that firing it
                                          and queueing its task is one script. TTL: expires at ends_at + AGENT_TTL
                                          (a once timer due while every process was down still fires on start);
                                          firing it for the last time, a cancel or a reset deletes it sooner.
  agent:T:{g}:thread:C:TS:schedules zset  the thread's schedules: id -> when the schedule's hash expires (ms), so
                                          that a count drops the expired ones first (ZREMRANGEBYSCORE). TTL: the
                                          latest of its members' expiries, raised as schedules are added.
  agent:T:{g}:channel:C:schedules zset    the channel's schedules of one shard: "TS:ID" -> when the hash expires
                                          (ms); readers sum the shards. TTL as the thread's.
  agent:T:config:C                string  channel C's configuration (store/channel_config.py): JSON {version,
                                          instructions, model, tools, updated_by, updated_at}, set with
                                          `/agent config`. No TTL:
                                          an admin's choice lasts until changed (the uninstall sweep deletes it).
                                          No hash tag: read and written alone, by a single-key script.
  agent:T:memory:{T:C}:files      hash    channel C's memory (store/memory.py), shared by its threads' agents:
                                          "f:PATH" = the text of file PATH (/memories/...), "version" = raised by
                                          every change. Capped by MEMORY_MAX_BYTES and MEMORY_MAX_FILES. TTL
                                          AGENT_TTL, refreshed by every change and every agent's view of it: a
                                          memory no agent used for that long belongs to a channel that stopped
                                          using the bot. `/agent reset` does not touch it; the uninstall sweep
                                          deletes it. Tagged by the channel: one slot for it and its records.
  agent:T:memory:{T:C}:applied:ID string the result of memory tool call ID (a tool_use_id), written by the script
                                          that applied its change, so the call applied again (a task resumed after
                                          a crash before the journal recorded it) changes nothing. TTL TASK_TTL: a
                                          task is not resumed after that.

Shared by all teams:

  agent:{g}:queue                 stream  shard g's queue: one entry per thread of the shard with work; consumer
                                          group "workers". No TTL: entries are deleted (XACK + XDEL) when their
                                          thread's inbox is drained, so its length is the number of the shard's
                                          threads with work. Consumers idle for CONSUMER_IDLE_LIMIT_MS (an hour)
                                          with nothing pending are removed.
  agent:{g}:requeue               string  set while shard g owes a requeue: its stream had to be made again, and the
                                          threads whose flag names a lost entry need new ones. TTL DAY (a requeue
                                          takes seconds; a mark left by a crash is picked up by the next start).
  agent:layout                    hash    the layout this Redis holds: its version and shard count, and while a
                                          change of the shard count runs (`python -m bot migrate --queue-shards M`)
                                          "moving_to" = M. No TTL: it is what tells a process started with another
                                          QUEUE_SHARDS, or during a change, to stop.
  agent:{W}:stops                 list    stop notices for worker W (a consumer name): JSON {thread, task_id, by} of an
                                          answer it runs that a person asked to stop, pushed by whichever process took
                                          the request (store/stops.py) and popped by W's stop listener. Tagged by the
                                          worker, not namespaced by team: like a shard's queue it belongs to a process
                                          and serves every team. TTL STOP_NOTICE_TTL: a notice nobody took in that time
                                          has no listener behind it (its worker died), and needs none: the task's
                                          stop_by refuses it wherever it resumes.
  agent:{g}:timers                zset    shard g's due index: "T:C:TS:ID" (a schedule's thread and id) -> its
                                          next run (ms). Read by every worker's timer loop (one ZRANGEBYSCORE per
                                          shard per poll); a member leaves when its schedule ends, is paused or is
                                          cancelled, and one whose hash expired is dropped when it comes due. No TTL:
                                          like a shard's queue it serves every team, and losing it loses timers.
  agent:workers                   zset    worker name -> when it last said it was alive (every couple of seconds),
                                          for /agent status. TTL WORKERS_TTL, refreshed by every live worker.
  agent:oauth:state:S             string  an OAuth state S the install page handed out (store/oauth_states.py), for
                                          the redirect to consume once (GETDEL). Shared: nobody's team is known
                                          before the install. TTL the state's lifetime (OAuth flow setting).
  agent:leaving                   zset    team id -> the time the app was uninstalled from it: the teams whose
                                          agents' data is to be deleted once the grace period is over (the sweep
                                          reads the due ones). No TTL: a member leaves when its data is deleted or
                                          its team installs the app again.
  agent:health                    string  written by every /healthz check, to see that Redis takes writes (not only
                                          that it answers). TTL HEALTH_TTL.

Redis must run with maxmemory-policy noeviction (README): evicting a stream, a flag or an inbox loses queued
work, and the keys with TTLs above are the ones volatile-* policies would evict first.
"""

from __future__ import annotations

import zlib
from functools import cache

from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

from store.models import ThreadRef

PREFIX = "agent"
WORKERS = f"{PREFIX}:workers"
WORKER_GROUP = "workers"
LAYOUT = f"{PREFIX}:layout"
LAYOUT_VERSION = 2  # 1: one stream (agent:queue) and untagged keys, before Redis Cluster support

DAY = 24 * 3600
AGENT_TTL = 30 * DAY
# Slack retries an event for minutes, not days; a day keeps recent failures visible while bounding storage.
TASK_TTL = DAY
USER_NAME_TTL = DAY
WORKERS_TTL = 60
HEALTH = f"{PREFIX}:health"
HEALTH_TTL = 60
LEAVING = f"{PREFIX}:leaving"
# Spend counters are kept a day past their own day's end: long enough for the day's last settlements (a call that
# started before midnight) to land, short enough that old days do not pile up.
SPEND_TTL = DAY
# A workspace admin made or unmade is seen within ten minutes; people's roles are read once per that time at most.
ADMIN_ROLE_TTL = 600
# A live worker's stop listener takes a notice within a second; one still there after a minute has no listener.
STOP_NOTICE_TTL = 60
# A live worker reads the queue at least every few seconds, so a consumer idle for an hour has no process behind it.
CONSUMER_IDLE_LIMIT_MS = 3600 * 1000

DEFAULT_SHARDS = 16
MAX_SHARDS = 1024


@cache
def shard_tag(shard: int, shards: int) -> str:
    """The hash tag of shard `shard` of `shards`: "3-17" for a tag whose slot falls in the shard's 1/shards of the
    slot range, so the shards' slots spread evenly over a cluster whose nodes hold contiguous ranges of slots."""
    low = shard * REDIS_CLUSTER_HASH_SLOTS // shards
    high = (shard + 1) * REDIS_CLUSTER_HASH_SLOTS // shards
    suffix = 0
    while not low <= key_slot(f"{shard}-{suffix}".encode()) < high:
        suffix += 1
    return f"{shard}-{suffix}"


class KeySpace:
    """The key names of a deployment with `shards` queue shards."""

    def __init__(self, shards: int = DEFAULT_SHARDS) -> None:
        if not 1 <= shards <= MAX_SHARDS:
            raise ValueError(f"the number of queue shards must be between 1 and {MAX_SHARDS}, not {shards}")
        self.shards = shards
        self._tags = [shard_tag(shard, shards) for shard in range(shards)]

    def shard_of(self, ref: ThreadRef) -> int:
        """The shard a thread belongs to, for the life of the deployment (crc32 is the same in every process)."""
        return zlib.crc32(ref.encode().encode()) % self.shards

    def queue(self, shard: int) -> str:
        """Shard `shard`'s queue stream."""
        return f"{PREFIX}:{{{self._tags[shard]}}}:queue"

    def requeue_mark(self, shard: int) -> str:
        """Set while shard `shard` owes a requeue of the threads whose entry was lost with its stream."""
        return f"{PREFIX}:{{{self._tags[shard]}}}:requeue"

    def queues(self) -> list[str]:
        """Every shard's queue stream, by shard."""
        return [self.queue(shard) for shard in range(self.shards)]

    def thread_queue(self, ref: ThreadRef) -> str:
        """The queue stream of the thread's shard."""
        return self.queue(self.shard_of(ref))

    def _team(self, team_id: str, shard: int) -> str:
        return f"{PREFIX}:{team_id}:{{{self._tags[shard]}}}"

    def _thread(self, ref: ThreadRef, part: str) -> str:
        return f"{self._team(ref.team_id, self.shard_of(ref))}:thread:{ref.channel_id}:{ref.thread_ts}:{part}"

    def state(self, ref: ThreadRef) -> str:
        """The agent's state hash."""
        return self._thread(ref, "state")

    def inbox(self, ref: ThreadRef) -> str:
        """The thread's unfinished task ids."""
        return self._thread(ref, "inbox")

    def queued(self, ref: ThreadRef) -> str:
        """The thread's queue entry and lease."""
        return self._thread(ref, "queued")

    def queued_pattern(self, shard: int) -> str:
        """SCAN MATCH for the queued flag of every thread of the shard."""
        return f"{PREFIX}:*:{{{self._tags[shard]}}}:thread:*:queued"

    def thread_of_queued(self, key: str) -> ThreadRef | None:
        """The thread whose queued flag `key` is; None for a key that only looks like one."""
        parts = key.split(":")
        if len(parts) != 7 or parts[0] != PREFIX or parts[3] != "thread" or parts[6] != "queued":
            return None
        try:
            ref = ThreadRef(parts[1], parts[4], parts[5])
        except ValueError:
            return None
        return ref if self.queued(ref) == key else None

    def task(self, ref: ThreadRef, task_id: str) -> str:
        """One task's hash (in its thread's shard)."""
        return f"{self._team(ref.team_id, self.shard_of(ref))}:task:{task_id}"

    def channel_threads(self, team_id: str, channel_id: str, shard: int) -> str:
        """The index of the channel's threads of one shard, by last activity."""
        return f"{self._team(team_id, shard)}:channel:{channel_id}:threads"

    def channel_usage(self, team_id: str, channel_id: str, shard: int) -> str:
        """The usage counters of the channel's threads of one shard."""
        return f"{self._team(team_id, shard)}:channel:{channel_id}:usage"

    def staged_usage(self, team_id: str, channel_id: str, shard: int, source: int) -> str:
        """The usage counters of shard `source` of the old shard count, on their way into shard `shard`'s."""
        return f"{self.channel_usage(team_id, channel_id, shard)}:{source}"

    def shard_of_tag(self, tag: str) -> int | None:
        """The shard whose hash tag is `tag` (without braces), or None if no shard of this key space has it."""
        number, _, _ = tag.partition("-")
        if not number.isdigit() or int(number) >= self.shards:
            return None
        return int(number) if self._tags[int(number)] == tag else None

    def thread_channel_threads(self, ref: ThreadRef) -> str:
        """The channel index a thread is listed in."""
        return self.channel_threads(ref.team_id, ref.channel_id, self.shard_of(ref))

    def thread_channel_usage(self, ref: ThreadRef) -> str:
        """The channel usage counters a thread's tasks add to."""
        return self.channel_usage(ref.team_id, ref.channel_id, self.shard_of(ref))

    def answer_votes(self, ref: ThreadRef) -> str:
        """The votes on the thread's answers, one per person per answer."""
        return self._thread(ref, "votes")

    def thread_feedback(self, ref: ThreadRef) -> str:
        """The thread's feedback counters."""
        return self._thread(ref, "feedback")

    def channel_feedback(self, team_id: str, channel_id: str, shard: int) -> str:
        """The feedback counters of the channel's threads of one shard."""
        return f"{self._team(team_id, shard)}:channel:{channel_id}:feedback"

    def team_feedback(self, team_id: str, shard: int) -> str:
        """The feedback counters of the workspace's threads of one shard."""
        return f"{self._team(team_id, shard)}:team:feedback"

    def staged_channel_feedback(self, team_id: str, channel_id: str, shard: int, source: int) -> str:
        """Shard `source`'s channel feedback counters (of the old shard count), on their way into shard `shard`'s."""
        return f"{self.channel_feedback(team_id, channel_id, shard)}:{source}"

    def schedule(self, ref: ThreadRef, schedule_id: str) -> str:
        """One schedule's hash, in its thread's shard."""
        return f"{self._team(ref.team_id, self.shard_of(ref))}:schedule:{schedule_id}"

    def thread_schedules(self, ref: ThreadRef) -> str:
        """The thread's schedules, by when each expires."""
        return self._thread(ref, "schedules")

    def channel_schedules(self, team_id: str, channel_id: str, shard: int) -> str:
        """The channel's schedules of one shard ("TS:ID"), by when each expires."""
        return f"{self._team(team_id, shard)}:channel:{channel_id}:schedules"

    def timers(self, shard: int) -> str:
        """Shard `shard`'s due index: the schedules of its threads by next run."""
        return f"{PREFIX}:{{{self._tags[shard]}}}:timers"

    def staged_team_feedback(self, team_id: str, shard: int, source: int) -> str:
        """Shard `source`'s workspace feedback counters (of the old shard count), on their way into shard `shard`'s."""
        return f"{self.team_feedback(team_id, shard)}:{source}"


TURN_FIELD = "turn:"  # + the turn's number, in the state hash
STEP_FIELD = "step:"  # + the step's number, in the task hash


def stop_notices(consumer: str) -> str:
    """The list of stop notices for the worker named `consumer` (one key, alone: it needs no shard)."""
    return f"{PREFIX}:{{{consumer}}}:stops"


def user_name(team_id: str, user_id: str) -> str:
    """A cached display name (one key, read and written alone: it needs no shard)."""
    return f"{PREFIX}:{team_id}:user:{user_id}"


def session_title(ref: ThreadRef) -> str:
    """Who titled the thread's agent session (one key, read and written alone: it needs no shard)."""
    return f"{PREFIX}:{ref.team_id}:title:{ref.channel_id}:{ref.thread_ts}"


def installations(owner_id: str) -> str:
    """A workspace's installations and bot: owner_id is its team id, or its enterprise id for an org-wide install
    (one key, changed by single-key scripts: it needs no shard)."""
    return f"{PREFIX}:{owner_id}:installations"


def oauth_state(state: str) -> str:
    """An issued OAuth state, until it is consumed or expires (one key, alone: it needs no shard)."""
    return f"{PREFIX}:oauth:state:{state}"


def token_refresh_lock(owner_id: str) -> str:
    """Held by the one process refreshing a workspace's expiring bot token (Slack's refresh token is single use);
    it expires after the lock's PX, so a process that died holding it blocks no one for long."""
    return f"{PREFIX}:{owner_id}:token-refresh"


def team_left(team_id: str) -> str:
    """When the app was uninstalled from the team, while its data waits out the grace period (one key, alone)."""
    return f"{PREFIX}:{team_id}:left"


# --- operator controls (issue 19): gate ---
def rate_by_user(team_id: str, user_id: str) -> str:
    """The mentions counted against a person's rate limit (one key, alone: it needs no shard)."""
    return f"{PREFIX}:{team_id}:rate:user:{user_id}"


def rate_by_thread(ref: ThreadRef) -> str:
    """The mentions counted against a thread's rate limit (one key, alone)."""
    return f"{PREFIX}:{ref.team_id}:rate:thread:{ref.channel_id}:{ref.thread_ts}"


def bot_turns(ref: ThreadRef) -> str:
    """The allowed bots' mentions counted against a thread's limit on bot turns (one key, alone)."""
    return f"{PREFIX}:{ref.team_id}:rate:bots:{ref.channel_id}:{ref.thread_ts}"


def told_not_allowed(team_id: str, channel_id: str, user_id: str) -> str:
    """Set once a person was told the bot is not enabled for them in a channel (one key, alone)."""
    return f"{PREFIX}:{team_id}:told:not_allowed:{channel_id}:{user_id}"


def told_rate_limited(team_id: str, user_id: str) -> str:
    """Set once a person was told to wait for a rate limit (one key, alone)."""
    return f"{PREFIX}:{team_id}:told:rate:{user_id}"


def told_bot_turns(ref: ThreadRef) -> str:
    """Set once a thread was told that it answers no more bots for now (one key, alone)."""
    return f"{PREFIX}:{ref.team_id}:told:bots:{ref.channel_id}:{ref.thread_ts}"


# --- end of gate ---


# --- operator controls (issue 19): admins and budgets ---
def limits(team_id: str) -> str:
    """The limits an admin set for the workspace, overriding the settings (one key, alone: it needs no shard)."""
    return f"{PREFIX}:{team_id}:limits"


def spend(team_id: str, day: str) -> str:
    """The workspace's spend counters of one UTC day, YYYY-MM-DD (one key, alone: it needs no shard)."""
    return f"{PREFIX}:{team_id}:spend:{day}"


def admin_role(team_id: str, user_id: str) -> str:
    """Whether Slack says the user is a workspace admin or owner, cached (one key, alone: it needs no shard)."""
    return f"{PREFIX}:{team_id}:admin:{user_id}"


# --- end of admins and budgets ---


def channel_config(team_id: str, channel_id: str) -> str:
    """A channel's configuration from `/agent config` (one key, alone: it needs no shard)."""
    return f"{PREFIX}:{team_id}:config:{channel_id}"


def memory_files(scope: str) -> str:
    """A channel's memory files; scope is "T:C" (tagged by the scope: one slot with its applied records)."""
    team_id, _, _ = scope.partition(":")
    return f"{PREFIX}:{team_id}:memory:{{{scope}}}:files"


def memory_applied(scope: str, tool_use_id: str) -> str:
    """The recorded result of one memory tool call of the scope (in the slot of the scope's files)."""
    team_id, _, _ = scope.partition(":")
    return f"{PREFIX}:{team_id}:memory:{{{scope}}}:applied:{tool_use_id}"
