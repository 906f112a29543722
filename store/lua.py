"""The Lua scripts behind the queue and the journal. Each runs atomically in Redis: one round trip, no races.

Every script declares every key it touches in KEYS, and all of them are keys of one thread's shard (one hash
tag), so on Redis Cluster each runs on the node that holds that slot.

Scripts that change a running task are *fenced*: they first check, in the same atomic step, that the caller
still holds the thread. The thread's `queued` flag says who does: "ENTRY" (the thread's queue entry, held by
the consumer the stream delivered it to) or "ENTRY CONSUMER" (taken over by CONSUMER, whose first write put
its name there). The common check is one GET. A caller that took the entry over from a stalled worker (the
group's pending list says it is the caller's now) writes its name into the flag, after which the stalled worker
is refused: every script returns FENCED to it. A worker taking over a stalled worker's entry names itself in the
flag in the same step (TAKE_OVER), so the stalled one's next check fails at once. A reset gives the thread a new
entry, which refuses the old one.
Fenced scripts take KEYS[1] = the thread's queued flag, KEYS[2] = its shard's stream, ARGV[1] = the entry id,
ARGV[2] = the consumer name.
"""

from __future__ import annotations

from store import keys
from store.errors import LeaseLost

FENCED = -2
INBOX_CHANGED = -3  # RESET, STOP: the inbox changed since the caller read it; read it again and retry
STOPPED = -4  # START, RECORD_STEP: a person asked to stop the task (its stop_by is set); nothing was written

_GROUP = keys.WORKER_GROUP


def unless_fenced(result: object, entry_id: str) -> int:
    """A fenced script's result; LeaseLost if the script refused to write because the lease moved on."""
    value = int(str(result))
    if value == FENCED:
        raise LeaseLost(f"lease on {entry_id} passed to another worker; write refused")
    return value


# holds(adopt): whether the caller holds the thread, making the flag name it if it took the entry over. If the
# flag names another entry that still exists (the flag was lost and a submit made a second entry), the caller's
# entry is a duplicate: it is dropped, so two workers never run one thread. If the flag is missing or names
# nothing, the caller's entry is the thread's only one, and the flag is restored to name it.
_HOLDS = f"""
local function holds(adopt)
  local flag = redis.call('GET', KEYS[1])
  local token = ARGV[1] .. ' ' .. ARGV[2]
  if flag == token or (flag == ARGV[1] and not adopt) then return true end
  local named = flag and string.match(flag, '^%S+')
  if named and named ~= ARGV[1] and #redis.pcall('XRANGE', KEYS[2], named, named) > 0 then
    redis.call('XACK', KEYS[2], '{_GROUP}', ARGV[1])
    redis.call('XDEL', KEYS[2], ARGV[1])
    return false
  end
  local pending = redis.call('XPENDING', KEYS[2], '{_GROUP}', ARGV[1], ARGV[1], 1)
  if pending[1] == nil or pending[1][2] ~= ARGV[2] then return false end
  redis.call('SET', KEYS[1], token)
  return true
end
"""

# Give the thread back: its flag and its entry go together.
_RELEASE_ENTRY = f"""
local function release()
  redis.call('DEL', KEYS[1])
  redis.call('XACK', KEYS[2], '{_GROUP}', ARGV[1])
  redis.call('XDEL', KEYS[2], ARGV[1])
end
"""

