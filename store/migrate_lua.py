"""The Lua scripts of the migration from layout v1 to v2 (store/migrate.py). Each moves one unit atomically.

v1 only ever ran on a standalone Redis (its scripts cannot run on a cluster), so these scripts may touch keys of
any slot in one step; they still declare every key in KEYS. Each is idempotent: once its unit has moved, running
it again finds no v1 key and changes nothing, so a pass that dies anywhere can simply be run again.

A Redis script that fails half way keeps the writes it made before the error, so every script reads and checks
all it needs before its first write, and writes counters with HSET of numbers it computed (never HINCRBY on a
value that may not be a number).
"""

from __future__ import annotations

from store import keys
from store.models import USAGE_FIELDS

MOVED, NOTHING, LEFT, CHANGED = 1, 0, 2, 3  # MOVE_THREAD's first result

# The counters of a v1 agent that are added to a v2 agent when both exist.
_ADDED = ", ".join(f"'{name}'" for name in ("tasks_done", "tasks_failed", *USAGE_FIELDS))

_HELPERS = f"""
local function fmt(n) return string.format('%d', n) end
local function ttl_of(key, default)  -- a key's remaining TTL in ms; `default` for a key without one
  local left = redis.call('PTTL', key)
  if left > 0 then return left end
  return tonumber(default)
end
local function bulk(command, key, items)  -- unpack() has a limit: send long lists in slices
  for i = 1, #items, 1000 do redis.call(command, key, unpack(items, i, math.min(i + 999, #items))) end
end
-- A task and its journal (steps as fields step:N) to v2, keeping the task's TTL. 1: moved; -1: v2 recorded the
-- same event already (the v1 copy is a duplicate and is dropped); 0: no such task (its journal goes too).
local function move_task(old, journal, new, default_ttl)
  local fields = redis.call('HGETALL', old)
  if #fields == 0 then redis.call('DEL', journal) return 0 end
  if redis.call('EXISTS', new) == 1 then redis.call('DEL', old, journal) return -1 end
  for n, step in ipairs(redis.call('LRANGE', journal, 0, -1)) do
    fields[#fields + 1] = '{keys.STEP_FIELD}' .. fmt(n - 1)
    fields[#fields + 1] = step
  end
  local ttl = ttl_of(old, default_ttl)
  bulk('HSET', new, fields)
  redis.call('PEXPIRE', new, ttl)
  redis.call('DEL', old, journal)
  return 1
end
"""

# The agent (state and turns) to v2. A thread that has a v2 agent already keeps it (its summary, window and
# creation time are the newer: v2 processes answered with them); the old copy can only hold what v1 processes
# wrote beside it during a rolling deploy, and nothing of it is lost: its turns are appended to the v2 window as
# the newest, its task and usage counters added, its summary (if it has one v2 lacks) appended to v2's. Then the
# old copy is deleted. KEYS[1], KEYS[2] = v1 state, turns; KEYS[6] = v2 state. `old` is the v1 state as a table.
_MOVE_AGENT = f"""
local function move_agent(old, default_ttl)
  local turns = redis.call('LRANGE', KEYS[2], 0, -1)
  local set = {{}}
  local function put(name, value) set[#set + 1] = name set[#set + 1] = value end
  if redis.call('EXISTS', KEYS[6]) == 0 then
    for name, value in pairs(old) do put(name, value) end
    local total, summarized = tonumber(old.turns) or 0, tonumber(old.summarized_turns) or 0
    if total - summarized ~= #turns then
      -- The counters disagree with the list (never seen; the list is what the agent reads): trust the list.
      -- `turns` (how many turns the agent has had, as /agent status shows) stays, and the window is its last
      -- #turns, so summarized_turns = turns - #turns; a count too small for the list grows to fit it.
      summarized = math.max(total - #turns, 0)
      put('turns', fmt(summarized + #turns))
      put('summarized_turns', fmt(summarized))
    end
    for i, turn in ipairs(turns) do put('{keys.TURN_FIELD}' .. fmt(summarized + i - 1), turn) end
    local ttl = ttl_of(KEYS[1], default_ttl)
    bulk('HSET', KEYS[6], set)
    redis.call('PEXPIRE', KEYS[6], ttl)
    return 0
  end
  local new = redis.call('HMGET', KEYS[6], 'turns', 'summary', {_ADDED})
  local total = tonumber(new[1]) or 0
  for i, turn in ipairs(turns) do put('{keys.TURN_FIELD}' .. fmt(total + i - 1), turn) end
  put('turns', fmt(total + #turns))
  for i, name in ipairs({{{_ADDED}}}) do
    local added = tonumber(old[name]) or 0
    if added ~= 0 then put(name, fmt((tonumber(new[i + 2]) or 0) + added)) end
  end
  if old.summary and old.summary ~= '' and old.summary ~= new[2] then
    put('summary', (new[2] and new[2] ~= '') and (new[2] .. '\\n\\n' .. old.summary) or old.summary)
  end
  local ttl = math.max(ttl_of(KEYS[6], 0), ttl_of(KEYS[1], default_ttl))
  bulk('HSET', KEYS[6], set)
  redis.call('PEXPIRE', KEYS[6], ttl)
  return 1
end
"""

