"""The Slack emulator's modals, through the real slack_sdk: views.open's triggers and limits, and submissions."""

from __future__ import annotations

import json
from typing import Any

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes import FakeSlack


def modal(**changes: Any) -> dict[str, Any]:
    """A small valid modal: a text input, a select and checkboxes."""
    view: dict[str, Any] = {
        "type": "modal",
        "callback_id": "cb",
        "title": {"type": "plain_text", "text": "Settings"},
        "submit": {"type": "plain_text", "text": "Save"},
        "private_metadata": "meta",
        "blocks": [
            {
                "type": "input",
                "block_id": "text",
                "optional": True,
                "label": {"type": "plain_text", "text": "Text"},
                "element": {"type": "plain_text_input", "action_id": "v", "max_length": 10, "initial_value": "hi"},
            },
            {
                "type": "input",
                "block_id": "pick",
                "label": {"type": "plain_text", "text": "Pick"},
                "element": {
                    "type": "static_select",
                    "action_id": "v",
                    "options": [_option("a"), _option("b")],
                    "initial_option": _option("a"),
                },
            },
            {
                "type": "input",
                "block_id": "boxes",
                "optional": True,
                "label": {"type": "plain_text", "text": "Boxes"},
                "element": {"type": "checkboxes", "action_id": "v", "options": [_option("x"), _option("y")]},
            },
        ],
    }
    view.update(changes)
    return view


def _option(value: str) -> dict[str, Any]:
    return {"text": {"type": "plain_text", "text": value.upper()}, "value": value}


async def error_of(call: object) -> str:
    with pytest.raises(SlackApiError) as info:
        await call  # type: ignore[misc]  # a coroutine of the SDK
    return str(info.value.response["error"])


async def test_a_trigger_opens_one_view_once_and_within_three_seconds(slack: FakeSlack, web: AsyncWebClient) -> None:
    """A trigger opens a view; used again it is exchanged, aged past 3 s expired, unknown invalid."""
    trigger = slack.issue_trigger_id("U0ALICE")
    opened = await web.views_open(trigger_id=trigger, view=modal())
    view = opened["view"]
    assert view["id"] in slack.views and view["private_metadata"] == "meta" and view["callback_id"] == "cb"
    assert slack.views[view["id"]].user_id == "U0ALICE"
    assert await error_of(web.views_open(trigger_id=trigger, view=modal())) == "exchanged_trigger_id"
    late = slack.issue_trigger_id("U0ALICE")
    slack.age_trigger(late, 3.5)
    assert await error_of(web.views_open(trigger_id=late, view=modal())) == "expired_trigger_id"
    assert await error_of(web.views_open(trigger_id="1.2.abc", view=modal())) == "invalid_trigger_id"
    assert await error_of(web.views_open(trigger_id="not a trigger", view=modal())) == "invalid_trigger_id"
    assert len(slack.views) == 1


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"title": {"type": "plain_text", "text": "t" * 25}}, "/view/title/text"),
        ({"submit": None}, "/view/submit"),
        ({"private_metadata": "m" * 3001}, "/view/private_metadata"),
        ({"blocks": [{"type": "divider"}] * 101}, "/view/blocks"),
    ],
)
async def test_views_open_refuses_what_block_kit_refuses(
    slack: FakeSlack, web: AsyncWebClient, change: dict[str, Any], where: str
) -> None:
    """A title over 24 characters, inputs without submit, metadata over 3,000, over 100 blocks: invalid_arguments."""
    view = {key: value for key, value in modal(**change).items() if value is not None}
    trigger = slack.issue_trigger_id("U0ALICE")
    assert await error_of(web.views_open(trigger_id=trigger, view=view)) == "invalid_arguments"
    assert any(where in problem for problem in slack.view_problems), slack.view_problems
    assert (await web.views_open(trigger_id=trigger, view=modal()))["ok"], "a refused view leaves the trigger unused"


@pytest.mark.parametrize(
    ("element", "where"),
    [
        ({"type": "plain_text_input", "action_id": "v", "max_length": 3001}, "max_length"),
        ({"type": "checkboxes", "action_id": "v", "options": [_option(str(n)) for n in range(11)]}, "options"),
        ({"type": "static_select", "action_id": "v", "options": [_option("a")], "initial_option": _option("b")}, ""),
        ({"type": "checkboxes", "action_id": "v", "options": [_option("a")], "initial_options": []}, "initial"),
        ({"type": "plain_text_input", "action_id": "a" * 256}, "action_id"),
    ],
)
async def test_views_open_refuses_elements_past_their_limits(
    slack: FakeSlack, web: AsyncWebClient, element: dict[str, Any], where: str
) -> None:
    """A text input's max_length over 3,000, checkboxes over 10, an initial option not offered, an empty
    initial_options, an action_id over 255 characters."""
    view = modal()
    view["blocks"][0]["element"] = element
    trigger = slack.issue_trigger_id("U0ALICE")
    assert await error_of(web.views_open(trigger_id=trigger, view=view)) == "invalid_arguments"
    assert any(where in problem for problem in slack.view_problems), slack.view_problems


async def test_a_submission_carries_the_entries_and_the_apps_answer_closes_shows_errors_or_updates(
    slack: FakeSlack, web: AsyncWebClient
) -> None:
    """The payload holds state.values by block and action id; errors must name input blocks; update replaces."""
    view_id = (await web.views_open(trigger_id=slack.issue_trigger_id("U0ALICE"), view=modal()))["view"]["id"]
    payload = slack.submit_view(view_id, {"boxes": ["y"]}, user="U0ALICE")
    assert payload["type"] == "view_submission" and payload["user"]["id"] == "U0ALICE"
    assert payload["view"]["private_metadata"] == "meta"
    values = payload["view"]["state"]["values"]
    assert values["text"]["v"] == {"type": "plain_text_input", "value": "hi"}
    assert values["pick"]["v"]["selected_option"]["value"] == "a"
    assert [option["value"] for option in values["boxes"]["v"]["selected_options"]] == ["y"]

    with pytest.raises(ValueError, match="max_length"):
        slack.submit_view(view_id, {"text": "x" * 11})
    with pytest.raises(ValueError, match="not an option"):
        slack.submit_view(view_id, {"pick": "zzz"})

    assert slack.view_response(view_id, 200, json.dumps({"response_action": "errors", "errors": {"nope": "x"}})) == (
        "failed"
    )
    assert slack.view_response(view_id, 200, json.dumps({"response_action": "errors", "errors": {"text": "no"}})) == (
        "errors"
    )
    assert slack.views[view_id].errors == {"text": "no"}
    bad_update = {"response_action": "update", "view": modal(title={"type": "plain_text", "text": "t" * 30})}
    assert slack.view_response(view_id, 200, json.dumps(bad_update)) == "failed"
    update = {"response_action": "update", "view": modal(private_metadata="newer")}
    assert slack.view_response(view_id, 200, json.dumps(update)) == "updated"
    assert slack.views[view_id].view["private_metadata"] == "newer" and not slack.views[view_id].errors
    assert slack.view_response(view_id, 200, "") == "closed"
    assert view_id not in slack.views and view_id in slack.closed_views