# Dedupe on the task id (the Slack event_id), record the task, append it to the thread's inbox, and put the
# thread on its shard's queue if the inbox was empty. An empty inbox means the thread has no entry: the scripts
# that empty an inbox (FINISH, RELEASE) release the entry in the same step, and a reset replaces both. With work
# waiting, the entry the flag names is checked (two reads) and made again if Redis lost it; the workers also
# requeue every such thread when they make a lost stream again. An answer (or a scheduled run) lists the thread in
# its channel's index, so that a channel reset reaches it before it has finished. A Lua function, so that the
# timers' script (store/schedules_lua.py) queues a task exactly as intake does. Returns 1 (queued), 0 (a task of
# that id was recorded before) or -1 (a note for a thread without an agent: nothing recorded).
# k: task, inbox, queued flag, queue, state, channel index. a: thread, task id, kind, task ttl, agent ttl, now,
# fields (a table), thread ts.
SUBMIT_TASK = """
local function submit_task(k, a)
  if redis.call('EXISTS', k[1]) == 1 then return 0 end
  if a[3] == 'note' and redis.call('EXISTS', k[5]) == 0 and redis.call('EXISTS', k[2]) == 0 then
    return -1
  end
  local fields = {}
  for field, value in pairs(a[7]) do
    fields[#fields + 1] = field
    fields[#fields + 1] = value
  end
  redis.call('HSET', k[1], unpack(fields))
  redis.call('EXPIRE', k[1], a[4])
  local waiting = redis.call('RPUSH', k[2], a[2])
  if (a[3] == 'answer' or a[3] == 'scheduled') and redis.call('ZADD', k[6], 'NX', a[6], a[8]) == 1 then
    redis.call('EXPIRE', k[6], a[5])
  end
  if waiting > 1 then  -- work was waiting: the thread has an entry, unless Redis lost it (then it gets a new one)
    local flag = redis.call('GET', k[3])
    local entry = flag and string.match(flag, '^%S+')
    if entry and #redis.pcall('XRANGE', k[4], entry, entry) > 0 then return 1 end
  end
  redis.call('SET', k[3], redis.call('XADD', k[4], '*', 'thread', a[1]))
  return 1
end
"""

# Intake's script: submit_task for one task.
# KEYS: task, inbox, queued flag, queue, state, channel index.
# ARGV: thread, task id, kind, task ttl, agent ttl, now, fields JSON, thread ts.
SUBMIT = (
    SUBMIT_TASK
    + """
return submit_task(KEYS, {ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], cjson.decode(ARGV[7]), ARGV[8]})
"""
)

# Reset a thread's agent at once. Its queued and running tasks are cancelled (their journals deleted), its state
# deleted, and its queue entry revoked: a worker still running a cancelled task no longer holds the thread, so
# each of its writes is refused and nothing it was doing lands. Then the reset task itself (it posts the note in
# the thread) is queued as the first task of a fresh inbox, under a fresh entry.
# The caller reads the inbox first and passes its task ids, so that the script can declare their keys; if the
# inbox changed meanwhile the script changes nothing and returns INBOX_CHANGED (read again and retry).
# Returns 0 for a reset already requested (same task id), else the reply ts of the cancelled tasks' messages
# (that the reset task removes from the thread) as a JSON list. Running tasks that had posted no recorded message
# yet are listed too (cancelled_unrecorded): the reset task finds their message by its metadata, if there is one.
# KEYS: reset task, inbox, queued flag, queue, state, channel index, then the task of each inbox id.
# ARGV: thread, reset task id, task ttl, agent ttl, fields JSON, thread ts, then the inbox ids.
RESET = f"""
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local inbox = redis.call('LRANGE', KEYS[2], 0, -1)
if #inbox ~= #ARGV - 6 then return {INBOX_CHANGED} end
for i, id in ipairs(inbox) do
  if id ~= ARGV[6 + i] then return {INBOX_CHANGED} end
end
local replies, unrecorded = {{}}, {{}}
for i, id in ipairs(inbox) do
  local task = KEYS[6 + i]
  local fields = redis.call('HGETALL', task)
  local record = {{}}
  for j = 1, #fields, 2 do record[fields[j]] = fields[j + 1] end
  if record.status == 'queued' or record.status == 'running' then
    redis.call('HSET', task, 'status', 'cancelled')
    if record.reply_ts then table.insert(replies, record.reply_ts)
    elseif record.status == 'running' then table.insert(unrecorded, id) end
    -- an earlier reset that had not run yet: its cleanup becomes this one's
    if record.cancelled_replies then
      for _, ts in ipairs(cjson.decode(record.cancelled_replies)) do table.insert(replies, ts) end
    end
    if record.cancelled_unrecorded then
      for _, other in ipairs(cjson.decode(record.cancelled_unrecorded)) do table.insert(unrecorded, other) end
    end
  end
  local steps = {{}}
  for j = 1, #fields, 2 do
    local name = fields[j]
    if string.sub(name, 1, 5) == '{keys.STEP_FIELD}' then table.insert(steps, name)
    elseif string.sub(name, 1, 9) == 'reply_ts:' and (record.status == 'queued' or record.status == 'running') then
      table.insert(replies, fields[j + 1])  -- the further parts of a long answer
    end
  end
  if #steps > 0 then redis.call('HDEL', task, unpack(steps)) end
end
local flag = redis.call('GET', KEYS[3])
local entry = flag and string.match(flag, '^%S+')
if entry then
  redis.call('XACK', KEYS[4], '{_GROUP}', entry)
  redis.call('XDEL', KEYS[4], entry)
end
redis.call('DEL', KEYS[2], KEYS[3], KEYS[5])
redis.call('ZREM', KEYS[6], ARGV[6])
local cancelled = #replies > 0 and cjson.encode(replies) or '[]'  -- cjson writes an empty table as {{}}
local fields = cjson.decode(ARGV[5])
fields['cancelled_replies'] = cancelled
fields['cancelled_unrecorded'] = #unrecorded > 0 and cjson.encode(unrecorded) or '[]'
local flat = {{}}
for field, value in pairs(fields) do
  flat[#flat + 1] = field
  flat[#flat + 1] = value
end
redis.call('HSET', KEYS[1], unpack(flat))
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('RPUSH', KEYS[2], ARGV[2])
redis.call('SET', KEYS[3], redis.call('XADD', KEYS[4], '*', 'thread', ARGV[1]))
return cancelled
"""

