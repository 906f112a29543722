"""Where the app is installed: each workspace's latest installation, its latest per installing user, and its bot.

A workspace here is what one OAuth install covers: a Slack workspace (team), or a whole Enterprise Grid org for an
org-wide install, whose records belong to no team and are found for every team of the org. The records are plain
JSON objects the caller gives (the Slack-facing layer converts them); the store only orders them, by the time of
their install (a bot with a rotating token by its token's expiry), so that the latest install wins and a late write
of an older one never replaces a newer one.

All of a workspace's records are fields of one hash (keys.installations), so every change is one single-key
script: atomic, and on Redis Cluster one slot without a hash tag.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from store import decode, keys
from store.connection import RedisClient
from store.errors import CorruptRecord

BOT_FIELD = "bot"
LATEST_FIELD = "latest"
USER_FIELD = "user:"  # + the installing user's id
# An org-wide install covers teams it is never told of: each team seen using it points at its org ("org" in the
# team's hash), and the org lists them ("team:" + id in the org's hash), so that a task that knows only its team
# finds the org's bot, and the org's uninstall reaches its teams' work.
ORG_FIELD = "org"
TEAM_FIELD = "team:"

# Every record is stored as the envelope {"at": installed_at, "user": user id or "", "record": the caller's object},
# a bot's with "expires": its token's expiry when tokens rotate, so the scripts order records blind to their content.
#
# Installations are ordered by install time; equal times replace, as a refreshed copy keeps its install's time.
# Bots with rotating tokens are ordered by their token's expiry instead: Slack revokes a refresh token once used, so
# the bot whose token was issued last must win. Its install time may be older (an older installation found by user
# lends the latest bot, and saving it back after a refresh carries the older time), and a copy saved back after a
# refresh of the user's token only must not bring back a token that another process has since refreshed.
#
# KEYS[1] = the workspace's hash; ARGV[1] = the install time, ARGV[2] = the bot's token expiry or "", ARGV[3] = the
# bot's envelope or "" (none), ARGV[4...] = pairs of (installation field, envelope). Each is written only if the
# stored one is not newer.
_SAVE = """
local at = tonumber(ARGV[1])
local expires = tonumber(ARGV[2])
local function not_newer(stored, by_expiry)
    if not stored then
        return true
    end
    local old = cjson.decode(stored)
    if by_expiry and expires and old.expires then
        return tonumber(old.expires) <= expires
    end
    return tonumber(old.at) <= at
end
if ARGV[3] ~= '' and not_newer(redis.call('HGET', KEYS[1], 'bot'), true) then
    redis.call('HSET', KEYS[1], 'bot', ARGV[3])
end
for i = 4, #ARGV, 2 do
    if not_newer(redis.call('HGET', KEYS[1], ARGV[i]), false) then
        redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
    end
end
return 0
"""

# KEYS[1] = the workspace's hash, ARGV[1] = a user id. Deletes that user's installation; if it was the workspace's
# latest, the latest of the other users' takes its place (none: the latest goes too).
_DELETE_USER = """
redis.call('HDEL', KEYS[1], 'user:' .. ARGV[1])
local latest = redis.call('HGET', KEYS[1], 'latest')
if not latest or cjson.decode(latest).user ~= ARGV[1] then
    return 0
end
local best, best_at = nil, nil
local fields = redis.call('HGETALL', KEYS[1])
for i = 1, #fields, 2 do
    if string.sub(fields[i], 1, 5) == 'user:' then
        local at = tonumber(cjson.decode(fields[i + 1]).at)
        if not best_at or at >= best_at then
            best, best_at = fields[i + 1], at
        end
    end
end
if best then
    redis.call('HSET', KEYS[1], 'latest', best)
else
    redis.call('HDEL', KEYS[1], 'latest')
end
return 1
"""

# KEYS[1] = the workspace's hash, ARGV[1] = the field to keep besides the links between an org and its teams ("bot",
# or "" for none). Deletes every installation (the latest and every user's), and the bot unless kept.
_DELETE_INSTALLATIONS = """
for _, field in ipairs(redis.call('HKEYS', KEYS[1])) do
    if field ~= ARGV[1] and field ~= 'org' and string.sub(field, 1, 5) ~= 'team:' then
        redis.call('HDEL', KEYS[1], field)
    end
end
return 0
"""


@dataclass(frozen=True)
class Workspace:
    """What one install covers: a team (with its enterprise, if any), or a whole org (team_id None)."""

    enterprise_id: str | None
    team_id: str | None

    @classmethod
    def of(cls, enterprise_id: str | None, team_id: str | None, is_enterprise_install: bool | None) -> Workspace:
        """The workspace a lookup names: an org-wide install belongs to its enterprise, whatever team asks."""
        return cls(enterprise_id or None, None if is_enterprise_install else team_id or None)

    @property
    def owner_id(self) -> str:
        """The id its keys are namespaced by: the team's, or the enterprise's for an org-wide install (Slack's team
        and enterprise ids never collide: T... and E...)."""
        owner = self.team_id or self.enterprise_id
        if not owner:
            raise ValueError("a workspace needs a team id or an enterprise id")
        return owner


@dataclass(frozen=True)
class FoundBot:
    """A team's bot and whose it is: the team's own install's, or its org's (owner_id the enterprise id)."""

    owner_id: str
    bot: dict[str, Any]


@dataclass(frozen=True)
class FoundInstallation:
    """An installation and the workspace's latest bot, read together (either may be missing)."""

    installation: dict[str, Any] | None
    bot: dict[str, Any] | None


