"""The playground's page API against the real `python -m bot dev`: restarts, buttons, workspaces and bad input."""

from __future__ import annotations

from typing import Any

from tests.integration.playground_process import Playground, eventually

FINISHED = "first thing I have been asked in this thread"


def thread_of(
    playground: Playground, ts: str, channel: str = "C0GENERAL", team: str | None = None
) -> dict[str, Any] | None:
    return next((m for m in playground.messages(channel, team) if m["ts"] == ts), None)


def bot_replies(playground: Playground, ts: str, channel: str = "C0GENERAL", team: str | None = None) -> list[str]:
    thread = thread_of(playground, ts, channel, team) or {"replies": []}
    return [reply["text"] for reply in thread["replies"] if reply["bot"]]


def ask(playground: Playground, text: str, channel: str = "C0GENERAL", team: str | None = None) -> str:
    body = {"channel": channel, "text": text} | ({"team": team} if team else {})
    status, answer = playground.post("playground/messages", body)
    assert status == 200, answer
    ts: str = answer["ts"]
    return ts


def ephemerals(playground: Playground, team: str | None = None) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = playground.state(team).get("ephemerals", [])
    return found


def add_workspace(playground: Playground, *, approve: bool = True) -> str:
    """Press "Add a workspace" and answer Slack's authorize screen; the new workspace's team id."""
    status, answer = playground.post("playground/workspaces", {})
    assert status == 200, answer
    install = answer["install"]
    assert playground.state()["install"] == install, "the page is not shown Slack's authorize screen"
    assert "app_mentions:read" in install["scopes"] and "chat:write" in install["scopes"]
    status, answer = playground.post("playground/workspaces/authorize", {"approve": approve})
    assert status == 200, answer
    assert answer["team"] == (install["team"] if approve else None)
    team: str = install["team"]
    return team


def answered(playground: Playground, ts: str, team: str | None = None) -> list[str] | None:
    return [text for text in bot_replies(playground, ts, team=team) if FINISHED in text] or None


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
        ("playground/messages", {"channel": "C0GENERAL", "text": "hi", "team": "T0NOPE"}, "unknown workspace"),
        ("playground/workspaces/authorize", {"approve": True}, "no install is waiting"),
        ("playground/workspaces", {"team": "T0TEAM"}, "already installed"),
        ("playground/workspaces/uninstall", {"team": "T0NOPE"}, "unknown workspace"),
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


def test_a_second_workspace_installs_through_the_page_and_the_bot_answers_there(playground: Playground) -> None:
    """Add a workspace installs the app there through its real install; a mention in that workspace's #general (the
    same channel id as the first's) is answered there, by its own bot user, and the first workspace sees none of it."""
    team = add_workspace(playground)
    state = playground.state(team)
    assert state["team"] == team and state["install"] is None
    assert [(w["id"], w["installed"]) for w in state["workspaces"]] == [("T0TEAM", True), (team, True)]
    first_bot, second_bot = playground.state()["bot"]["id"], state["bot"]["id"]
    assert second_bot != first_bot

    ts = ask(playground, "@claude which workspace is this?", team=team)
    [mention] = [m for m in playground.messages(team=team) if m["ts"] == ts]
    assert mention["text"].startswith(f"<@{second_bot}>"), "the mention names the second workspace's bot user"
    [reply] = eventually(lambda: answered(playground, ts, team), 30, what="the answer in the second workspace")
    # The emulator keeps a reply in the workspace of the token that posted it: the bot used the second one's.
    assert "which workspace is this?" in reply
    assert playground.messages("C0GENERAL") == [], "the first workspace's #general saw nothing"

    assert (
        playground.post("playground/commands", {"channel": "C0GENERAL", "text": "/agent status", "team": team})[0]
        == 200
    )
    status = eventually(
        lambda: next((e["text"] for e in ephemerals(playground, team) if "agent" in e["text"].lower()), None),
        what="the second workspace's status",
    )
    assert "No agents" not in status and ephemerals(playground) == []


def test_cancel_on_slacks_screen_installs_nothing(playground: Playground) -> None:
    """Cancel sends the bot Slack's error=access_denied: it refuses the install, and no workspace is added."""
    add_workspace(playground, approve=False)
    assert [w["id"] for w in playground.state()["workspaces"]] == ["T0TEAM"]
    assert playground.state()["install"] is None
    eventually(lambda: "Slack said 'access_denied'" in playground.output(), what="the bot's refusal in its log")
    status, answer = playground.post("playground/messages", {"channel": "C0GENERAL", "text": "hi", "team": "T0TEAM2"})
    assert status == 400 and "unknown workspace" in answer["error"]


def test_an_uninstalled_workspace_hears_nothing_until_the_app_is_added_again(playground: Playground) -> None:
    """Uninstall revokes the workspace's token and tells the bot; mentions there go unanswered and /agent is unknown
    until "Add to this workspace" installs the app again, after which the bot answers there again."""
    team = add_workspace(playground)
    assert playground.post("playground/workspaces/uninstall", {"team": team})[0] == 200
    assert [w["installed"] for w in playground.state(team)["workspaces"]] == [True, False]
    eventually(lambda: f"the app was uninstalled from {team}" in playground.output(), what="the bot told")

    unheard = ask(playground, "@claude are you there?", team=team)
    assert (
        playground.post("playground/commands", {"channel": "C0GENERAL", "text": "/agent status", "team": team})[0]
        == 200
    )
    assert [e["text"] for e in ephemerals(playground, team)] == ["/agent is not a valid command in this workspace."]

    status, answer = playground.post("playground/workspaces", {"team": team})
    assert status == 200 and answer["install"]["team"] == team, answer
    assert playground.post("playground/workspaces/authorize", {"approve": True}) == (200, {"ok": True, "team": team})
    ts = ask(playground, "@claude and now?", team=team)
    eventually(lambda: answered(playground, ts, team), 30, what="the answer after the reinstall")
    assert bot_replies(playground, unheard, team=team) == [], "Slack sent nothing while the app was not installed"