# Count an attempt (the caller read the task's attempts a moment ago; the fence makes it the only writer). A task a
# person asked to stop is not started again (a worker that died while it ran, a retry): STOPPED, nothing written.
# KEYS: queued flag, queue, task. ARGV: entry, consumer, adopt ("1": the entry was taken over), attempt.
START = (
    _HOLDS
    + f"""
if not holds(ARGV[3] == '1') then return {FENCED} end
if redis.call('HEXISTS', KEYS[3], 'stop_by') == 1 then return {STOPPED} end
redis.call('HSET', KEYS[3], 'attempts', ARGV[4], 'status', 'running')
return tonumber(ARGV[4])
"""
)

# Only the fence, for when the one-GET check in Python is not enough (the flag does not name the caller as
# expected: it may have to be restored or taken over). KEYS: queued flag, queue. ARGV: entry, consumer.
HOLDS = _HOLDS + f"if not holds(false) then return {FENCED} end return 1"

# Set fields of a running task (its reply message's ts). KEYS: queued flag, queue, task. ARGV: entry, consumer,
# field, value...
SET_FIELDS = (
    _HOLDS
    + f"""
if not holds(false) then return {FENCED} end
redis.call('HSET', KEYS[3], unpack(ARGV, 3))
return 1
"""
)

# Journal one completed step as field step:N of the task, never over an earlier one (returns 0 then). The same step
# already there is success: redis-py's cluster client sends a command again after a connection error or timeout
# even when its first send ran. A stoppable step (the answer's model and tool calls) of a task a person asked to stop
# is refused: STOPPED. That is what stops a task whose worker never heard of the stop (the notice was lost): at its
# next step. KEYS: queued flag, queue, task. ARGV: entry, consumer, step number, step JSON, stoppable ("1" or "0").
RECORD_STEP = (
    _HOLDS
    + f"""
if not holds(false) then return {FENCED} end
local field = '{keys.STEP_FIELD}' .. ARGV[3]
local present = redis.call('HGET', KEYS[3], field)
if present then
  if present == ARGV[4] then return 1 end
  return 0
end
if ARGV[5] == '1' and redis.call('HEXISTS', KEYS[3], 'stop_by') == 1 then return {STOPPED} end
redis.call('HSET', KEYS[3], field, ARGV[4])
return 1
"""
)

