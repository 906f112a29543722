"""The playground's page API against the real `python -m bot dev`: restarts, buttons and bad input."""

from __future__ import annotations

from typing import Any

from tests.integration.playground_process import Playground, eventually

FINISHED = "first thing I have been asked in this thread"


def thread_of(playground: Playground, ts: str, channel: str = "C0GENERAL") -> dict[str, Any] | None:
    return next((m for m in playground.messages(channel) if m["ts"] == ts), None)


def bot_replies(playground: Playground, ts: str, channel: str = "C0GENERAL") -> list[str]:
    thread = thread_of(playground, ts, channel) or {"replies": []}
    return [reply["text"] for reply in thread["replies"] if reply["bot"]]


def ask(playground: Playground, text: str, channel: str = "C0GENERAL") -> str:
    status, answer = playground.post("playground/messages", {"channel": channel, "text": text})
    assert status == 200, answer
    ts: str = answer["ts"]
    return ts


def ephemerals(playground: Playground) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = playground.state().get("ephemerals", [])
    return found


def test_the_restart_button_kills_the_bot_mid_answer_and_the_same_message_finishes(playground: Playground) -> None:
    ts = ask(playground, "@claude tell me what happens when you restart", channel="C0RANDOM")
    # The stand-in model streams for a few seconds: restart while the answer is half written.
    eventually(lambda: any("Offline" in text for text in bot_replies(playground, ts, "C0RANDOM")), what="a partial")
    assert not any(FINISHED in text for text in bot_replies(playground, ts, "C0RANDOM"))

    status, _ = playground.post("playground/restart", {})
    assert status == 200
    eventually(lambda: playground.state()["bot"]["restarts"] == 1, what="the restart counted")
    eventually(lambda: playground.state()["bot"]["state"] == "running", 40, what="the bot running again")

    replies = eventually(
        lambda: [text for text in bot_replies(playground, ts, "C0RANDOM") if FINISHED in text] or None,
        30,
        what="the finished answer",
    )
    assert len(bot_replies(playground, ts, "C0RANDOM")) == 1, "the resumed task posted a second message"
    assert "what happens when you restart" in replies[0]


def test_channel_reset_asks_first_and_its_button_clears_the_agents(playground: Playground) -> None:
    ts = ask(playground, "@claude remember the number 42")
    eventually(lambda: any(FINISHED in text for text in bot_replies(playground, ts)), 30, what="the answer")

    assert playground.post("playground/commands", {"channel": "C0GENERAL", "text": "/agent reset"})[0] == 200
    question = eventually(
        lambda: next((e for e in ephemerals(playground) if e["blocks"] and "Reset" in e["text"]), None),
        what="the confirmation",
    )
    [confirm] = [
        element
        for block in question["blocks"]
        if block["type"] == "actions"
        for element in block["elements"]
        if element.get("style") == "danger"
    ]
    status, _ = playground.post(
        "playground/actions",
        {"ephemeral_id": question["id"], "action_id": confirm["action_id"], "value": confirm["value"]},
    )
    assert status == 200

    def answered() -> str | None:
        now = next((e for e in ephemerals(playground) if e["id"] == question["id"]), None)
        progress = now is not None and now["text"].startswith("Resetting every agent")
        return now["text"] if now and not now["blocks"] and not progress else None

    result = eventually(answered, what="the reset's answer in place of the question")
    assert result.startswith("Resetting 1 agent(s)"), result  # the reset of the channel's one agent is under way
    eventually(lambda: any("I have forgotten" in text for text in bot_replies(playground, ts)), what="the thread told")

    assert playground.post("playground/commands", {"channel": "C0GENERAL", "text": "/agent status"})[0] == 200
    eventually(
        lambda: any("No agents in this channel yet" in e["text"] for e in ephemerals(playground)), what="no agents"
    )


def test_bad_requests_from_the_page_get_a_clear_error_and_change_nothing(playground: Playground) -> None:
    cases: list[tuple[str, object, str]] = [
        ("playground/messages", {"channel": "C0NOPE", "text": "hi"}, "unknown channel"),
        ("playground/messages", {"channel": "C0GENERAL", "text": "   "}, "write something first"),
        ("playground/messages", {"channel": "C0GENERAL", "text": "x" * 40_001}, "at most 40000 characters"),
        ("playground/messages", {"channel": "C0GENERAL", "text": "hi", "thread_ts": "1.000001"}, "no message"),
        ("playground/messages", b"{not json", "not JSON"),
        ("playground/messages", ["a", "list"], "must be a JSON object"),
        ("playground/commands", {"channel": "C0GENERAL", "text": "agent status"}, "starts with /"),
        ("playground/actions", {"ephemeral_id": 99, "action_id": "x", "value": "y"}, "that message is gone"),
    ]
    for path, body, error in cases:
        status, answer = playground.post(path, body)
        assert status == 400 and error in answer["error"], (path, body, answer)
    state = playground.state()
    assert all(channel["messages"] == [] for channel in state["channels"])
    assert state["ephemerals"] == []


def test_an_unknown_slash_command_is_answered_as_slack_would(playground: Playground) -> None:
    assert playground.post("playground/commands", {"channel": "C0GENERAL", "text": "/weather"})[0] == 200
    [answer] = ephemerals(playground)
    assert "/weather is not a valid command" in answer["text"]
