"""Modals on FakeSlack: views.open as Slack does it, and a person submitting an open modal.

A trigger_id (sent with a slash command or an interaction) opens one view, once, within 3 s of the trigger: later it
is expired_trigger_id, a second time exchanged_trigger_id, one this fake never issued invalid_trigger_id. A view
that breaks Block Kit's limits is refused with invalid_arguments (the problems are kept in `view_problems`), one
over 250 KB with view_too_large. A person's submission becomes the view_submission payload Slack would send, and
`view_response` applies the app's answer to it as Slack does (close, errors on input blocks, update, clear).
"""

from __future__ import annotations

import copy
import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .payloads import VERIFICATION_TOKEN, _interaction_team
from .slack_store import SlackApiFailure

Args = dict[str, Any]
TRIGGER_TTL = 3.0
MAX_VIEW_BYTES = 250_000
TRIGGER_FORMAT = re.compile(r"^\d+\.\d+\.[0-9a-f]+$")
MAX_BLOCKS = 100
MAX_MODAL_BUTTON = 24  # title, submit and close
MAX_METADATA = 3000
MAX_ID = 255  # callback_id, external_id, block_id, action_id
MAX_LABEL = 2000  # an input block's label and hint
MAX_PLACEHOLDER = 150
MAX_TEXT_INPUT = 3000  # plain_text_input's max_length and min_length
MAX_SECTION_TEXT = 3000
MAX_CONTEXT_ELEMENTS = 10
MAX_OPTION_TEXT, MAX_OPTION_VALUE = 75, 150
MAX_OPTIONS = {"checkboxes": 10, "radio_buttons": 10, "static_select": 100, "multi_static_select": 100}
INPUT_ELEMENTS = ("plain_text_input", *MAX_OPTIONS)
BLOCK_TYPES = ("section", "context", "divider", "header", "input", "actions", "image", "rich_text")


@dataclass
class _Trigger:
    team_id: str
    user_id: str
    issued: float  # time.monotonic()
    used: bool = False


@dataclass
class OpenView:
    """A modal open in front of a person."""

    view: Args
    team_id: str
    user_id: str
    errors: dict[str, str]  # what the app's last `errors` answer shows on the input blocks


