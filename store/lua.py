"""The Lua scripts behind the queue and the journal. Each runs atomically in Redis: one round trip, no races.

Scripts that change a running task are *fenced*: they first check, in the same atomic step, that the caller
still holds the queue entry of the task's thread (it is that consumer's in the group's pending list) and that the
thread's `queued` flag names that entry. A worker that stalled past its lease and was replaced, or that holds a
second entry for a thread whose flag names another, therefore cannot write anything: the script returns FENCED.
Fenced scripts take KEYS[1] = the queue stream, the thread's queued flag as their *last* key, ARGV[1] = the entry
id, ARGV[2] = the consumer name.
"""

from __future__ import annotations

from store import keys
from store.errors import LeaseLost

FENCED = -2


def unless_fenced(result: object, entry_id: str) -> int:
    """A fenced script's result; LeaseLost if the script refused to write because the lease moved on."""
    value = int(str(result))
    if value == FENCED:
        raise LeaseLost(f"lease on {entry_id} passed to another worker; write refused")
    return value


# Whether the stream holds the entry id in `var` (an id that is not one, like a flag written by hand, is not held:
# pcall turns XRANGE's error into a table of length 0).
def _entry_exists(var: str) -> str:
    return f"#redis.pcall('XRANGE', KEYS[1], {var}, {var}) > 0"


# The flag is the thread's single source of truth about which entry owns it. If it names another entry that still
# exists (the flag was lost before its entry was released, and a submit made a second entry), the caller's entry
# is a duplicate: it is dropped and the caller fenced, so two workers never run one thread. If the flag is missing
# or names nothing (lost, or written by an older release as "1"), the caller's entry is the thread's only one, and
# the flag is restored.
_FENCE = f"""
local pending = redis.call('XPENDING', KEYS[1], '{keys.WORKER_GROUP}', ARGV[1], ARGV[1], 1)
if pending[1] == nil or pending[1][2] ~= ARGV[2] then return {FENCED} end
local flag = redis.call('GET', KEYS[#KEYS])
if flag ~= ARGV[1] then
  if flag and {_entry_exists("flag")} then
    redis.call('XACK', KEYS[1], '{keys.WORKER_GROUP}', ARGV[1])
    redis.call('XDEL', KEYS[1], ARGV[1])
    return {FENCED}
  end
  redis.call('SET', KEYS[#KEYS], ARGV[1])
end
"""

# Dedupe on the task id (the Slack event_id), record the task, append it to the thread's inbox, and put the
# thread on the queue unless it is already there (the `queued` flag then holds the entry's id, so that a reset
# can revoke it). An answer also creates the agent and lists the thread in its channel's index.
# A flag whose entry is gone (the stream was deleted, evicted or lost in a restart) gets a new entry: otherwise
# the thread would never run again. The reverse, a flag lost while its entry survives, cannot happen under the
# noeviction policy the README requires short of a hand-made DEL (the two are written and deleted in the same
# scripts, and scripts reach the AOF and replicas whole), so a missing flag is taken to mean "no entry" without
# reading the whole stream on every first mention of a thread. Except when work was already waiting in the inbox:
# then the thread must have an entry (the flag is only deleted with an empty inbox), so the stream is searched for
# it - an O(threads with work) read, in a case that should never happen. Should a second entry arise anyway (the
# flag lost while the inbox was empty but the entry not yet released), the flag fences the other out (_FENCE).
# KEYS: task, inbox, queued flag, queue, state, channel index.
# ARGV: thread, task id, kind, task ttl, agent ttl, now, fields JSON, thread ts.
SUBMIT = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if ARGV[3] == 'note' and redis.call('EXISTS', KEYS[5]) == 0 then return -1 end
for field, value in pairs(cjson.decode(ARGV[7])) do redis.call('HSET', KEYS[1], field, value) end
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('RPUSH', KEYS[2], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[5])
if ARGV[3] == 'answer' then
  redis.call('HSETNX', KEYS[5], 'created_at', ARGV[6])
  redis.call('HSETNX', KEYS[5], 'status', 'queued')
  redis.call('EXPIRE', KEYS[5], ARGV[5])
  redis.call('ZADD', KEYS[6], 'NX', ARGV[6], ARGV[8])
  redis.call('EXPIRE', KEYS[6], ARGV[5])