# Move one thread: its tasks (in inbox order, with their journals), its inbox, its queue entry and its agent.
# Refused (LEFT) while an old worker in the live set holds the thread's entry: it still writes the v1 keys. Queued
# work is queued anew in the thread's shard (a new entry, undelivered, and the flag naming it) unless the thread
# has a v2 entry already (then its inbox just grows); the old entry is acknowledged and deleted.
# KEYS: v1 state, turns, inbox, flag, queue; v2 state, inbox, flag, queue; then per inbox id v1 task, v1 journal,
# v2 task. ARGV: thread, live consumers (JSON list), agent ttl ms, task ttl ms, another v1 entry of the thread to
# drop ('' none), then the inbox ids (CHANGED if the inbox changed since the caller read it: read it again).
# Returns {MOVED or NOTHING or LEFT or CHANGED, tasks moved, tasks queued, queued anew, merged, duplicates}.
MOVE_THREAD = (
    _HELPERS
    + _MOVE_AGENT
    + f"""
local inbox = redis.call('LRANGE', KEYS[3], 0, -1)
if #inbox ~= #ARGV - 5 then return {{{CHANGED}}} end
for i, id in ipairs(inbox) do if id ~= ARGV[5 + i] then return {{{CHANGED}}} end end
local live = {{}}
for _, name in ipairs(cjson.decode(ARGV[2])) do live[name] = true end
local flag = redis.call('GET', KEYS[4])
local entries = {{}}
if flag and string.match(flag, '^%d+%-%d+$') then entries[#entries + 1] = flag end  -- not "1" (older releases)
if ARGV[5] ~= '' then entries[#entries + 1] = ARGV[5] end
for _, entry in ipairs(entries) do
  local pending = redis.pcall('XPENDING', KEYS[5], '{keys.WORKER_GROUP}', entry, entry, 1)
  if not pending.err and pending[1] and live[pending[1][2]] then return {{{LEFT}}} end
end
local found = redis.call('EXISTS', KEYS[1], KEYS[2], KEYS[3], KEYS[4]) > 0
if not found and #entries == 0 then return {{{NOTHING}}} end
local kept, moved, duplicates = {{}}, 0, 0
for i, id in ipairs(inbox) do
  local done = move_task(KEYS[7 + 3 * i], KEYS[8 + 3 * i], KEYS[9 + 3 * i], ARGV[4])
  if done == 1 then kept[#kept + 1] = id moved = moved + 1 end
  if done == -1 then duplicates = duplicates + 1 end
end
local anew = 0
if #kept > 0 then
  bulk('RPUSH', KEYS[7], kept)
  if redis.call('EXISTS', KEYS[8]) == 0 then
    redis.call('SET', KEYS[8], redis.call('XADD', KEYS[9], '*', 'thread', ARGV[1]))
    anew = 1
  end
end
for _, entry in ipairs(entries) do
  redis.pcall('XACK', KEYS[5], '{keys.WORKER_GROUP}', entry)
  redis.pcall('XDEL', KEYS[5], entry)
end
local merged = 0
local state = redis.call('HGETALL', KEYS[1])
if #state > 0 then  -- (turns without a state belong to an agent that expired: v1 read them as no agent)
  local old = {{}}
  for i = 1, #state, 2 do old[state[i]] = state[i + 1] end
  merged = move_agent(old, ARGV[3])
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
if not found then return {{{NOTHING}}} end  -- (only a stale entry was dropped)
return {{{MOVED}, moved, #kept, anew, merged, duplicates}}
"""
)