class SlackViewsMixin:
    """Adds trigger ids, views.open and view submissions to FakeSlack."""

    app_id: str
    _users: dict[str, Args]

    if TYPE_CHECKING:

        @property
        def team_id(self) -> str: ...

        @property
        def bot_id(self) -> str: ...

    def _init_views(self) -> None:
        self.views: dict[str, OpenView] = {}  # open modals by view id
        self.closed_views: list[str] = []
        self.view_problems: list[str] = []  # why views.open refused the last invalid view
        self._triggers: dict[str, _Trigger] = {}

    def _view_handlers(self) -> dict[str, Callable[[Args], Args]]:
        return {"views.open": self._views_open}

    def issue_trigger_id(self, user_id: str, team_id: str | None = None) -> str:
        """A trigger_id as Slack sends with a person's command or click: it opens one view within 3 s."""
        trigger = f"{uuid.uuid4().int % 10**12}.{int(time.time())}.{uuid.uuid4().hex[:24]}"
        self._triggers[trigger] = _Trigger(team_id or self.team_id, user_id, time.monotonic())
        return trigger

    def age_trigger(self, trigger_id: str, seconds: float) -> None:
        """Make a trigger `seconds` older (to expire it without waiting)."""
        self._triggers[trigger_id].issued -= seconds

    # ------------------------------------------------------------------ Web API

    def _views_open(self, args: Args) -> Args:
        view = args.get("view")
        if not isinstance(view, dict):
            raise SlackApiFailure("invalid_arguments")
        trigger = self._exchange(str(args.get("trigger_id") or ""))
        if len(json.dumps(view)) > MAX_VIEW_BYTES:
            raise SlackApiFailure("view_too_large")
        self.view_problems = view_problems(view)
        if self.view_problems:
            raise SlackApiFailure("invalid_arguments")
        trigger.used = True
        view_id = "V" + uuid.uuid4().hex[:10].upper()
        stored = self._stored_view(view_id, view, trigger.team_id)
        self.views[view_id] = OpenView(stored, trigger.team_id, trigger.user_id, {})
        return {"view": copy.deepcopy(stored)}

    def _exchange(self, trigger_id: str) -> _Trigger:
        trigger = self._triggers.get(trigger_id)
        if not TRIGGER_FORMAT.match(trigger_id) or trigger is None or trigger.team_id != self.team_id:
            raise SlackApiFailure("invalid_trigger_id")
        if trigger.used:
            raise SlackApiFailure("exchanged_trigger_id")
        if time.monotonic() - trigger.issued > TRIGGER_TTL:
            raise SlackApiFailure("expired_trigger_id")
        return trigger

    def _stored_view(self, view_id: str, view: Args, team_id: str) -> Args:
        stored = copy.deepcopy(view)
        for block in stored["blocks"]:
            block.setdefault("block_id", uuid.uuid4().hex[:5])  # Slack names the blocks the app did not
        stored.update(
            id=view_id,
            team_id=team_id,
            state={"values": {}},
            hash=f"{int(time.time())}.{uuid.uuid4().hex[:8]}",
            private_metadata=view.get("private_metadata", ""),
            callback_id=view.get("callback_id", ""),
            root_view_id=view_id,
            previous_view_id=None,
            app_id=self.app_id,
            bot_id=self.bot_id,
            external_id=view.get("external_id", ""),
            clear_on_close=bool(view.get("clear_on_close")),
            notify_on_close=bool(view.get("notify_on_close")),
        )
        return stored

    # ------------------------------------------------------------------ people

    def submit_view(self, view_id: str, values: dict[str, Any], *, user: str | None = None) -> Args:
        """The view_submission payload of the person submitting the open modal with these entries, by block_id:
        text for a text input, an option's value for a select, a list of values for checkboxes or a multi-select;
        a block left out keeps what the modal shows. ValueError for what Slack's client would not submit."""
        opened = self.views[view_id]
        if user is not None and user != opened.user_id:
            raise ValueError(f"{user} cannot submit a modal open in front of {opened.user_id}")
        inputs = {block["block_id"]: block for block in opened.view["blocks"] if block["type"] == "input"}
        unknown = set(values) - set(inputs)
        if unknown:
            raise ValueError(f"no input block {sorted(unknown)} in the modal")
        state = {key: _entry(block, values.get(key), key in values) for key, block in inputs.items()}
        view = copy.deepcopy(opened.view)
        view["state"] = {"values": state}
        name = self._users.get(opened.user_id, {}).get("name", "someone")
        return {
            "type": "view_submission",
            **_interaction_team(opened.team_id, "fake-team", None, None, False),
            "user": {"id": opened.user_id, "username": name, "name": name, "team_id": opened.team_id},
            "api_app_id": self.app_id,
            "token": VERIFICATION_TOKEN,
            "trigger_id": self.issue_trigger_id(opened.user_id, opened.team_id),
            "view": view,
            "response_urls": [],
        }

    def close_view(self, view_id: str) -> None:
        """The person closes the modal (Cancel): the app hears nothing of it, as it did not ask (notify_on_close)."""
        if self.views.pop(view_id, None) is not None:
            self.closed_views.append(view_id)

    def view_response(self, view_id: str, status: int, body: str) -> str:
        """Apply the app's answer to a submission as Slack does; returns what happened: "closed", "errors",
        "updated", or "failed" (Slack then tells the person it had trouble connecting; the modal stays open)."""
        opened = self.views[view_id]
        if status != 200:
            return "failed"
        answer = json.loads(body) if body.strip() else {}
        action = answer.get("response_action") if isinstance(answer, dict) else None
        if action is None or action == "clear":
            self.close_view(view_id)
            return "closed"
        if action == "errors":
            inputs = {block["block_id"] for block in opened.view["blocks"] if block["type"] == "input"}
            errors = answer.get("errors")
            if not isinstance(errors, dict) or not errors or not set(errors) <= inputs:
                return "failed"  # errors name input blocks of the view, or Slack shows none of them
            opened.errors = {str(key): str(value) for key, value in errors.items()}
            return "errors"
        if action == "update" and isinstance(answer.get("view"), dict) and not view_problems(answer["view"]):
            opened.view = self._stored_view(view_id, answer["view"], opened.team_id)
            opened.errors = {}
            return "updated"
        return "failed"


def _entry(block: Args, value: Any, given: bool) -> Args:
    """One input block's entry in state.values, keyed by its element's action_id."""
    element = block["element"]
    kind = element["type"]
    optional = bool(block.get("optional"))
    if kind == "plain_text_input":
        text = value if given else element.get("initial_value")
        if text is not None and not isinstance(text, str):
            raise ValueError("a text input takes text")
        if text and len(text) > element.get("max_length", MAX_TEXT_INPUT):
            raise ValueError("longer than the input's max_length: Slack's client would not submit it")
        if not text and not optional:
            raise ValueError(f"{block['block_id']} is required")
        entry: Args = {"type": kind, "value": text or None}
    elif kind in ("static_select", "radio_buttons"):
        options = {option["value"]: option for option in element.get("options", [])}
        chosen = options.get(value) if given else element.get("initial_option")
        if given and value is not None and chosen is None:
            raise ValueError(f"{value!r} is not an option of {block['block_id']}")
        if chosen is None and not optional:
            raise ValueError(f"{block['block_id']} is required")
        entry = {"type": kind, "selected_option": copy.deepcopy(chosen)}
    else:
        options = {option["value"]: option for option in element.get("options", [])}
        if given:
            if not isinstance(value, list) or any(item not in options for item in value):
                raise ValueError(f"{value!r} are not options of {block['block_id']}")
            chosen_list = [options[item] for item in value]
        else:
            chosen_list = element.get("initial_options", [])
        if not chosen_list and not optional:
            raise ValueError(f"{block['block_id']} is required")
        entry = {"type": kind, "selected_options": copy.deepcopy(chosen_list)}
    return {element["action_id"]: entry}


