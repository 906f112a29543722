"""The `/agent config` modal: valid Block Kit in every shape, its submissions read and checked, the change note."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from handlers.config_desk import Submission
from handlers.config_listeners import submit_in_time
from handlers.config_views import (
    INSTRUCTIONS_BLOCK,
    MODEL_BLOCK,
    TOOLS_BLOCK,
    VALUE,
    ConfigChoices,
    ConfigForm,
    ConfigTarget,
    change_note,
    config_modal,
    config_status,
)
from store.channel_config import MAX_INSTRUCTIONS_CHARS, ChannelConfig
from tests.fakes import view_problems

CHOICES = ConfigChoices(
    "claude-main", ("claude-big", "claude-small"), ("web_search", "web_fetch", "memory"), ("memory",)
)
TARGET = ConfigTarget("T1", "C1", 4)


def blocks_by_id(view: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {block["block_id"]: block for block in view["blocks"] if "block_id" in block}


@pytest.mark.parametrize(
    "choices",
    [
        CHOICES,
        ConfigChoices("claude-main", (), (), ()),  # nothing to choose but the instructions
        ConfigChoices("claude-main", ("m",), tuple(f"mcp:server{n}" for n in range(11)), ()),  # past 10 checkboxes
    ],
)
@pytest.mark.parametrize(
    "form",
    [ConfigForm("", "", None), ConfigForm("x" * MAX_INSTRUCTIONS_CHARS, "claude-big", ()), ConfigForm("a", "", ("z",))],
)
def test_the_modal_is_valid_block_kit_whatever_it_shows(choices: ConfigChoices, form: ConfigForm) -> None:
    """Defaults, the longest instructions, no tools chosen, nothing offered, more tools than checkboxes take: the
    modal passes the emulator's Block Kit checks (Slack's limits)."""
    view = config_modal(TARGET, form, choices, warning="changed meanwhile")
    assert view_problems(view) == []
    assert ConfigTarget.from_metadata(view["private_metadata"]) == TARGET


def test_the_modal_shows_the_configuration_and_the_choices() -> None:
    """Instructions as the initial value, the chosen model, the chosen tools ticked; 11 tools make a multi-select."""
    view = config_modal(TARGET, ConfigForm("Be brief.", "claude-small", ("web_fetch",)), CHOICES)
    blocks = blocks_by_id(view)
    assert blocks[INSTRUCTIONS_BLOCK]["element"]["initial_value"] == "Be brief."
    assert blocks[INSTRUCTIONS_BLOCK]["element"]["max_length"] == MAX_INSTRUCTIONS_CHARS
    model = blocks[MODEL_BLOCK]["element"]
    assert model["initial_option"]["value"] == "claude-small"
    assert [option["value"] for option in model["options"]] == ["default", "claude-big", "claude-small"]
    assert "claude-main" in model["options"][0]["text"]["text"]
    tools = blocks[TOOLS_BLOCK]["element"]
    assert tools["type"] == "checkboxes" and [o["value"] for o in tools["initial_options"]] == ["web_fetch"]
    defaults = blocks_by_id(config_modal(TARGET, ConfigForm("", "", None), CHOICES))[TOOLS_BLOCK]["element"]
    assert [option["value"] for option in defaults["initial_options"]] == ["memory"]
    many = ConfigChoices("m", (), tuple(f"mcp:s{n}" for n in range(11)), ())
    assert blocks_by_id(config_modal(TARGET, ConfigForm("", "", None), many))[TOOLS_BLOCK]["element"]["type"] == (
        "multi_static_select"
    )


def state(instructions: str | None, model: str | None, tools: list[str] | None) -> dict[str, Any]:
    """A submission's state.values."""
    values: dict[str, Any] = {INSTRUCTIONS_BLOCK: {VALUE: {"type": "plain_text_input", "value": instructions}}}
    if model is not None:
        values[MODEL_BLOCK] = {VALUE: {"type": "static_select", "selected_option": {"value": model}}}
    if tools is not None:
        values[TOOLS_BLOCK] = {VALUE: {"type": "checkboxes", "selected_options": [{"value": t} for t in tools]}}
    return values


