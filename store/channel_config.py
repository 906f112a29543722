"""A channel's configuration, set with `/agent config`: instructions for its agents, their model, their tools.

One JSON record per channel (store/keys.py, `channel_config`), with a version that every change raises by one. A
change names the version it was made from: one made from an older version (two admins editing at once) is refused
instead of silently undoing the other's. A task reads the configuration once, when it starts, and keeps it for
its whole life (bot/tasks/channel_setup.py journals it), so a change applies from the next task on.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from store import decode, keys
from store.connection import RedisClient

# Bounds of what a channel may hold: instructions go into every request of the channel's agents. They are typed into
# a Slack modal's plain_text_input, whose max_length Slack caps at 3,000.
MAX_INSTRUCTIONS_CHARS = 3_000
MAX_MODEL_CHARS = 100
MAX_TOOLS = 32
MAX_TOOL_NAME_CHARS = 64

# KEYS[1] the channel's config; ARGV[1] the version the change was made from, ARGV[2] the new record (its version
# ARGV[1] + 1), stored as it is: cjson would re-encode an empty list as {} and round the time. Returns 1, or 0 when
# the stored version is not ARGV[1] (someone changed it meanwhile).
_SAVE = """
local stored = redis.call('GET', KEYS[1])
local version = 0
if stored then
  local ok, record = pcall(cjson.decode, stored)
  if ok and type(record) == 'table' and tonumber(record['version']) then version = tonumber(record['version']) end
end
if version ~= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
return 1
"""


class ConfigConflict(Exception):
    """The configuration changed since the version a change was made from."""


@dataclass(frozen=True)
class ChannelConfig:
    """What a channel's admins chose; the defaults are the deployment's settings.

    `tools` None means the deployment's default set of tools; a tuple is the exact set the channel allows.
    """

    instructions: str = ""
    model: str = ""  # "" = ANTHROPIC_MODEL
    tools: tuple[str, ...] | None = None
    version: int = 0
    updated_by: str = ""
    updated_at: float = 0.0
    problems: tuple[str, ...] = field(default=(), compare=False)  # what a stored record held that was not kept

    def __post_init__(self) -> None:
        check_config(self.instructions, self.model, self.tools)

    @property
    def is_default(self) -> bool:
        """Whether the channel has changed nothing."""
        return not self.instructions and not self.model and self.tools is None

    def to_json(self) -> str:
        """The stored record."""
        record: dict[str, Any] = asdict(self)
        record.pop("problems")
        record["tools"] = list(self.tools) if self.tools is not None else None
        return json.dumps(record, separators=(",", ":"))


def check_config(instructions: str, model: str, tools: tuple[str, ...] | None) -> None:
    """ValueError saying what is wrong with a configuration's values (they come from a Slack form)."""
    if len(instructions) > MAX_INSTRUCTIONS_CHARS:
        raise ValueError(
            f"the instructions are {len(instructions):,} characters; the most is {MAX_INSTRUCTIONS_CHARS:,}"
        )
    if len(model) > MAX_MODEL_CHARS or any(char.isspace() for char in model):
        raise ValueError("the model must be a model id like claude-sonnet-4-5, without spaces")
    if tools is not None:
        if len(tools) > MAX_TOOLS:
            raise ValueError(f"a channel may allow at most {MAX_TOOLS} tools")
        if any(not name or len(name) > MAX_TOOL_NAME_CHARS for name in tools):
            raise ValueError(f"a tool name has 1 to {MAX_TOOL_NAME_CHARS} characters")


def parse_config(raw: str) -> ChannelConfig:
    """A stored record; what does not parse is left out (and named in `problems`) rather than failing the channel."""
    try:
        record = json.loads(raw)
    except json.JSONDecodeError:
        return ChannelConfig(problems=("the stored configuration is not JSON",))
    if not isinstance(record, dict):
        return ChannelConfig(problems=("the stored configuration is not an object",))
    problems: list[str] = []
    instructions = _text(record, "instructions")
    if len(instructions) > MAX_INSTRUCTIONS_CHARS:
        problems.append("instructions too long")
        instructions = instructions[:MAX_INSTRUCTIONS_CHARS]
    model = _text(record, "model")
    if len(model) > MAX_MODEL_CHARS or any(char.isspace() for char in model):
        problems.append("model not valid")
        model = ""
    raw_tools = record.get("tools")
    tools: tuple[str, ...] | None = None
    if isinstance(raw_tools, list):
        tools = tuple(
            name for name in raw_tools[:MAX_TOOLS] if isinstance(name, str) and 0 < len(name) <= MAX_TOOL_NAME_CHARS
        )
    version = record.get("version")
    updated_at = record.get("updated_at")
    return ChannelConfig(
        instructions=instructions,
        model=model,
        tools=tools,
        version=version if isinstance(version, int) and not isinstance(version, bool) else 0,
        updated_by=str(record.get("updated_by") or "")[:32],
        updated_at=float(updated_at) if isinstance(updated_at, int | float) else 0.0,
        problems=tuple(problems),
    )


def _text(record: dict[str, Any], name: str) -> str:
    value = record.get(name)
    return value if isinstance(value, str) else ""


class ChannelConfigStore:
    """Reads and changes channels' configurations."""

    def __init__(self, redis: RedisClient) -> None:
        self._redis = redis
        self._save = redis.register_script(_SAVE)

    async def get(self, team_id: str, channel_id: str) -> ChannelConfig:
        """The channel's configuration (the defaults when none was set)."""
        raw = await self._redis.get(keys.channel_config(team_id, channel_id))
        return ChannelConfig() if raw is None else parse_config(decode.text(raw))

    async def save(
        self,
        team_id: str,
        channel_id: str,
        *,
        instructions: str,
        model: str,
        tools: tuple[str, ...] | None,
        by: str,
        from_version: int,
        now: float | None = None,
    ) -> ChannelConfig:
        """Store a change made from version `from_version`; ConfigConflict if the channel's is another by now."""
        config = ChannelConfig(
            instructions=instructions.strip(),
            model=model.strip(),
            tools=tools,
            version=from_version + 1,
            updated_by=by,
            updated_at=time.time() if now is None else now,
        )
        saved = await self._save(keys=[keys.channel_config(team_id, channel_id)], args=[from_version, config.to_json()])
        if not saved:
            raise ConfigConflict("the channel's configuration was changed meanwhile")
        return config
