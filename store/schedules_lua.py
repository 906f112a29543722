"""The Lua scripts behind durable timers (store/schedules.py). Each runs atomically on one shard's slot.

A schedule's hash, its thread's and channel's indexes, its shard's due index and everything a task needs to be
queued (store/lua.py SUBMIT_TASK) share the thread's hash tag, so firing a timer and queueing its task is one
script: a crash (kill -9) leaves either both done or neither, and two workers firing the same shard cannot both
fire one timer (the second finds its score moved on). Every script declares every key it touches. Times are
integer milliseconds, exact in Redis scores and in Lua's doubles.
"""

from __future__ import annotations

from store.lua import _HOLDS, FENCED, SUBMIT_TASK

THREAD_FULL = -10
CHANNEL_FULL = -11
EXISTS = -12  # a schedule by that id is already there (a create run again): nothing changed

# PEXPIREAT a key to `at` (ms) unless it already lives that long: an index lives as long as its longest member.
_KEEP_UNTIL = """
local function keep_until(key, at, now)
  local left = redis.call('PTTL', key)
  if left < 0 or now + left < at then redis.call('PEXPIREAT', key, at) end
end
"""

# Create a schedule, unless its thread or channel already has the most active ones allowed; fenced (the thread's
# lease, as a running task's writes are) unless ARGV[1] is empty, so that a run cancelled by a reset schedules
# nothing more. Expired members are dropped from the thread's and channel's indexes before they are counted.
# KEYS: queued flag, queue, schedule, thread schedules, channel schedules (this shard), due index.
# ARGV: entry ('' unfenced), consumer, id, fields JSON, due member, next run (ms), hash expiry (ms), now (ms),
# per-thread limit, per-channel limit, the channel's count in the other shards, channel member ("TS:ID").
# Returns {1, count} (created; count: the thread's schedules now), {THREAD_FULL or CHANNEL_FULL, count}, {FENCED, 0},
# {EXISTS, 0} (a schedule by that id is there already: a create run again after a crash).
CREATE = (
    _HOLDS
    + _KEEP_UNTIL
    + f"""
if ARGV[1] ~= '' and not holds(false) then return {{{FENCED}, 0}} end
if redis.call('EXISTS', KEYS[3]) == 1 then return {{{EXISTS}, 0}} end
local now, expires = tonumber(ARGV[8]), tonumber(ARGV[7])
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now)
local here = redis.call('ZCARD', KEYS[4])
if here >= tonumber(ARGV[9]) then return {{{THREAD_FULL}, here}} end
local channel = redis.call('ZCARD', KEYS[5]) + tonumber(ARGV[11])
if channel >= tonumber(ARGV[10]) then return {{{CHANNEL_FULL}, channel}} end
local flat = {{}}
for field, value in pairs(cjson.decode(ARGV[4])) do
  flat[#flat + 1] = field
  flat[#flat + 1] = value
end
redis.call('HSET', KEYS[3], unpack(flat))
redis.call('PEXPIREAT', KEYS[3], ARGV[7])
redis.call('ZADD', KEYS[4], ARGV[7], ARGV[3])
keep_until(KEYS[4], expires, now)
redis.call('ZADD', KEYS[5], ARGV[7], ARGV[12])
keep_until(KEYS[5], expires, now)
redis.call('ZADD', KEYS[6], ARGV[6], ARGV[5])
return {{1, here + 1}}
"""
)