# Finish a task, write what it produced, and give the thread back if its inbox is now empty, in one step: a
# crash leaves all or nothing, and finishing twice (a resumed task) writes nothing the second time (the task is
# no longer in the inbox). The turns go into the state hash as fields turn:N; a fold (a.evict > 0) drops that
# many of the oldest turns of the window and stores the summary that now covers them, never the whole window. The
# channel's usage and index have their TTLs refreshed once a day (the day is kept in the usage hash), or when
# either was created anew. Returns 1 if the task was finished now (0: it was before), plus 2 if the thread was
# given back (no other task waits).
# KEYS: queued flag, queue, task, inbox, state, channel index, channel usage.
# ARGV: entry, consumer, arguments JSON, turn JSON...
FINISH = (
    _HOLDS
    + _RELEASE_ENTRY
    + f"""
if not holds(false) then return {FENCED} end
local a = cjson.decode(ARGV[3])
local listed, more = false, false
local popped = redis.call('LPOP', KEYS[4], 2)
if popped then
  if popped[1] == a.task_id then
    listed = true
    more = popped[2] ~= nil
    if more then redis.call('LPUSH', KEYS[4], popped[2]) end
  else  -- not at the head (it should be): put back what was taken, and remove it wherever it is
    if popped[2] then redis.call('LPUSH', KEYS[4], popped[2]) end
    redis.call('LPUSH', KEYS[4], popped[1])
    listed = redis.call('LREM', KEYS[4], 1, a.task_id) == 1
    more = true
  end
end
if listed then
  local steps = {{}}
  if a.steps < 0 then  -- the caller does not know how many: find them
    for _, name in ipairs(redis.call('HKEYS', KEYS[3])) do
      if string.sub(name, 1, 5) == '{keys.STEP_FIELD}' then steps[#steps + 1] = name end
    end
  else
    for i = 0, a.steps - 1 do steps[#steps + 1] = '{keys.STEP_FIELD}' .. i end
  end
  if #steps > 0 then redis.call('HDEL', KEYS[3], unpack(steps)) end
  redis.call('HSET', KEYS[3], 'status', a.status, 'finished_at', a.now, 'error', a.error)
  if a.clear_agent then
    redis.call('DEL', KEYS[5])
    redis.call('ZREM', KEYS[6], a.thread_ts)
  elseif a.answer or not (#ARGV == 3 and a.usage.model_calls == 0 and redis.call('EXISTS', KEYS[5]) == 0) then
    -- (a status request in a thread without an agent has nothing to remember: it creates none; an answer always
    -- has, even one that failed for good before its first word: the agent shows it as failing)
    local counters = {{'created_at', 'turns', 'summarized_turns', 'tasks_done', 'tasks_failed', 'tasks_stopped'}}
    local usage_names = {{}}
    for name, _ in pairs(a.usage) do
      counters[#counters + 1] = name
      usage_names[#usage_names + 1] = name
    end
    local old = redis.call('HMGET', KEYS[5], unpack(counters))
    local function count(i) return tonumber(old[i]) or 0 end
    local total, summarized = count(2) + #ARGV - 3, count(3)
    local set = {{'updated_at', a.now, 'status', 'idle', 'turns', string.format('%d', total)}}
    local function put(name, value)
      set[#set + 1] = name
      set[#set + 1] = value
    end
    if not old[1] then put('created_at', a.now) end
    for i = 4, #ARGV do put('{keys.TURN_FIELD}' .. string.format('%d', count(2) + i - 4), ARGV[i]) end
    local evict = math.min(a.evict, total - summarized - 1)
    if evict > 0 then put('summarized_turns', string.format('%d', summarized + evict)) end
    if a.summary then put('summary', a.summary) end
    if a.status == 'done' then
      if a.counts_as_task then put('tasks_done', string.format('%d', count(4) + 1)) end
      put('last_error', '')  -- the latest task went well: the agent is not failing
    elseif a.status == 'stopped' then
      put('tasks_stopped', string.format('%d', count(6) + 1))
      put('last_error', '')  -- a person chose to stop it: the agent is not failing either
    else
      put('tasks_failed', string.format('%d', count(5) + 1))
      put('last_error', a.error)
    end
    for i, name in ipairs(usage_names) do put(name, string.format('%d', count(6 + i) + a.usage[name])) end
    redis.call('HSET', KEYS[5], unpack(set))
    if evict > 0 then  -- after the HSET: a fold may reach into the turns this task has just added
      local gone = {{}}
      for n = summarized, summarized + evict - 1 do gone[#gone + 1] = '{keys.TURN_FIELD}' .. string.format('%d', n) end
      redis.call('HDEL', KEYS[5], unpack(gone))
    end
    redis.call('EXPIRE', KEYS[5], a.ttl)
    local channel = redis.call('HMGET', KEYS[7], 'day', unpack(usage_names))
    local totals = {{'day', a.day}}
    for i, name in ipairs(usage_names) do
      totals[#totals + 1] = name
      totals[#totals + 1] = string.format('%d', (tonumber(channel[i + 1]) or 0) + a.usage[name])
    end
    local created = redis.call('HSET', KEYS[7], unpack(totals)) > 0
    local listed_anew = redis.call('ZADD', KEYS[6], a.now, a.thread_ts) == 1
    if created or listed_anew or channel[1] ~= a.day then
      redis.call('EXPIRE', KEYS[7], a.ttl)
      redis.call('EXPIRE', KEYS[6], a.ttl)
    end
  end
end
local finished = listed and 1 or 0
if not more then
  release()
  return finished + 2
end
return finished
"""
)