def _envelope(
    record: Mapping[str, Any], installed_at: float, user_id: str | None, expires_at: int | None = None
) -> str:
    envelope: dict[str, Any] = {"at": installed_at, "user": user_id or "", "record": dict(record)}
    if expires_at is not None:
        envelope["expires"] = expires_at
    return json.dumps(envelope)


def _record(raw: object) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        record = json.loads(decode.text(raw))["record"]
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptRecord("malformed installation record") from exc
    if not isinstance(record, dict):
        raise CorruptRecord("malformed installation record")
    return record


class InstallationRecords:
    """Installations and bots by workspace, kept until the app is uninstalled (no TTL)."""

    def __init__(self, redis: RedisClient) -> None:
        self._redis = redis
        self._save = redis.register_script(_SAVE)
        self._delete_user = redis.register_script(_DELETE_USER)
        self._delete_installations = redis.register_script(_DELETE_INSTALLATIONS)

    async def save_installation(
        self,
        workspace: Workspace,
        installation: Mapping[str, Any],
        *,
        installed_at: float,
        user_id: str | None,
        bot: Mapping[str, Any] | None = None,
        bot_expires_at: int | None = None,
    ) -> None:
        """Record an install (or a refreshed copy of one): the workspace's latest installation, `user_id`'s latest,
        and with `bot` its latest bot (whose token expires at `bot_expires_at` when tokens rotate), each unless a
        newer one is already recorded there."""
        args: list[str | float] = [installed_at, "" if bot_expires_at is None else bot_expires_at]
        args.append("" if bot is None else _envelope(bot, installed_at, user_id, bot_expires_at))
        envelope = _envelope(installation, installed_at, user_id)
        args += [LATEST_FIELD, envelope]
        if user_id:
            args += [USER_FIELD + user_id, envelope]
        await self._save(keys=[keys.installations(workspace.owner_id)], args=args)

    async def save_bot(
        self, workspace: Workspace, bot: Mapping[str, Any], *, installed_at: float, expires_at: int | None = None
    ) -> None:
        """Record the workspace's bot (whose token expires at `expires_at` when tokens rotate), unless a newer one is
        already recorded."""
        envelope = _envelope(bot, installed_at, None, expires_at)
        args: list[str | float] = [installed_at, "" if expires_at is None else expires_at, envelope]
        await self._save(keys=[keys.installations(workspace.owner_id)], args=args)

    async def find_bot(self, workspace: Workspace) -> dict[str, Any] | None:
        """The workspace's latest bot, or None."""
        return _record(await self._redis.hget(keys.installations(workspace.owner_id), BOT_FIELD))

    async def find_team_bot(self, team_id: str) -> FoundBot | None:
        """The bot that serves `team_id`: its own install's, else that of the org-wide install it was seen using."""
        bot, org = await self._redis.hmget(keys.installations(team_id), [BOT_FIELD, ORG_FIELD])
        if bot is not None:
            return FoundBot(team_id, _record(bot) or {})
        if org is None:
            return None
        enterprise_id = decode.text(org)
        org_bot = _record(await self._redis.hget(keys.installations(enterprise_id), BOT_FIELD))
        return FoundBot(enterprise_id, org_bot) if org_bot is not None else None

    async def join_org(self, team_id: str, enterprise_id: str) -> None:
        """Record that `team_id` is served by the org-wide install of `enterprise_id` (safe to repeat)."""
        await self._redis.hset(keys.installations(team_id), ORG_FIELD, enterprise_id)
        await self._redis.hset(keys.installations(enterprise_id), TEAM_FIELD + team_id, "1")

    async def org_teams(self, enterprise_id: str) -> list[str]:
        """The teams the org-wide install of `enterprise_id` serves: seen using it, still linked to it, and without
        an install of their own (which serves them instead, and stays whatever the org does)."""
        fields = await self._redis.hkeys(keys.installations(enterprise_id))
        listed = sorted(name[len(TEAM_FIELD) :] for name in map(decode.text, fields) if name.startswith(TEAM_FIELD))
        served = []
        for team_id in listed:
            bot, org = await self._redis.hmget(keys.installations(team_id), [BOT_FIELD, ORG_FIELD])
            if bot is None and org is not None and decode.text(org) == enterprise_id:
                served.append(team_id)
        return served

    async def find_installation(self, workspace: Workspace, user_id: str | None = None) -> FoundInstallation:
        """The workspace's latest installation (by `user_id`'s, if given), with its latest bot, in one read."""
        field = USER_FIELD + user_id if user_id else LATEST_FIELD
        installation, bot = await self._redis.hmget(keys.installations(workspace.owner_id), [field, BOT_FIELD])
        return FoundInstallation(_record(installation), _record(bot))

    async def delete_bot(self, workspace: Workspace) -> None:
        """Forget the workspace's bot (its token was revoked), keeping the installations."""
        await self._redis.hdel(keys.installations(workspace.owner_id), BOT_FIELD)

    async def delete_installation(self, workspace: Workspace, user_id: str | None = None) -> None:
        """Forget `user_id`'s installation (the latest is then the other users' latest), or without a user every
        installation of the workspace; the bot is kept either way."""
        key = keys.installations(workspace.owner_id)
        if user_id:
            await self._delete_user(keys=[key], args=[user_id])
        else:
            await self._delete_installations(keys=[key], args=[BOT_FIELD])

    async def delete_all(self, workspace: Workspace) -> None:
        """Forget the workspace's installs and bot (the app was uninstalled). The links between an org-wide install
        and its teams stay, so that a reinstall within the grace period brings their agents back; the grace period's
        sweep deletes them (store/leaving.py)."""
        await self._delete_installations(keys=[keys.installations(workspace.owner_id)], args=[""])