end
local entry = redis.call('GET', KEYS[3])
if entry and #redis.pcall('XRANGE', KEYS[4], entry, entry) > 0 then return 1 end
if (not entry or entry == '1') and redis.call('LLEN', KEYS[2]) > 1 then  -- lost, or written by an older release
  for _, item in ipairs(redis.call('XRANGE', KEYS[4], '-', '+')) do
    if item[2][1] == 'thread' and item[2][2] == ARGV[1] then
      redis.call('SET', KEYS[3], item[1])
      return 1
    end
  end
end
redis.call('SET', KEYS[3], redis.call('XADD', KEYS[4], '*', 'thread', ARGV[1]))
return 1
"""

# Reset a thread's agent at once. Its queued and running tasks are cancelled (their journals deleted), its state,
# turns and summary deleted, and its queue entry revoked: a worker still running a cancelled task no longer holds
# the entry, so each of its writes is refused (see the fence) and nothing it was doing lands. Then the reset task
# itself (it posts the note in the thread) is queued as the first task of a fresh inbox, under a fresh entry.
# Returns 0 for a reset already requested (same task id), else the reply ts of the cancelled tasks' messages
# (that the reset task removes from the thread) as a JSON list. Running tasks that had posted no recorded message
# yet are listed too (cancelled_unrecorded): the reset task finds their message by its metadata, if there is one.
# KEYS: reset task, inbox, queued flag, queue, state, turns, channel index.
# ARGV: thread, reset task id, task ttl, agent ttl, fields JSON, thread ts, task key prefix.
RESET = f"""
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local replies, unrecorded = {{}}, {{}}
for _, id in ipairs(redis.call('LRANGE', KEYS[2], 0, -1)) do
  local task = ARGV[7] .. id
  local status = redis.call('HGET', task, 'status')
  if status == 'queued' or status == 'running' then
    redis.call('HSET', task, 'status', 'cancelled')
    local reply = redis.call('HGET', task, 'reply_ts')
    if reply then table.insert(replies, reply)
    elseif status == 'running' then table.insert(unrecorded, id) end
    local fields = redis.call('HGETALL', task)  -- the further parts of a long answer: reply_ts:1, reply_ts:2...
    for i = 1, #fields, 2 do
      if string.sub(fields[i], 1, 9) == 'reply_ts:' then table.insert(replies, fields[i + 1]) end
    end
    -- an earlier reset that had not run yet: its cleanup becomes this one's
    local earlier = redis.call('HGET', task, 'cancelled_replies')
    if earlier then for _, ts in ipairs(cjson.decode(earlier)) do table.insert(replies, ts) end end
    earlier = redis.call('HGET', task, 'cancelled_unrecorded')
    if earlier then for _, other in ipairs(cjson.decode(earlier)) do table.insert(unrecorded, other) end end
  end
  redis.call('DEL', task .. ':steps')
end
local entry = redis.call('GET', KEYS[3])
if entry == '1' then  -- a flag written before flags held the entry id: find the entry
  for _, item in ipairs(redis.call('XRANGE', KEYS[4], '-', '+')) do
    if item[2][2] == ARGV[1] then entry = item[1] end
  end
end
if entry then
  redis.call('XACK', KEYS[4], '{keys.WORKER_GROUP}', entry)
  redis.call('XDEL', KEYS[4], entry)
end
redis.call('DEL', KEYS[2], KEYS[3], KEYS[5], KEYS[6])
redis.call('ZREM', KEYS[7], ARGV[6])
local cancelled = #replies > 0 and cjson.encode(replies) or '[]'  -- cjson writes an empty table as {{}}
local fields = cjson.decode(ARGV[5])
fields['cancelled_replies'] = cancelled
fields['cancelled_unrecorded'] = #unrecorded > 0 and cjson.encode(unrecorded) or '[]'
for field, value in pairs(fields) do redis.call('HSET', KEYS[1], field, value) end
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('RPUSH', KEYS[2], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[4])
redis.call('SET', KEYS[3], redis.call('XADD', KEYS[4], '*', 'thread', ARGV[1]))
return cancelled
"""

# Count an attempt. An answer (re)creates its agent, which a reset earlier in the inbox may have cleared;
# other kinds only mark an existing agent busy, so no state hash is ever left without its TTL.
# KEYS: queue, task, state. ARGV: entry, consumer, kind, now, agent ttl.
START = (
    _FENCE
    + """
