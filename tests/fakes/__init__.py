"""The fakes tests use: the local Slack and Anthropic servers of playground, payload builders and wait_until."""

from __future__ import annotations

from playground.anthropic_api import (
    ERROR_STATUS,
    MAX_IMAGE_BASE64,
    MAX_IMAGES,
    MAX_OUTPUT_TOKENS,
    MAX_REQUEST_BYTES,
    FakeAnthropic,
    Reply,
    echo_responder,
    estimate_tokens,
    user_texts,
)
from playground.grid_payloads import org_event_envelope, team_access_granted_event, team_access_revoked_event
from playground.long_answers import continuing
from playground.mcp_server import FakeMcpServer, self_signed_certificate
from playground.payloads import (
    DEFAULT_APP_ID,
    DEFAULT_BOT_ID,
    DEFAULT_BOT_USER_ID,
    DEFAULT_TEAM_ID,
    VERIFICATION_TOKEN,
    agent_session_stopped_event,
    agent_session_title_changed_event,
    app_home_opened_event,
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
from playground.slack import FakeSlack, SlackApiFailure, SlackCall, SlackDownload
from playground.slack_files import LOGIN_PAGE, filetype_for
from playground.slack_sessions import AgentSession
from playground.slack_streams import AgentStream, TaskCard
from playground.slack_views import OpenView, view_problems
from playground.waiting import wait_until

__all__ = [
    "DEFAULT_APP_ID",
    "DEFAULT_BOT_ID",
    "DEFAULT_BOT_USER_ID",
    "DEFAULT_TEAM_ID",
    "ERROR_STATUS",
    "LOGIN_PAGE",
    "MAX_IMAGES",
    "MAX_IMAGE_BASE64",
    "MAX_OUTPUT_TOKENS",
    "MAX_REQUEST_BYTES",
    "VERIFICATION_TOKEN",
    "AgentSession",
    "AgentStream",
    "FakeAnthropic",
    "FakeMcpServer",
    "FakeSlack",
    "OpenView",
    "Reply",
    "SlackApiFailure",
    "SlackCall",
    "SlackDownload",
    "TaskCard",
    "agent_session_stopped_event",
    "agent_session_title_changed_event",
    "app_home_opened_event",
    "app_mention_event",
    "block_actions_form",
    "block_actions_payload",
    "button_element",
    "continuing",
    "echo_responder",
    "estimate_tokens",
    "event_envelope",
    "filetype_for",
    "hooks_url",
    "message_event",
    "new_ts",
    "org_event_envelope",
    "rich_text_blocks",
    "self_signed_certificate",
    "sign",
    "signed_event_request",
    "signed_form_request",
    "slash_command_fields",
    "slash_command_form",
    "team_access_granted_event",
    "team_access_revoked_event",
    "url_verification",
    "user_texts",
    "view_problems",
    "wait_until",
]
