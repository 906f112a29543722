"""`/agent config` in the playground: the modal shows on the page, and saving it reaches the bot."""

from __future__ import annotations

from tests.integration.playground_process import Playground, eventually


def test_the_config_modal_opens_on_the_page_and_its_save_is_noted_in_the_channel(playground: Playground) -> None:
    """The person (the workspace's owner, an admin) runs /agent config, fills the form and saves: the form closes
    and the channel gets the note; a form the bot answers with errors stays open with them."""
    eventually(lambda: playground.state().get("bot", {}).get("state") == "running", 40, what="the bot running")
    assert playground.post("playground/commands", {"channel": "C0GENERAL", "text": "/agent config"})[0] == 200
    modal = eventually(lambda: playground.state().get("modal"), what="the modal on the page")
    assert modal["title"] == "Channel agents" and modal["submit"] == "Save"
    status, answer = playground.post(
        "playground/views/submit", {"view_id": modal["id"], "values": {"config_instructions": "Answer in French."}}
    )
    assert (status, answer["outcome"]) == (200, "closed")
    assert playground.state()["modal"] is None
    note = eventually(
        lambda: next((m for m in playground.messages() if m["bot"] and "changed the instructions" in m["text"]), None),
        what="the note in the channel",
    )
    assert "Answer in French" not in note["text"]
    status, answer = playground.post("playground/views/submit", {"view_id": modal["id"], "values": {}})
    assert status == 400 and "gone" in str(answer)