def view_problems(view: Args) -> list[str]:
    """What Slack would refuse in a modal view, each with the JSON pointer of where it is."""
    problems: list[str] = []
    if view.get("type") != "modal":
        problems.append("type must be modal [/view/type]")
    for name in ("title", "submit", "close"):
        text = view.get(name)
        if text is None:
            if name == "title":
                problems.append("title is required [/view/title]")
            continue
        problems += _plain_text(text, MAX_MODAL_BUTTON, f"/view/{name}")
    for name, limit in (("private_metadata", MAX_METADATA), ("callback_id", MAX_ID), ("external_id", MAX_ID)):
        if len(str(view.get(name) or "")) > limit:
            problems.append(f"must be at most {limit} characters [/view/{name}]")
    blocks = view.get("blocks")
    if not isinstance(blocks, list) or len(blocks) > MAX_BLOCKS:
        return [*problems, f"blocks must be a list of at most {MAX_BLOCKS} [/view/blocks]"]
    if any(block.get("type") == "input" for block in blocks) and view.get("submit") is None:
        problems.append("a view with input blocks needs submit [/view/submit]")
    seen: set[str] = set()
    for index, block in enumerate(blocks):
        where = f"/view/blocks/{index}"
        block_id = block.get("block_id")
        if block_id is not None:
            if not isinstance(block_id, str) or not 0 < len(block_id) <= MAX_ID or block_id in seen:
                problems.append(f"block_id must be unique and 1 to {MAX_ID} characters [{where}/block_id]")
            seen.add(str(block_id))
        problems += _block_problems(block, where)
    return problems


def _block_problems(block: Args, where: str) -> list[str]:
    kind = block.get("type")
    if kind not in BLOCK_TYPES:
        return [f"unknown block type {kind!r} [{where}/type]"]
    if kind == "section" and len(str((block.get("text") or {}).get("text", ""))) > MAX_SECTION_TEXT:
        return [f"must be at most {MAX_SECTION_TEXT} characters [{where}/text/text]"]
    if kind == "context" and not 0 < len(block.get("elements") or []) <= MAX_CONTEXT_ELEMENTS:
        return [f"must have 1 to {MAX_CONTEXT_ELEMENTS} elements [{where}/elements]"]
    if kind != "input":
        return []
    problems = _plain_text(block.get("label"), MAX_LABEL, f"{where}/label")
    if "hint" in block:
        problems += _plain_text(block["hint"], MAX_LABEL, f"{where}/hint")
    return problems + _element_problems(block.get("element") or {}, f"{where}/element")


def _element_problems(element: Args, where: str) -> list[str]:
    kind = element.get("type")
    if kind not in INPUT_ELEMENTS:
        return [f"unsupported input element {kind!r} [{where}/type]"]
    problems: list[str] = []
    if not 0 < len(str(element.get("action_id") or "")) <= MAX_ID:
        problems.append(f"action_id must be 1 to {MAX_ID} characters [{where}/action_id]")
    if "placeholder" in element:
        problems += _plain_text(element["placeholder"], MAX_PLACEHOLDER, f"{where}/placeholder")
    if kind == "plain_text_input":
        for name, low in (("max_length", 1), ("min_length", 0)):
            value = element.get(name)
            if value is not None and not (isinstance(value, int) and low <= value <= MAX_TEXT_INPUT):
                problems.append(f"must be {low} to {MAX_TEXT_INPUT} [{where}/{name}]")
        return problems
    options = element.get("options") or []
    if not 0 < len(options) <= MAX_OPTIONS[kind]:
        problems.append(f"must have 1 to {MAX_OPTIONS[kind]} options [{where}/options]")
    for index, option in enumerate(options):
        problems += _plain_text(option.get("text"), MAX_OPTION_TEXT, f"{where}/options/{index}/text")
        if not 0 < len(str(option.get("value") or "")) <= MAX_OPTION_VALUE:
            problems.append(f"value must be 1 to {MAX_OPTION_VALUE} characters [{where}/options/{index}/value]")
    initial = element.get("initial_options", [element["initial_option"]] if "initial_option" in element else [])
    if "initial_options" in element and not initial:
        problems.append(f"must not be empty [{where}/initial_options]")
    if any(option not in options for option in initial):
        problems.append(f"initial options must be among the options, exactly [{where}]")
    return problems


def _plain_text(text: Any, limit: int, where: str) -> list[str]:
    if not isinstance(text, dict) or text.get("type") != "plain_text" or not isinstance(text.get("text"), str):
        return [f"must be a plain_text object [{where}]"]
    if not 0 < len(text["text"]) <= limit:
        return [f"must be 1 to {limit} characters [{where}/text]"]
    return []
