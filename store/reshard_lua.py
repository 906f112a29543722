"""The Lua scripts of a change of the number of queue shards (store/reshard.py).

Each touches the keys of one hash tag only (the old one or the new one: never both, they may be on different
nodes of a cluster), and each can run again with the same effect as once while nothing else writes.
"""

from __future__ import annotations

from store import keys

_GROUP = keys.WORKER_GROUP

# extend(key, before, ttl): give `key` the longer of the TTL it had before the caller's write (`before`, as PTTL
# answered: -2 it did not exist, -1 it had none) and `ttl` (ms; negative: the source had none, which is longest).
# Running it again after the write changes nothing: the key has the longer one already.
_EXTEND = """
local function extend(key, before, ttl)
  if before == -1 then return end
  if ttl < 0 then
    if before ~= -2 then redis.call('PERSIST', key) end
  elseif before == -2 or ttl > before then
    redis.call('PEXPIRE', key, ttl)
  end
end
"""

# add_counts(key, counts, sign): add (sign 1) or take away (sign -1) a counters hash's numbers (HGETALL's reply) to
# or from `key`'s; a count taken away never goes below zero (a thread's counts are part of its shard's, but a
# shard's hash and a thread's expire apart, to the millisecond).
_ADD_COUNTS = """
local function add_counts(key, counts, sign)
  for i = 1, #counts, 2 do
    if string.match(counts[i + 1], '^-?%d+$') then
      if redis.call('HINCRBY', key, counts[i], sign * tonumber(counts[i + 1])) < 0 then
        redis.call('HSET', key, counts[i], 0)
      end
    end
  end
end
"""

# A thread's keys arrive at its new tag: its state, inbox, votes and feedback counters (DUMPs taken from the old
# tag, "" for none, restored with the TTLs they had there: 0 for none), then, if it has work, an entry in its new
# shard's stream that its flag names (bare: no consumer has it; the next worker to read the stream takes it). A flag
# naming an entry of that stream is one this script made before: kept. The thread's feedback counts are added to its
# new shard's channel and workspace counters in the step that restores its counters, and only if they were not there
# yet: so once, however often this runs (DROP_OLD takes them from the old shard's). Returns 1 if the thread has an
# entry.
# KEYS: new state, new inbox, new flag, new queue, new votes, new thread feedback, new channel feedback, new
# workspace feedback. ARGV: thread, then dump and TTL of: state, inbox, votes, thread feedback.
MOVE_IN = (
    _EXTEND
    + _ADD_COUNTS
    + """
if ARGV[2] ~= '' then redis.call('RESTORE', KEYS[1], ARGV[3], ARGV[2], 'REPLACE') end
if ARGV[4] ~= '' then redis.call('RESTORE', KEYS[2], ARGV[5], ARGV[4], 'REPLACE') end
if ARGV[6] ~= '' then redis.call('RESTORE', KEYS[5], ARGV[7], ARGV[6], 'REPLACE') end
if ARGV[8] ~= '' and redis.call('EXISTS', KEYS[6]) == 0 then
  redis.call('RESTORE', KEYS[6], ARGV[9], ARGV[8])
  local counts, ttl = redis.call('HGETALL', KEYS[6]), redis.call('PTTL', KEYS[6])
  for i = 7, 8 do
    local before = redis.call('PTTL', KEYS[i])
    add_counts(KEYS[i], counts, 1)
    extend(KEYS[i], before, ttl)
  end
end
local flag = redis.call('GET', KEYS[3])
if flag then
  local entry = string.match(flag, '^%S+')
  if #redis.pcall('XRANGE', KEYS[4], entry, entry) > 0 then return 1 end
end
if redis.call('LLEN', KEYS[2]) == 0 then
  redis.call('DEL', KEYS[3])
  return 0
end
redis.call('SET', KEYS[3], redis.call('XADD', KEYS[4], '*', 'thread', ARGV[1]))
return 1
"""
)

# A thread's old keys go, once their copies exist: state, inbox, votes, feedback counters (their counts taken from
# the old shard's channel and workspace counters in the same step), flag, and the entry the flag named in the old
# shard's stream (acknowledged and deleted: that stream may be a new shard's too, when both have the same tag).
# KEYS: old state, old inbox, old flag, old queue, old votes, old thread feedback, old channel feedback, old
# workspace feedback.
DROP_OLD = (
    _ADD_COUNTS
    + f"""
local flag = redis.call('GET', KEYS[3])
local entry = flag and string.match(flag, '^%S+')
if entry then
  redis.pcall('XACK', KEYS[4], '{_GROUP}', entry)
  redis.pcall('XDEL', KEYS[4], entry)
end
local counts = redis.call('HGETALL', KEYS[6])
for i = 7, 8 do
  if redis.call('EXISTS', KEYS[i]) == 1 then add_counts(KEYS[i], counts, -1) end
end
return redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[5], KEYS[6])
"""
)

# Add index entries to a new shard's channel index (ZADD sets the same score again on a second run), giving it the
# longer of its TTL and the old index's. KEYS: the new index. ARGV: the old index's PTTL, then score, member pairs.
MERGE_INDEX = (
    _EXTEND
    + """
local before = redis.call('PTTL', KEYS[1])
redis.call('ZADD', KEYS[1], unpack(ARGV, 2))
extend(KEYS[1], before, tonumber(ARGV[1]))
return 1
"""
)

# Add a staged counters hash (an old shard's usage or feedback counters) to a new shard's and delete it, in one
# step: so it is added once, however often this runs. The "day" field of usage (when the TTL was last refreshed)
# keeps the later day; counters are summed. Returns 0 if there was nothing staged (it was added before).
# KEYS: the new counters hash, the staged one.
MERGE_TOTALS = (
    _EXTEND
    + """
local fields = redis.call('HGETALL', KEYS[2])
if #fields == 0 then return 0 end
local before = redis.call('PTTL', KEYS[1])
for i = 1, #fields, 2 do
  local name, value = fields[i], fields[i + 1]
  if name == 'day' then
    local day = tonumber(redis.call('HGET', KEYS[1], 'day') or '')
    if not day or (tonumber(value) or 0) > day then redis.call('HSET', KEYS[1], 'day', value) end
  elseif string.match(value, '^-?%d+$') then
    redis.call('HINCRBY', KEYS[1], name, value)
  else
    redis.call('HSETNX', KEYS[1], name, value)
  end
end
extend(KEYS[1], before, redis.call('PTTL', KEYS[2]))
redis.call('DEL', KEYS[2])
return 1
"""
)

# The change is done: the layout says the new count, and no longer that a change runs, in one step.
# KEYS: agent:layout. ARGV: the field saying a change runs, the new count.
FINISH_LAYOUT = """
redis.call('HSET', KEYS[1], 'shards', ARGV[2])
redis.call('HDEL', KEYS[1], ARGV[1])
return 1
"""