# Fire due timers of one shard. For each, in one step with the others: check it is still due at the score the
# caller read (another worker may have fired it meanwhile: then its score moved on, or it is gone), queue its task
# with submit_task (deduplicated on the task id, which names the schedule and this run's due time), then end it
# (once; its count reached; its next run past its end) or move it to its next run: the first period after now, so
# a recurring timer missed while every process was down fires once, not once per missed period. A cron schedule's
# next run is the first of its precomputed run times ("runs") after now; one that has none left waits out of the
# due index ("refill") until its run's handler tops the list up (REFILL_CRON), which that run always does.
# KEYS: due index, then 9 per timer: schedule, thread schedules, channel schedules, task, inbox, queued flag, queue,
# state, channel index. ARGV: now (ms), task ttl, agent ttl, now (s, the task's created_at), then 4 per timer:
# due member, due (ms), task id, channel member. Returns {fired, skipped}.
FIRE = (
    SUBMIT_TASK
    + """
local now = tonumber(ARGV[1])
local fired, skipped = 0, 0
for i = 0, (#KEYS - 1) / 9 - 1 do
  local k = {}
  for j = 1, 9 do k[j] = KEYS[1 + i * 9 + j] end
  local member, due, task_id, in_channel = ARGV[5 + i * 4], tonumber(ARGV[6 + i * 4]), ARGV[7 + i * 4], ARGV[8 + i * 4]
  local score = redis.call('ZSCORE', KEYS[1], member)
  local s = {}
  if score and tonumber(score) == due and due <= now then
    local raw = redis.call('HGETALL', k[1])
    for j = 1, #raw, 2 do s[raw[j]] = raw[j + 1] end
    if not s.kind or s.paused == '1' then redis.call('ZREM', KEYS[1], member) end
  end
  if not s.kind or s.paused == '1' then
    skipped = skipped + 1
  else
    -- The run before is still waiting or running (a busy thread, a slow run): this period's run is left out, so a
    -- thread never piles up one run per period it was busy.
    local waiting = s.last_task and s.last_task ~= '' and redis.call('LPOS', k[5], s.last_task)
    local count = tonumber(s.fired) + (waiting and 0 or 1)
    local next_run, refill = nil, false
    if s.kind == 'every' then
      local period = tonumber(s.every_ms)
      next_run = due + period * (math.floor((now - due) / period) + 1)
    elseif s.kind == 'cron' then
      for at in string.gmatch(s.runs or '', '%d+') do
        if tonumber(at) > now then next_run = tonumber(at) break end
      end
      if not next_run then refill, next_run = true, due end
    end
    local limit = tonumber(s.end_count)
    if next_run and ((limit > 0 and count >= limit) or next_run > tonumber(s.ends_at)) then
      next_run, refill = nil, false
    end
    if waiting and not next_run and not refill then
      waiting, count = false, count + 1  -- its last run: queued behind the one waiting, as the schedule ends now
    end
    if not waiting then
      -- "final": its schedule ends with this run, so the run finds it gone and is still answered (a run whose
      -- schedule is gone without being final was cancelled after it was queued, and is not).
      local fields = {task_id = task_id, kind = 'scheduled', thread = s.thread, text = s.note,
        user_id = s.created_by, message_ts = s.thread_ts, created_at = ARGV[4], status = 'queued', attempts = '0',
        original_chars = '0', files = '[]', final = (next_run or refill) and '0' or '1'}
      submit_task({k[4], k[5], k[6], k[7], k[8], k[9]},
        {s.thread, task_id, 'scheduled', ARGV[2], ARGV[3], ARGV[4], fields, s.thread_ts})
    end
    local last = waiting and s.last_task or task_id
    if refill then
      redis.call('HSET', k[1], 'fired', string.format('%d', count), 'last_task', last, 'refill', '1')
      redis.call('ZREM', KEYS[1], member)
    elseif next_run then
      local at = string.format('%d', next_run)
      redis.call('HSET', k[1], 'next_at', at, 'fired', string.format('%d', count), 'last_task', last)
      redis.call('ZADD', KEYS[1], at, member)
    else
      redis.call('DEL', k[1])
      redis.call('ZREM', k[2], s.id)
      redis.call('ZREM', k[3], in_channel)
      redis.call('ZREM', KEYS[1], member)
    end
    fired = fired + 1
  end
end
return {fired, skipped}
"""
)

# Record how a scheduled run ended, once per run (a task run again records nothing more). A recurring schedule
# whose runs failed ARGV[3] times in a row (0: never) is paused: out of the due index until resumed.
# KEYS: schedule, due index. ARGV: task id, ok ("1" or "0"), most failures, due member.
# Returns 1 if this paused it, 0 otherwise, -1 if the schedule is gone.
RECORD_OUTCOME = """
local kind, last, failures, paused = unpack(redis.call('HMGET', KEYS[1], 'kind', 'last_outcome', 'failures', 'paused'))
if not kind then return -1 end
if last == ARGV[1] then return 0 end
local count = 0
if ARGV[2] ~= '1' then count = (tonumber(failures) or 0) + 1 end
redis.call('HSET', KEYS[1], 'last_outcome', ARGV[1], 'failures', string.format('%d', count))
local most = tonumber(ARGV[3])
if ARGV[2] ~= '1' and kind ~= 'once' and paused ~= '1' and most > 0 and count >= most then
  redis.call('HSET', KEYS[1], 'paused', '1')
  redis.call('ZREM', KEYS[2], ARGV[4])
  return 1
end
return 0
"""

# Put a paused schedule back in the due index at its next run after now (its failures forgiven). (A cron schedule
# whose listed runs are all past gives -2: resume refills it first, store/schedules.py.)
# KEYS: schedule, due index. ARGV: now (ms), due member. Returns 1 (resumed), 0 (it was not paused), -1 (gone),
# -2 (its end is past: nothing left to run).
RESUME = """
local kind, next_at, period, ends_at, paused, runs =
  unpack(redis.call('HMGET', KEYS[1], 'kind', 'next_at', 'every_ms', 'ends_at', 'paused', 'runs'))
if not kind or redis.call('HGET', KEYS[1], 'thread') ~= ARGV[3] then return -1 end  -- gone, or another thread's
if paused ~= '1' then return 0 end
local now, next_run = tonumber(ARGV[1]), tonumber(next_at)
if kind == 'every' and next_run <= now then
  next_run = next_run + tonumber(period) * (math.floor((now - next_run) / tonumber(period)) + 1)
end
if kind == 'cron' and next_run <= now then
  next_run = nil
  for at in string.gmatch(runs or '', '%d+') do
    if tonumber(at) > now then next_run = tonumber(at) break end
  end
  if not next_run then return -2 end
end
if kind ~= 'once' and next_run > tonumber(ends_at) then return -2 end
local at = string.format('%d', next_run)
redis.call('HSET', KEYS[1], 'paused', '0', 'failures', '0', 'next_at', at)
redis.call('ZADD', KEYS[2], at, ARGV[2])
return 1
"""

