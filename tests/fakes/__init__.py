"""The fakes tests use: the local Slack and Anthropic servers of bot/dev, payload builders and wait_until."""

from __future__ import annotations

from bot.dev.anthropic_api import ERROR_STATUS, FakeAnthropic, Reply, echo_responder, estimate_tokens, user_texts
from bot.dev.payloads import (
    DEFAULT_APP_ID,
    DEFAULT_BOT_ID,
    DEFAULT_BOT_USER_ID,
    DEFAULT_TEAM_ID,
    VERIFICATION_TOKEN,
    app_mention_event,
    block_actions_form,
    block_actions_payload,
    button_element,
    event_envelope,
    hooks_url,
    message_event,
    new_ts,
    rich_text_blocks,
    sign,
    signed_event_request,
    signed_form_request,
    slash_command_fields,
    slash_command_form,
    url_verification,
)
from bot.dev.slack import FakeSlack, SlackApiFailure, SlackCall, SlackDownload
from bot.dev.slack_files import LOGIN_PAGE, filetype_for
from bot.dev.waiting import wait_until

__all__ = [
    "DEFAULT_APP_ID",
    "DEFAULT_BOT_ID",
    "DEFAULT_BOT_USER_ID",
    "DEFAULT_TEAM_ID",
    "ERROR_STATUS",
    "LOGIN_PAGE",
    "VERIFICATION_TOKEN",
    "FakeAnthropic",
    "FakeSlack",
    "Reply",
    "SlackApiFailure",
    "SlackCall",
    "SlackDownload",
    "app_mention_event",
    "block_actions_form",
    "block_actions_payload",
    "button_element",
    "echo_responder",
    "estimate_tokens",
    "event_envelope",
    "filetype_for",
    "hooks_url",
    "message_event",
    "new_ts",
    "rich_text_blocks",
    "sign",
    "signed_event_request",
    "signed_form_request",
    "slash_command_fields",
    "slash_command_form",
    "url_verification",
    "user_texts",
    "wait_until",
]