# Move a task that is in no inbox (finished: it stays as the dedupe record of its Slack event until it expires).
# One still listed in its thread's inbox is left to MOVE_THREAD. KEYS: v1 task, v1 journal, v1 inbox of its
# thread, v2 task. ARGV: task id, task ttl ms. Returns move_task's result, or 2 for a task still in an inbox.
MOVE_TASK = (
    _HELPERS
    + """
if redis.call('LPOS', KEYS[3], ARGV[1]) then return 2 end
return move_task(KEYS[1], KEYS[2], KEYS[4], ARGV[2])
"""
)

# Delete a journal whose task is gone (expired): nothing can resume from it. KEYS: v1 task, v1 journal.
DROP_ORPHAN_JOURNAL = "if redis.call('EXISTS', KEYS[1]) == 0 then return redis.call('DEL', KEYS[2]) end return 0"

# Move one thread of a channel's index, once the thread itself has moved (its v1 keys are gone), keeping the
# later of the two scores. KEYS: v1 index, v2 index, the thread's v1 state, turns, inbox, flag. ARGV: thread ts,
# agent ttl ms. Returns 1 (moved), 0 (the thread has not moved yet), -1 (the member is gone).
MOVE_INDEX_ENTRY = (
    _HELPERS
    + """
if redis.call('EXISTS', KEYS[3], KEYS[4], KEYS[5], KEYS[6]) > 0 then return 0 end
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score then return -1 end
local ttl = math.max(ttl_of(KEYS[2], 0), ttl_of(KEYS[1], ARGV[2]))
redis.call('ZADD', KEYS[2], 'GT', score, ARGV[1])
redis.call('PEXPIRE', KEYS[2], ttl)
redis.call('ZREM', KEYS[1], ARGV[1])
return 1
"""
)

# Add a channel's v1 usage totals to one shard's v2 totals and delete them, in one step: a pass that dies before
# it added nothing, one that dies after it finds nothing left to add, so no total is ever counted twice. An old
# worker finishing a task later makes a new v1 hash holding only what it added, which the next pass adds.
# KEYS: v1 usage, v2 usage. ARGV: agent ttl ms. Returns 1 (added) or 0 (nothing to add).
MOVE_USAGE = (
    _HELPERS
    + """
local old = redis.call('HGETALL', KEYS[1])
if #old == 0 then return 0 end
local set = {}
for i = 1, #old, 2 do
  local added = tonumber(old[i + 1])
  if added then
    set[#set + 1] = old[i]
    set[#set + 1] = fmt((tonumber(redis.call('HGET', KEYS[2], old[i])) or 0) + added)
  end
end
local ttl = math.max(ttl_of(KEYS[2], 0), ttl_of(KEYS[1], ARGV[1]))
if #set > 0 then
  redis.call('HSET', KEYS[2], unpack(set))
  redis.call('PEXPIRE', KEYS[2], ttl)
end
redis.call('DEL', KEYS[1])
return 1
"""
)

# Delete the v1 queue once it holds no entry. KEYS: v1 queue. Returns 1 if it was deleted.
DROP_EMPTY_QUEUE = "if redis.call('XLEN', KEYS[1]) == 0 then return redis.call('DEL', KEYS[1]) end return 0"

# Drop a v1 queue entry that names no thread (no worker could ever use it). KEYS: v1 queue. ARGV: entry.
DROP_ENTRY = f"redis.call('XACK', KEYS[1], '{keys.WORKER_GROUP}', ARGV[1]) return redis.call('XDEL', KEYS[1], ARGV[1])"