# Delete schedules of one thread. KEYS: due index, then 3 per schedule: schedule, thread schedules, channel
# schedules. ARGV: the thread (encoded), then 3 per schedule: id, due member, channel member. Returns how many
# existed. A schedule's key names its shard, not its thread: one of another thread of the shard is left alone.
CANCEL = """
local gone = 0
for i = 0, (#KEYS - 1) / 3 - 1 do
  local owner = redis.call('HGET', KEYS[2 + i * 3], 'thread')
  if not owner or owner == ARGV[#ARGV] then
    gone = gone + redis.call('DEL', KEYS[2 + i * 3])
    redis.call('ZREM', KEYS[3 + i * 3], ARGV[1 + i * 3])
    redis.call('ZREM', KEYS[4 + i * 3], ARGV[3 + i * 3])
    redis.call('ZREM', KEYS[1], ARGV[2 + i * 3])
  end
end
return gone
"""

# Renew a recurring schedule's lifetime: its end moves to ARGV[2] (the caller's min of its until and now + the
# lifetime cap), and its keys live on accordingly. KEYS: schedule, thread schedules, channel schedules.
# ARGV: now (ms), new end (ms), new expiry (ms), id, channel member. Returns 1 (renewed), 0 (not recurring), -1 (gone).
RENEW = (
    _KEEP_UNTIL
    + """
local kind = redis.call('HGET', KEYS[1], 'kind')
if kind ~= 'every' and kind ~= 'cron' then
  return redis.call('EXISTS', KEYS[1]) == 1 and 0 or -1
end
local now, expires = tonumber(ARGV[1]), tonumber(ARGV[3])
redis.call('HSET', KEYS[1], 'ends_at', ARGV[2])
redis.call('PEXPIREAT', KEYS[1], ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
keep_until(KEYS[2], expires, now)
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[5])
keep_until(KEYS[3], expires, now)
return 1
"""
)

# Top up a cron schedule's run times (computed in Python, store/schedules_cron.py); one that ran out of them
# ("refill", FIRE) goes back in the due index at the first of them after now, unless paused or past its end.
# KEYS: schedule, due index. ARGV: run times (ms, comma separated), due member, now (ms).
# Returns 1 (refilled), -1 (gone or not cron).
REFILL_CRON = """
local kind, paused, refill, ends_at =
  unpack(redis.call('HMGET', KEYS[1], 'kind', 'paused', 'refill', 'ends_at'))
if kind ~= 'cron' then return -1 end
redis.call('HSET', KEYS[1], 'runs', ARGV[1])
if refill == '1' and paused ~= '1' then
  local now, next_run = tonumber(ARGV[3]), nil
  for at in string.gmatch(ARGV[1], '%d+') do
    if tonumber(at) > now then next_run = tonumber(at) break end
  end
  if next_run and next_run <= tonumber(ends_at) then
    local at = string.format('%d', next_run)
    redis.call('HSET', KEYS[1], 'next_at', at, 'refill', '0')
    redis.call('ZADD', KEYS[2], at, ARGV[2])
  end
end
return 1
"""

ALL = (CREATE, FIRE, RECORD_OUTCOME, RESUME, CANCEL, RENEW, REFILL_CRON)

# Changing the number of shards (store/reshard_pass.py, store/schedules_move.py): a schedule moves by copy, then
# delete, like a thread. The copy, on the new slot: its hash (RESTORE of its DUMP, with the TTL it had), its entries in
# its thread's and channel's indexes, and in its new shard's due index unless paused. Copying again gives the same.
# KEYS: schedule, thread schedules, channel schedules, due index (all of the new shard).
# ARGV: DUMP payload, TTL ms (0: none), now (ms), id, channel member, due member, next run (ms), paused ("1").
MOVE_SCHEDULE_IN = (
    _KEEP_UNTIL
    + """
redis.call('RESTORE', KEYS[1], ARGV[2], ARGV[1], 'REPLACE')
local now = tonumber(ARGV[3])
local expires = now + (tonumber(ARGV[2]) > 0 and tonumber(ARGV[2]) or 30 * 86400000)
redis.call('ZADD', KEYS[2], expires, ARGV[4])
keep_until(KEYS[2], expires, now)
redis.call('ZADD', KEYS[3], expires, ARGV[5])
keep_until(KEYS[3], expires, now)
if ARGV[8] ~= '1' then redis.call('ZADD', KEYS[4], ARGV[7], ARGV[6]) end
return 1
"""
)

# The delete, on the old slot. KEYS: schedule, thread schedules, channel schedules, due index (of the old shard).
# ARGV: id, channel member, due member.
DROP_OLD_SCHEDULE = """
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[2])
redis.call('ZREM', KEYS[4], ARGV[3])
return 1
"""
