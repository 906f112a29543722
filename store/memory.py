"""A channel's memory: small text files its agents keep under /memories, shared by every thread of the channel.

One hash per scope (a scope is "T:C", a channel of a workspace; store/keys.py `memory_files`): "f:PATH" = a file's
text, "version" = a counter every change raises. A change is computed from a snapshot (files and version) by the
caller and applied by one script only if the version is still the snapshot's, so two agents of the channel writing
at once never lose each other's change: the loser reads again and recomputes.

A change made by a tool call names the call's tool_use_id: the script records the call's result beside the change
(`memory_applied`, in the same slot), and a call applied again, as a task resumed after a crash between the write
and its journal record applies it again, gets the first result back and changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from store import decode, keys
from store.connection import RedisClient

FILE_FIELD = "f:"  # + the file's path, in the scope's hash
VERSION_FIELD = "version"
# A change that lost the race to another this many times in a row gives up (each retry reads the files again).
MAX_ATTEMPTS = 8

# KEYS[1] the scope's files; KEYS[2] (a tool call's change only) the record of the call's result.
# ARGV[1] the version the change was computed from, ARGV[2] the result to record, ARGV[3] the files' TTL (ms),
# ARGV[4] the record's TTL (ms), then triples: "set" or "del", the path, the text ("" for del).
# Returns {1, result} when the call was applied before (nothing changed), {0, ""} when the version moved on,
# {2, result} once applied.
_APPLY = """
if #KEYS > 1 then
  local done = redis.call('GET', KEYS[2])
  if done then return {1, done} end
end
local version = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if version ~= tonumber(ARGV[1]) then return {0, ''} end
for i = 5, #ARGV, 3 do
  if ARGV[i] == 'set' then
    redis.call('HSET', KEYS[1], 'f:' .. ARGV[i + 1], ARGV[i + 2])
  else
    redis.call('HDEL', KEYS[1], 'f:' .. ARGV[i + 1])
  end
end
redis.call('HINCRBY', KEYS[1], 'version', 1)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
if #KEYS > 1 then redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[4]) end
return {2, ARGV[2]}
"""


class MemoryFull(ValueError):
    """A change would take the scope's memory past its caps."""


class MemoryBusy(RuntimeError):
    """Others kept changing the memory while a change was being made; it was not applied."""


@dataclass(frozen=True)
class MemoryLimits:
    """The caps of one scope's memory: its total size (UTF-8 bytes of the files' texts) and its number of files."""

    max_bytes: int = 50_000
    max_files: int = 100


@dataclass(frozen=True)
class MemorySnapshot:
    """A scope's files (path -> text) as of one version."""

    files: Mapping[str, str]
    version: int

    @property
    def total_bytes(self) -> int:
        """The size the caps count."""
        return sum(len(text.encode()) for text in self.files.values())


@dataclass(frozen=True)
class MemoryChange:
    """Files to write (path -> new text) or delete (path -> None), and the text that reports the change."""

    writes: Mapping[str, str | None]
    result: str


@dataclass(frozen=True)
class Applied:
    """What a tool call's change came to: its result, and whether this call applied it or an earlier one did."""

    result: str
    repeated: bool


class MemoryStore:
    """Reads and changes channels' memories."""

    def __init__(self, redis: RedisClient, limits: MemoryLimits, *, ttl_seconds: int, applied_ttl_seconds: int) -> None:
        self._redis = redis
        self.limits = limits
        self._ttl_ms = ttl_seconds * 1000
        self._applied_ttl_ms = applied_ttl_seconds * 1000
        self._apply = redis.register_script(_APPLY)

    async def snapshot(self, scope: str, *, touch: bool = False) -> MemorySnapshot:
        """The scope's files now; `touch` (an agent reading it) also restarts its TTL: a memory in use stays."""
        key = keys.memory_files(scope)
        if touch:
            await self._redis.pexpire(key, self._ttl_ms)  # a no-op on a memory that does not exist
        raw = decode.fields(await self._redis.hgetall(key))
        files = {name.removeprefix(FILE_FIELD): text for name, text in raw.items() if name.startswith(FILE_FIELD)}
        version = raw.get(VERSION_FIELD, "0")
        return MemorySnapshot(dict(sorted(files.items())), int(version) if version.isdigit() else 0)

    async def applied(self, scope: str, tool_use_id: str) -> str | None:
        """The result of a tool call whose change was applied already, or None."""
        raw = await self._redis.get(keys.memory_applied(scope, tool_use_id))
        return None if raw is None else decode.text(raw)

    def check_caps(self, before: MemorySnapshot, change: MemoryChange) -> None:
        """MemoryFull if the change would take the memory past its caps (a change that shrinks it always fits)."""
        files = dict(before.files)
        for path, text in change.writes.items():
            if text is None:
                files.pop(path, None)
            else:
                files[path] = text
        after = MemorySnapshot(files, before.version)
        if after.total_bytes > self.limits.max_bytes and after.total_bytes > before.total_bytes:
            raise MemoryFull(
                f"the memory would hold {after.total_bytes:,} bytes; it may hold {self.limits.max_bytes:,}. "
                "Delete or shorten files first."
            )
        if len(after.files) > self.limits.max_files and len(after.files) > len(before.files):
            raise MemoryFull(f"the memory may hold {self.limits.max_files} files. Delete or merge files first.")

    async def commit(
        self, scope: str, before: MemorySnapshot, change: MemoryChange, tool_use_id: str | None
    ) -> Applied | None:
        """Apply a change computed from `before`: None if the memory changed since (read again and recompute);
        the earlier result, changing nothing, if the tool call `tool_use_id` was applied already."""
        self.check_caps(before, change)
        script_keys = [keys.memory_files(scope)]
        if tool_use_id is not None:
            script_keys.append(keys.memory_applied(scope, tool_use_id))
        args: list[str | int] = [before.version, change.result, self._ttl_ms, self._applied_ttl_ms]
        for path, text in change.writes.items():
            args += ["del", path, ""] if text is None else ["set", path, text]
        outcome, result = await self._apply(keys=script_keys, args=args)
        if int(outcome) == 0:
            return None
        return Applied(decode.text(result), repeated=int(outcome) == 1)

    async def clear(self, scope: str) -> int:
        """Delete every file of the scope; returns how many there were."""
        for _ in range(MAX_ATTEMPTS):
            before = await self.snapshot(scope)
            if not before.files:
                return 0
            change = MemoryChange(dict.fromkeys(before.files), "cleared")
            if await self.commit(scope, before, change, None) is not None:
                return len(before.files)
        raise MemoryBusy("the memory kept changing while it was being cleared")

    async def remove(self, scope: str, path: str) -> int:
        """Delete a file, or every file under a folder; returns how many files went."""
        for _ in range(MAX_ATTEMPTS):
            before = await self.snapshot(scope)
            folder = path.rstrip("/") + "/"
            gone = [name for name in before.files if name == path or name.startswith(folder)]
            if not gone:
                return 0
            if await self.commit(scope, before, MemoryChange(dict.fromkeys(gone), "removed"), None) is not None:
                return len(gone)
        raise MemoryBusy("the memory kept changing while a file was being removed")
