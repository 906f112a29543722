"""Block Kit of `/agent config`: the modal that edits a channel's configuration, what a submission of it holds, the
note the channel gets about a change, and the configuration's lines in `/agent status`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from store.channel_config import MAX_INSTRUCTIONS_CHARS, ChannelConfig

Block = dict[str, Any]
CONFIG_CALLBACK = "agent_channel_config"
INSTRUCTIONS_BLOCK, MODEL_BLOCK, TOOLS_BLOCK = "config_instructions", "config_model", "config_tools"
VALUE = "value"  # the action_id of each block's one element
DEFAULT_MODEL = "default"  # the model option that means ANTHROPIC_MODEL (an option's value may not be empty)
# Slack's limits: checkboxes take at most 10 options, a select 100; an option's text 75 characters, its value 150.
MAX_CHECKBOXES = 10
MAX_OPTION_TEXT = 75
INSTRUCTIONS_EXCERPT_CHARS = 200
TOOL_LABELS = {
    "web_search": "Search the web (web_search)",
    "web_fetch": "Read web pages (web_fetch)",
    "code_execution": "Run code (code_execution)",
    "memory": "Remember across threads: the channel's memory",
    "search_slack": "Search Slack (search_slack)",
    "schedule": "Schedule its own follow-ups in the thread (schedule)",
}


@dataclass(frozen=True)
class ConfigTarget:
    """Which channel's configuration a modal edits, and the version it was opened on (its private_metadata)."""

    team_id: str
    channel_id: str
    version: int

    def to_metadata(self) -> str:
        """The modal's private_metadata (Slack sends it back with the submission)."""
        return json.dumps({"team": self.team_id, "channel": self.channel_id, "version": self.version})

    @classmethod
    def from_metadata(cls, raw: str) -> ConfigTarget:
        """ValueError when the metadata is not one this module wrote."""
        record = json.loads(raw or "null")
        if not isinstance(record, dict):
            raise ValueError("private_metadata is not an object")
        team, channel, version = record.get("team"), record.get("channel"), record.get("version")
        if not isinstance(team, str) or not isinstance(channel, str) or not isinstance(version, int):
            raise ValueError("private_metadata lacks team, channel or version")
        return cls(team, channel, version)


@dataclass(frozen=True)
class ConfigChoices:
    """What the modal offers: the deployment's model, the models a channel may pick, the tools it may allow."""

    default_model: str
    models: tuple[str, ...]
    tools: tuple[str, ...]
    default_tools: tuple[str, ...]


@dataclass(frozen=True)
class ConfigForm:
    """The values of a submitted modal."""

    instructions: str
    model: str  # "" = the deployment's
    tools: tuple[str, ...] | None  # None = the deployment's defaults

    @classmethod
    def from_state(cls, values: dict[str, Any], current: ChannelConfig, choices: ConfigChoices) -> ConfigForm:
        """Read a view_submission's state.values."""
        instructions = str(_element(values, INSTRUCTIONS_BLOCK).get("value") or "")
        # A field the modal did not show (nothing to choose) keeps the stored value, as far as it is still offered.
        model = current.model if current.model in choices.models else ""
        if MODEL_BLOCK in values:
            selected = _element(values, MODEL_BLOCK).get("selected_option") or {}
            model = str(selected.get("value") or DEFAULT_MODEL)
            model = "" if model == DEFAULT_MODEL else model
        tools = None if current.tools is None else tuple(name for name in current.tools if name in choices.tools)
        if TOOLS_BLOCK in values:
            selected = _element(values, TOOLS_BLOCK).get("selected_options") or []
            chosen = {str(option.get("value")) for option in selected}
            tools = tuple(name for name in choices.tools if name in chosen) + tuple(
                sorted(chosen - set(choices.tools))  # kept, so that validation can name them
            )
            # Exactly the defaults means "the defaults": the channel then follows ANTHROPIC_SERVER_TOOLS as it changes.
            if set(tools) == set(choices.default_tools):
                tools = None
        return cls(instructions.strip(), model, tools)

    def problems(self, choices: ConfigChoices) -> dict[str, str]:
        """What is wrong, by the block to show it on (Slack's response_action "errors")."""
        errors: dict[str, str] = {}
        if len(self.instructions) > MAX_INSTRUCTIONS_CHARS:
            errors[INSTRUCTIONS_BLOCK] = f"At most {MAX_INSTRUCTIONS_CHARS:,} characters, please."
        if self.model and self.model not in choices.models:
            errors[MODEL_BLOCK] = f"{self.model} is not one of the models this app offers channels."
        unknown = [name for name in self.tools or () if name not in choices.tools]
        if unknown:
            errors[TOOLS_BLOCK] = f"Not offered here: {', '.join(unknown)}."
        return errors


def _element(values: dict[str, Any], block_id: str) -> dict[str, Any]:
    element = (values.get(block_id) or {}).get(VALUE)
    return element if isinstance(element, dict) else {}


