"""The bot's exceptions.

    BotError
    ├── ConfigError          a setting is missing or invalid; startup stops with exit code 2
    ├── RedisUnavailable     the embedded Redis could not start, or Redis does not answer
    ├── SlackError           a Slack Web API call failed after the Slack client's own retries
    └── ModelError           Claude could not answer after the retries of bot/llm.py
        └── ModelRefused     Claude declined (stop_reason "refusal"); retrying will not help

Errors that only the store raises live in `store.errors` (store imports nothing of bot/).
"""

from __future__ import annotations


class BotError(Exception):
    """Base of every error the bot raises on purpose."""


class ConfigError(BotError):
    """One or more settings are missing or invalid."""

    def __init__(self, missing: list[str], invalid: list[str]) -> None:
        self.missing = missing
        self.invalid = invalid
        parts = []
        if missing:
            parts.append("missing: " + ", ".join(missing))
        if invalid:
            parts.append("invalid: " + "; ".join(invalid))
        super().__init__("Configuration error; " + "; ".join(parts) + ". See README.md, 'Settings'.")


class RedisUnavailable(BotError):
    """Redis could not be started or reached."""


class ModelError(BotError):
    """The model call failed for good."""


class ModelRefused(ModelError):
    """The model refused to answer."""


class SlackError(BotError):
    """A Slack Web API call failed after the client's own retries."""
