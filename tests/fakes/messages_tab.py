"""assistant.threads.setSuggestedPrompts for a FakeSlack that does not speak it yet (the playground is getting it)."""

from __future__ import annotations

from typing import Any

from playground.slack import FakeSlack, SlackApiFailure

METHOD = "assistant.threads.setSuggestedPrompts"


def accept_suggested_prompts(slack: FakeSlack) -> None:
    """Make `slack` answer setSuggestedPrompts as Slack does, unless it does already; calls are in calls_to(METHOD)."""
    handlers: dict[str, Any] = slack._handlers  # the fake has no public way to add a method yet
    handlers.setdefault(METHOD, _set_suggested_prompts)


def _set_suggested_prompts(args: dict[str, Any]) -> dict[str, Any]:
    if not args.get("channel_id"):
        raise SlackApiFailure("channel_not_found")
    prompts = args.get("prompts")
    # Slack takes "up to four" prompts, each with a title and a message.
    if not isinstance(prompts, list) or not 1 <= len(prompts) <= 4:
        raise SlackApiFailure("invalid_arguments")
    if not all(isinstance(p, dict) and p.get("title") and p.get("message") for p in prompts):
        raise SlackApiFailure("invalid_arguments")
    return {}