def config_modal(
    target: ConfigTarget, form: ConfigForm, choices: ConfigChoices, *, warning: str = ""
) -> dict[str, Any]:
    """The modal, filled with `form` (the stored configuration, or what a person submitted)."""
    blocks: list[Block] = []
    if warning:
        blocks.append(_section(f":warning: {warning}"))
    intro = f"Settings of <#{target.channel_id}>'s agents; a change applies from each thread's next task."
    blocks.append(_context(intro))
    instructions: Block = {
        "type": "plain_text_input",
        "action_id": VALUE,
        "multiline": True,
        "max_length": MAX_INSTRUCTIONS_CHARS,
        "placeholder": _text("e.g. Answer in French. Our on-call runbook is at go/runbook."),
    }
    if form.instructions:
        instructions["initial_value"] = form.instructions
    blocks.append(
        {
            "type": "input",
            "block_id": INSTRUCTIONS_BLOCK,
            "optional": True,
            "label": _text("Instructions"),
            "hint": _text("Added to the system prompt of every agent of this channel. Empty: none."),
            "element": instructions,
        }
    )
    blocks.append(_model_block(form, choices))
    blocks.append(_tools_block(form, choices))
    return {
        "type": "modal",
        "callback_id": CONFIG_CALLBACK,
        "title": _text("Channel agents"),
        "submit": _text("Save"),
        "close": _text("Cancel"),
        "private_metadata": target.to_metadata(),
        "blocks": blocks,
    }


def _model_block(form: ConfigForm, choices: ConfigChoices) -> Block:
    default = _option(f"The default ({choices.default_model})", DEFAULT_MODEL)
    if not choices.models:
        return _context(f"*Model:* {choices.default_model} (the app offers channels no other: CHANNEL_MODELS)")
    options = [default, *(_option(model, model) for model in choices.models)]
    chosen = next((option for option in options if option["value"] == form.model), default)
    return {
        "type": "input",
        "block_id": MODEL_BLOCK,
        "label": _text("Model"),
        "element": {"type": "static_select", "action_id": VALUE, "options": options, "initial_option": chosen},
    }


def _tools_block(form: ConfigForm, choices: ConfigChoices) -> Block:
    if not choices.tools:
        return _context("*Tools:* reading the thread only (the app offers no others: ANTHROPIC_SERVER_TOOLS)")
    options = [_option(TOOL_LABELS.get(name) or _tool_label(name), name) for name in choices.tools]
    selected = form.tools if form.tools is not None else choices.default_tools
    element: Block = {
        "type": "checkboxes" if len(options) <= MAX_CHECKBOXES else "multi_static_select",
        "action_id": VALUE,
        "options": options,
    }
    initial = [option for option in options if option["value"] in selected]
    if initial:  # Slack refuses an empty initial_options
        element["initial_options"] = initial
    return {
        "type": "input",
        "block_id": TOOLS_BLOCK,
        "optional": True,
        "label": _text("Tools"),
        "hint": _text(
            "Reading the thread is always on. Leave the app's defaults ticked to follow them when they change."
        ),
        "element": element,
    }


def _tool_label(name: str) -> str:
    return f"MCP server {name.removeprefix('mcp:')}" if name.startswith("mcp:") else name


def change_note(user_id: str, before: ChannelConfig, after: ChannelConfig, choices: ConfigChoices) -> str:
    """What the channel is told about a change: who made it and what it changed ("" when nothing changed)."""
    changes: list[str] = []
    if after.instructions != before.instructions:
        changes.append("cleared the instructions" if not after.instructions else "changed the instructions")
    if after.model != before.model:
        changes.append(f"set the model to {after.model or f'the default ({choices.default_model})'}")
    if after.tools != before.tools:
        changes.append(f"set the tools to {describe_tools(after.tools, choices)}")
    if not changes:
        return ""
    listed = changes[0] if len(changes) == 1 else ", ".join(changes[:-1]) + " and " + changes[-1]
    return (
        f"<@{user_id}> {listed} of this channel's agents (`/agent config`). "
        "It applies from each thread's next task; an answer being written keeps the settings it started with."
    )


def describe_tools(tools: tuple[str, ...] | None, choices: ConfigChoices) -> str:
    """A channel's tools on one line."""
    if tools is None:
        names = ", ".join(choices.default_tools) or "none"
        return f"the app's defaults ({names})"
    return ", ".join(tools) if tools else "none but reading the thread"


def config_status(config: ChannelConfig, choices: ConfigChoices) -> Block:
    """The configuration's lines in `/agent status` (a section: its text stays within Slack's 3,000)."""
    if config.is_default and not config.version:
        return _section(
            f"*Configuration:* the app's defaults (model {choices.default_model}, tools "
            f"{describe_tools(None, choices)}) · admins change it with `/agent config`"
        )
    excerpt = config.instructions[:INSTRUCTIONS_EXCERPT_CHARS]
    excerpt += "…" if len(config.instructions) > INSTRUCTIONS_EXCERPT_CHARS else ""
    quoted = ("\n>" + excerpt.replace("\n", "\n>")) if excerpt else " none"
    model = config.model if config.model in choices.models else f"the default ({choices.default_model})"
    changed = f"<@{config.updated_by}>" if config.updated_by else "someone"
    return _section(
        f"*Configuration* (version {config.version}, changed by {changed} {_when(config.updated_at)}):\n"
        f"*Model:* {model} · *Tools:* {describe_tools(config.tools, choices)}\n*Instructions:*{quoted}"
    )


def _when(timestamp: float) -> str:
    return f"<!date^{int(timestamp)}^{{date_short_pretty}} {{time}}|at {int(timestamp)}>"


def _option(text: str, value: str) -> dict[str, Any]:
    return {"text": _text(text[:MAX_OPTION_TEXT]), "value": value}


def _text(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text}


def _section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}}


def _context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}