local attempts = redis.call('HINCRBY', KEYS[2], 'attempts', 1)
redis.call('HSET', KEYS[2], 'status', 'running')
if ARGV[3] == 'answer' then
  redis.call('HSETNX', KEYS[3], 'created_at', ARGV[4])
  redis.call('HSET', KEYS[3], 'status', 'working')
  redis.call('EXPIRE', KEYS[3], ARGV[5])
elseif redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('HSET', KEYS[3], 'status', 'working')
end
return attempts
"""
)

# Set fields of a running task (its reply message's ts). KEYS: queue, task. ARGV: entry, consumer, field, value...
SET_FIELDS = (
    _FENCE
    + """
redis.call('HSET', KEYS[2], unpack(ARGV, 3))
return 1
"""
)

# Only the fence: whether the caller still holds the entry (checked just before an answer goes to Slack).
# KEYS: queue. ARGV: entry, consumer.
HOLDS = _FENCE + "return 1"

# Journal one completed step. KEYS: queue, steps list. ARGV: entry, consumer, step JSON, ttl.
RECORD_STEP = (
    _FENCE
    + """
local n = redis.call('RPUSH', KEYS[2], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[4])
return n
"""
)

# Finish a task and write what it produced in one step, so a crash leaves either both or neither, and finishing
# twice (a resumed task) writes nothing the second time. A fold (a.evict > 0) drops that many of the oldest
# turns from the window after the new ones are added, and stores the summary that now covers them; never all of
# them, whatever it was asked (a fold leaves at least one turn, and a count made for another window must not
# empty this one).
# KEYS: queue, task, inbox, state, turns, channel index, channel usage, steps.
# ARGV: entry, consumer, arguments JSON, turn JSON...
FINISH = (
    _FENCE
    + """
local a = cjson.decode(ARGV[3])
local status = redis.call('HGET', KEYS[2], 'status')
local function pop_inbox()
  if redis.call('LINDEX', KEYS[3], 0) == a.task_id then redis.call('LPOP', KEYS[3])
  else redis.call('LREM', KEYS[3], 1, a.task_id) end
end
redis.call('DEL', KEYS[8])
if status == 'done' or status == 'failed' or status == 'cancelled' then pop_inbox() return 0 end
redis.call('HSET', KEYS[2], 'status', a.status, 'finished_at', a.now, 'error', a.error)
if a.clear_agent then
  redis.call('DEL', KEYS[4], KEYS[5])
  redis.call('ZREM', KEYS[6], a.thread_ts)
elseif #ARGV == 3 and a.usage.model_calls == 0 and redis.call('EXISTS', KEYS[4]) == 0 then
  -- nothing to remember (a status request) for a thread without an agent: do not create one
