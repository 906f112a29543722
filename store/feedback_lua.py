"""The Lua script behind feedback on answers (store/feedback.py). It runs atomically in Redis, so two clicks at once
(the same person on two devices, or two people) never lose a count.

Every key it declares is a key of one thread's shard (one hash tag), so on Redis Cluster it runs on the node that
holds that slot.
"""

from __future__ import annotations

# What VOTE answers.
NEW = 1  # the person's first vote on that answer
CHANGED = 2  # the person moved their vote to the other button
UNCHANGED = 0  # the same button again: nothing written
NO_AGENT = -1  # the thread has no agent (never mentioned, reset, expired): nothing written
FULL = -2  # the thread holds its cap of votes and this one would be new: nothing written

# Record one person's vote on one answer. A vote replaces that person's earlier vote on the same answer: the
# counters move from the old side to the new one, so they always equal the votes held. The TTLs are refreshed on
# every key together; the channel's and workspace's counters are refreshed by every thread of the shard, so they
# live at least as long as any thread's votes, and a changed vote never takes a counter below zero.
# KEYS: votes, thread counters, channel counters, workspace counters, the thread's agent state.
# ARGV: field ("ANSWER_TS USER"), vote ("+" or "-"), cap on the thread's votes, ttl (seconds).
VOTE = f"""
if redis.call('EXISTS', KEYS[5]) == 0 then return {NO_AGENT} end
local before = redis.call('HGET', KEYS[1], ARGV[1])
if before == ARGV[2] then return {UNCHANGED} end
if not before and redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then return {FULL} end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local added = ARGV[2] == '+' and 'up' or 'down'
local removed = ARGV[2] == '+' and 'down' or 'up'
for i = 2, 4 do
  redis.call('HINCRBY', KEYS[i], added, 1)
  if before then redis.call('HINCRBY', KEYS[i], removed, -1) end
end
for i = 1, 4 do redis.call('EXPIRE', KEYS[i], ARGV[4]) end
if before then return {CHANGED} end
return {NEW}
"""
