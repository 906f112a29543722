"""Events API payloads of an org-wide (Enterprise Grid) install that concern the whole org, not one workspace.

Slack sends these with the org's id and a null team_id, and without `authorizations`: there is no workspace they
happened in (https://api.slack.com/events/team_access_granted; bolt-python's tests/scenario_tests/
test_events_org_apps.py and test_events_token_revocations.py hold payloads captured from Slack).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from .payloads import DEFAULT_APP_ID, VERIFICATION_TOKEN, new_ts


def org_event_envelope(
    event: dict[str, Any],
    *,
    enterprise_id: str,
    api_app_id: str = DEFAULT_APP_ID,
    event_id: str | None = None,
    event_time: int | None = None,
) -> dict[str, Any]:
    """Wrap an org-level `event` (team_access_*, or app_uninstalled/tokens_revoked of an org-wide install)."""
    return {
        "token": VERIFICATION_TOKEN,
        "team_id": None,
        "enterprise_id": enterprise_id,
        "api_app_id": api_app_id,
        "event": event,
        "type": "event_callback",
        "event_id": event_id or "Ev" + uuid.uuid4().hex[:10].upper(),
        "event_time": int(time.time()) if event_time is None else event_time,
    }


def team_access_granted_event(team_ids: list[str]) -> dict[str, Any]:
    """The inner `team_access_granted` event: an org admin added the org-wide app to these workspaces."""
    return {"type": "team_access_granted", "team_ids": list(team_ids), "event_ts": new_ts()}


def team_access_revoked_event(team_ids: list[str]) -> dict[str, Any]:
    """The inner `team_access_revoked` event: the org-wide app's token no longer reaches these workspaces."""
    return {"type": "team_access_revoked", "team_ids": list(team_ids), "event_ts": new_ts()}