else
  for i = 4, #ARGV do redis.call('RPUSH', KEYS[5], ARGV[i]) end
  local evict = math.min(a.evict, redis.call('LLEN', KEYS[5]) - 1)
  if evict > 0 then
    redis.call('LTRIM', KEYS[5], evict, -1)
    redis.call('HINCRBY', KEYS[4], 'summarized_turns', evict)
  end
  if a.summary then redis.call('HSET', KEYS[4], 'summary', a.summary) end
  redis.call('HSETNX', KEYS[4], 'created_at', a.now)
  redis.call('HSET', KEYS[4], 'updated_at', a.now, 'status', 'idle')
  redis.call('HINCRBY', KEYS[4], 'turns', #ARGV - 3)
  for name, value in pairs(a.usage) do
    redis.call('HINCRBY', KEYS[4], name, value)
    redis.call('HINCRBY', KEYS[7], name, value)
  end
  if a.status == 'done' then
    if a.counts_as_task then redis.call('HINCRBY', KEYS[4], 'tasks_done', 1) end
    redis.call('HDEL', KEYS[4], 'last_error')  -- the latest task went well: the agent is not failing
  else
    redis.call('HINCRBY', KEYS[4], 'tasks_failed', 1)
    redis.call('HSET', KEYS[4], 'last_error', a.error)
  end
  redis.call('EXPIRE', KEYS[4], a.ttl)
  if redis.call('EXISTS', KEYS[5]) == 1 then redis.call('EXPIRE', KEYS[5], a.ttl) end
  if redis.call('EXISTS', KEYS[7]) == 1 then redis.call('EXPIRE', KEYS[7], a.ttl) end
  redis.call('ZADD', KEYS[6], a.now, a.thread_ts)
  redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', a.now - a.ttl)
  redis.call('EXPIRE', KEYS[6], a.ttl)
end
pop_inbox()
return 1
"""
)

# Give the thread back only when its inbox is empty, checked in the same step as a submit checks the `queued`
# flag, so a task submitted meanwhile is never stranded without an entry.
# KEYS: queue, inbox, queued flag. ARGV: entry, consumer.
RELEASE = (
    _FENCE
    + f"""
if redis.call('LLEN', KEYS[2]) > 0 then return 0 end
redis.call('DEL', KEYS[3])
redis.call('XACK', KEYS[1], '{keys.WORKER_GROUP}', ARGV[1])
redis.call('XDEL', KEYS[1], ARGV[1])
return 1
"""
)

# Renew the lease on entries this consumer still owns; report the ones it no longer holds: taken over by another
# consumer, or revoked by a reset. (A worker stops asking about an entry as soon as it releases it.)
# KEYS: queue. ARGV: consumer, entry ids...
HEARTBEAT = f"""
local lost = {{}}
for i = 2, #ARGV do
  local id = ARGV[i]
  local pending = redis.call('XPENDING', KEYS[1], '{keys.WORKER_GROUP}', id, id, 1)
  if pending[1] ~= nil and pending[1][2] == ARGV[1] then
    redis.call('XCLAIM', KEYS[1], '{keys.WORKER_GROUP}', ARGV[1], 0, id, 'JUSTID')
  else
    table.insert(lost, id)
  end
end
return lost
"""

# Give a thread whose flag outlived its entry (the stream was lost) a new entry if it still has work, or drop the
# flag if it has none. Run for every flag after the consumer group had to be created; harmless to run twice.
# KEYS: queue, queued flag, inbox. ARGV: thread. Returns 1 (requeued), -1 (flag dropped) or 0 (nothing to do).
REQUEUE = f"""
local entry = redis.call('GET', KEYS[2])
if not entry or {_entry_exists("entry")} then return 0 end
if redis.call('LLEN', KEYS[3]) == 0 then
  redis.call('DEL', KEYS[2])
  return -1
end
redis.call('SET', KEYS[2], redis.call('XADD', KEYS[1], '*', 'thread', ARGV[1]))
return 1
"""

# Remove consumers idle for longer than ARGV[1] ms that hold nothing. Checked and removed in one atomic step: a
# consumer removed with entries pending would lose them (XGROUP DELCONSUMER drops its pending list), leaving their
# threads in the stream with nobody to deliver them to. Returns the names removed.
# KEYS: queue. ARGV: min idle ms.
PRUNE_CONSUMERS = f"""
local consumers = redis.pcall('XINFO', 'CONSUMERS', KEYS[1], '{keys.WORKER_GROUP}')
if consumers.err then return {{}} end
local removed = {{}}
for _, flat in ipairs(consumers) do
  local c = {{}}
  for i = 1, #flat, 2 do c[flat[i]] = flat[i + 1] end
  if tonumber(c.pending) == 0 and tonumber(c.idle) > tonumber(ARGV[1]) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], '{keys.WORKER_GROUP}', c.name)
    table.insert(removed, c.name)
  end
end
return removed
"""

ALL = (SUBMIT, RESET, START, HOLDS, SET_FIELDS, RECORD_STEP, FINISH, RELEASE, HEARTBEAT, REQUEUE, PRUNE_CONSUMERS)