# Ask a thread's running answer to stop. The caller read the inbox's head (the task that runs first) and passes its id,
# so that the script can declare its key; if the head changed meanwhile it returns {INBOX_CHANGED} (read it again and
# retry). An answer that has started (status running) and is not stopped yet gets stop_by and stop_at: from then on the
# journal refuses its next step and its start, so the stop reaches it even if the notice to its worker is lost.
# Returns {1, task id, user id, consumer}: asked now. {2, task id, stop_by, consumer}: asked before, by stop_by (the
# caller tells the worker again: the first notice may be what was lost). The consumer is the one holding the thread,
# named in the flag, or by the group's pending list while the flag names only the entry ('' if nobody holds it).
# {0}: nothing running (the head is queued, or not an answer); nothing changed.
# KEYS: inbox, queued flag, queue, head task. ARGV: head task id, user id, now.
STOP = f"""
if redis.call('LINDEX', KEYS[1], 0) ~= ARGV[1] then return {{{INBOX_CHANGED}}} end
local kind, status, stop_by = unpack(redis.call('HMGET', KEYS[4], 'kind', 'status', 'stop_by'))
if (kind ~= 'answer' and kind ~= 'scheduled') or status ~= 'running' then return {{0}} end
local entry, consumer = '', ''
local flag = redis.call('GET', KEYS[2])
if flag then entry, consumer = string.match(flag, '^(%S+) ?(%S*)') end
if consumer == '' and entry ~= '' then
  local pending = redis.pcall('XPENDING', KEYS[3], '{_GROUP}', entry, entry, 1)
  if type(pending) == 'table' and pending[1] then consumer = pending[1][2] end
end
if stop_by then return {{2, ARGV[1], stop_by, consumer}} end
redis.call('HSET', KEYS[4], 'stop_by', ARGV[2], 'stop_at', ARGV[3])
return {{1, ARGV[1], ARGV[2], consumer}}
"""