def test_a_submission_is_read_into_a_form() -> None:
    """Text stripped, "default" is the deployment's model, tools in the offer's order; exactly the defaults means
    following the defaults; a block the modal did not show keeps the stored value."""
    current = ChannelConfig("old", "claude-big", ("web_search",))
    form = ConfigForm.from_state(state("  Be brief. ", "default", ["web_fetch", "web_search"]), current, CHOICES)
    assert form == ConfigForm("Be brief.", "", ("web_search", "web_fetch"))
    assert ConfigForm.from_state(state(None, "claude-big", ["memory"]), current, CHOICES).tools is None
    assert ConfigForm.from_state(state(None, "claude-big", []), current, CHOICES).tools == ()
    assert ConfigForm.from_state(state("x", None, None), current, CHOICES) == ConfigForm(
        "x", "claude-big", ("web_search",)
    )


def test_a_submission_out_of_bounds_gets_errors_on_its_fields() -> None:
    """A model not offered, a tool not offered, instructions too long: an error on each one's block."""
    form = ConfigForm("x" * (MAX_INSTRUCTIONS_CHARS + 1), "claude-huge", ("web_search", "rm_rf"))
    problems = form.problems(CHOICES)
    assert set(problems) == {INSTRUCTIONS_BLOCK, MODEL_BLOCK, TOOLS_BLOCK}
    assert "claude-huge" in problems[MODEL_BLOCK] and "rm_rf" in problems[TOOLS_BLOCK]
    assert ConfigForm("ok", "claude-small", ("memory",)).problems(CHOICES) == {}


def test_the_change_note_names_who_and_what_changed() -> None:
    """Instructions changed or cleared, the model, the tools; nothing changed, no note."""
    before = ChannelConfig("old", "", None)
    note = change_note("U1", before, ChannelConfig("new", "claude-big", ("web_fetch",)), CHOICES)
    assert note.startswith("<@U1> changed the instructions, set the model to claude-big and set the tools to web_fetch")
    cleared = change_note("U2", before, ChannelConfig("", "", None), CHOICES)
    assert cleared.startswith("<@U2> cleared the instructions of this channel's agents")
    back = change_note("U3", ChannelConfig("", "claude-big", ()), ChannelConfig("", "", None), CHOICES)
    assert "set the model to the default (claude-main)" in back and "the app's defaults (memory)" in back
    assert change_note("U1", before, before, CHOICES) == ""
    assert "new" not in note, "the note says that the instructions changed, not what they say"


def test_the_status_shows_the_configuration_or_the_defaults() -> None:
    """An excerpt of the instructions, the model, the tools, the version, who changed it; or the defaults."""
    config = ChannelConfig("line one\n" + "z" * 500, "claude-big", (), version=3, updated_by="U9", updated_at=1e9)
    text = config_status(config, CHOICES)["text"]["text"]
    assert "version 3" in text and "<@U9>" in text and "claude-big" in text and "none but reading the thread" in text
    assert ">line one\n>" in text and "z" * 300 not in text and "…" in text
    assert "the app's defaults" in config_status(ChannelConfig(), CHOICES)["text"]["text"]


async def test_a_save_slower_than_slack_waits_is_an_error_on_the_form() -> None:
    """Slack wants a modal's answer within 3 s: a save that takes longer, or that Redis fails, tells the person on
    the form instead of leaving them Slack's "trouble connecting"."""

    class SlowDesk:
        def __init__(self, error: Exception | None = None) -> None:
            self.error = error

        async def submit(self, view: dict[str, Any], user_id: str) -> Submission:
            if self.error is not None:
                raise self.error
            await asyncio.sleep(5)
            return Submission({})

    for desk in (SlowDesk(), SlowDesk(RedisConnectionError("down"))):
        answer = await submit_in_time(desk, {}, "U1", within=0.05)  # type: ignore[arg-type]
        assert answer.ack["response_action"] == "errors"
        assert "could not be saved" in answer.ack["errors"]["config_instructions"]
