"""The bot's exceptions.

    BotError
    ├── ConfigError          a setting is missing or invalid; startup stops with exit code 2
    ├── RedisUnavailable     the embedded Redis could not start, or Redis does not answer
    ├── SlackError           a Slack Web API call failed after the Slack client's own retries
    │   ├── StreamClosed     a streamed answer takes no more: Slack ended the stream, or a person pressed Stop
    │   ├── SearchUnavailable Slack does not allow searching in this workspace (feature off, scope, token type)
    │   └── SearchTokenRefused the message's action token is no longer good (expired, or not this app's)
    ├── ModelError           Claude could not answer after the retries of bot/agent/client.py
    │   ├── ModelUnavailable overloaded, rate limited or unreachable until the retry deadline
    │   ├── ModelAuthError   the API key was rejected (401/403): an admin must act; never retried
    │   ├── ModelRequestError the request itself was refused (400, 404, 413...); never retried
    │   └── ModelRefused     Claude declined (stop_reason "refusal"); retrying will not help
    └── OverBudget           a model call would pass a daily budget (bot/tasks/budgets.py); none is made

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
    """The model call failed for good. `user_message` says so in words the people in the thread can act on."""

    user_message = "I could not reach Claude just now. Mention me again to retry."


class ModelUnavailable(ModelError):
    """Claude stayed overloaded, rate limited or unreachable for the whole retry deadline."""

    user_message = (
        "Claude is overloaded or rate limited right now, and I gave up after retrying. Try again in a few minutes."
    )


class ModelAuthError(ModelError):
    """The API key was rejected (401) or lacks permission (403): only an admin can fix it."""

    user_message = (
        "The bot's Anthropic API key was rejected. An admin needs to fix the bot's ANTHROPIC_API_KEY setting."
    )


class ModelRequestError(ModelError):
    """Claude would not take the request as it is (400, 404, 413...): retrying it unchanged will not help."""

    user_message = "Claude could not take this request as it is (it may be too long or use an unknown model)."


class ModelRefused(ModelError):
    """The model refused to answer."""


class SlackError(BotError):
    """A Slack Web API call failed after the client's own retries; `code` is Slack's error code, if it gave one."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code


class StreamClosed(SlackError):
    """Slack takes no more of a streamed answer: the stream timed out, or a person pressed Stop."""


class SearchUnavailable(SlackError):
    """Slack does not allow assistant.search.context in the workspace: the feature is off there, the app lacks the
    scope, or the token is of a type it refuses. Retrying before an admin acts will not help."""


class SearchTokenRefused(SlackError):
    """Slack refused the action token a search was made with: it expired, or came from another workspace or app.
    A new message to the bot brings a new one."""


class OverBudget(BotError):
    """A model call's worst case would pass a daily budget; `message` tells the thread which, and when it resets."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