# Give the thread back only when its inbox is empty, checked in the same step as a submit checks it, so a task
# submitted meanwhile is never stranded without an entry. KEYS: queued flag, queue, inbox. ARGV: entry, consumer.
RELEASE = (
    _HOLDS
    + _RELEASE_ENTRY
    + f"""
if not holds(false) then return {FENCED} end
if redis.call('LLEN', KEYS[3]) > 0 then return 0 end
release()
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
  local pending = redis.call('XPENDING', KEYS[1], '{_GROUP}', id, id, 1)
  if pending[1] ~= nil and pending[1][2] == ARGV[1] then
    redis.call('XCLAIM', KEYS[1], '{_GROUP}', ARGV[1], 0, id, 'JUSTID')
  else
    table.insert(lost, id)
  end
end
return lost
"""

# Take over an entry whose owner stopped renewing its lease, and name the taker in the thread's flag in the same step:
# from then on every write of the old owner is refused (its one-GET check too). XCLAIM with the minimum idle time
# takes nothing if the owner renewed meanwhile or another worker took it first. An entry that is not the one the
# flag names (a duplicate, see holds()) is dropped instead.
# KEYS: queued flag, queue. ARGV: entry, taker, min idle ms. Returns 1 if taken.
TAKE_OVER = f"""
if #redis.call('XCLAIM', KEYS[2], '{_GROUP}', ARGV[2], ARGV[3], ARGV[1], 'JUSTID') == 0 then return 0 end
local flag = redis.call('GET', KEYS[1])
local named = flag and string.match(flag, '^%S+')
if named and named ~= ARGV[1] and #redis.pcall('XRANGE', KEYS[2], named, named) > 0 then
  redis.call('XACK', KEYS[2], '{_GROUP}', ARGV[1])
  redis.call('XDEL', KEYS[2], ARGV[1])
  return 0
end
redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. ARGV[2])
return 1
"""

# Make a shard's stream and consumer group if they are missing, and mark the shard as owing a requeue (the
# threads whose flag names an entry lost with the stream), in one step: the mark outlives a worker that dies
# during the requeue, so the next one does it. KEYS: queue, requeue mark. ARGV: mark ttl. Returns 1 if made.
MAKE_GROUP = f"""
local made = redis.pcall('XGROUP', 'CREATE', KEYS[1], '{_GROUP}', '0', 'MKSTREAM')
if type(made) == 'table' and made.err then
  if string.find(made.err, 'BUSYGROUP', 1, true) then return 0 end
  return redis.error_reply(made.err)
end
redis.call('SET', KEYS[2], '1', 'EX', ARGV[1])
return 1
"""

# Give a thread whose flag outlived its entry (the stream was lost) a new entry if it still has work, or drop the
# flag if it has none. Run for every flag of a shard after its consumer group had to be created; harmless twice.
# KEYS: queue, queued flag, inbox. ARGV: thread. Returns 1 (requeued), -1 (flag dropped) or 0 (nothing to do).
REQUEUE = """
local flag = redis.call('GET', KEYS[2])
if not flag then return 0 end
local entry = string.match(flag, '^%S+')
if #redis.pcall('XRANGE', KEYS[1], entry, entry) > 0 then return 0 end
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
local consumers = redis.pcall('XINFO', 'CONSUMERS', KEYS[1], '{_GROUP}')
if consumers.err then return {{}} end
local removed = {{}}
for _, flat in ipairs(consumers) do
  local c = {{}}
  for i = 1, #flat, 2 do c[flat[i]] = flat[i + 1] end
  if tonumber(c.pending) == 0 and tonumber(c.idle) > tonumber(ARGV[1]) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], '{_GROUP}', c.name)
    table.insert(removed, c.name)
  end
end
return removed
"""

ALL = (
    SUBMIT,
    RESET,
    START,
    HOLDS,
    SET_FIELDS,
    RECORD_STEP,
    FINISH,
    STOP,
    RELEASE,
    HEARTBEAT,
    TAKE_OVER,
    MAKE_GROUP,
    REQUEUE,
    PRUNE_CONSUMERS,
)
