"""`/agent memory`: show the channel's memory to the asker; admins clear it or remove a file (words or buttons).

The memory belongs to the channel, not to a thread: `/agent reset` leaves it, and this is how it is emptied.
Anyone in the channel may look (its agents would tell them anyway); only the bot's admins may change it, or
anyone when the deployment names no admins at all.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from bot.agent.memory_paths import ROOT, BadPath, checked_path
from bot.tasks.admins import Admins
from bot.tasks.channel_setup import is_dm, memory_scope
from handlers.agent_command import Answer
from handlers.memory_views import CLEAR_MEMORY, REMOVE_MEMORY_FILE, memory_blocks, mrkdwn_escape
from handlers.workspace_auth import payload_team_id
from store.memory import MemoryStore

log = logging.getLogger(__name__)

OFF = Answer("Channel memory is off in this deployment (MEMORY_ENABLED=false).")
NOT_IN_DMS = Answer("There is no memory in direct messages: memory is kept per channel, and none of it reaches a DM.")
USAGE = Answer("`/agent memory` shows this channel's memory; `/agent memory clear` or `/agent memory remove <path>`.")


class MemoryCommands:
    """What `/agent memory` and its buttons do."""

    def __init__(self, store: MemoryStore | None, admins: Admins) -> None:
        self._store = store
        self._admins = admins

    async def run(self, team_id: str, channel_id: str, user_id: str, words: list[str]) -> Answer:
        """`/agent memory [clear | remove PATH]`."""
        if self._store is None:
            return OFF
        if is_dm(channel_id):
            return NOT_IN_DMS
        verb = words[0].lower() if words else ""
        if not verb:
            return await self.show(team_id, channel_id, user_id)
        if verb == "clear" and len(words) == 1:
            return await self.clear(team_id, channel_id, user_id)
        if verb == "remove" and len(words) > 1:
            return await self.remove(team_id, channel_id, user_id, " ".join(words[1:]))
        return USAGE

    async def show(self, team_id: str, channel_id: str, user_id: str, note: str = "") -> Answer:
        """The channel's memory, with the buttons that change it when the asker may."""
        store = self._store
        if store is None:
            return OFF
        snapshot = await store.snapshot(memory_scope(team_id, channel_id))
        may_change = await self._may_change(team_id, user_id)
        blocks = memory_blocks(channel_id, snapshot, store.limits, may_change=may_change)
        if note:
            blocks.insert(0, {"type": "section", "text": {"type": "mrkdwn", "text": note}})
        if not snapshot.files:
            return Answer(f"{note} The memory of <#{channel_id}> is empty.".strip(), blocks)
        return Answer(f"{note} The memory of <#{channel_id}> has {len(snapshot.files)} file(s).".strip(), blocks)

    async def clear(self, team_id: str, channel_id: str, user_id: str) -> Answer:
        """Delete every file of the channel's memory (admins)."""
        store = self._store
        if store is None:
            return OFF
        if not await self._may_change(team_id, user_id):
            return Answer(self._admins.who_may("clear the channel's memory"))
        count = await store.clear(memory_scope(team_id, channel_id))
        log.info("channel %s: memory cleared by %s (%d files)", channel_id, user_id, count)
        return await self.show(team_id, channel_id, user_id, f"Cleared the memory of <#{channel_id}>: {count} file(s).")

    async def remove(self, team_id: str, channel_id: str, user_id: str, path: str) -> Answer:
        """Delete one file (or a folder's files) of the channel's memory (admins)."""
        store = self._store
        if store is None:
            return OFF
        if not await self._may_change(team_id, user_id):
            return Answer(self._admins.who_may("change the channel's memory"))
        try:
            canonical = checked_path(path if path.startswith(ROOT) else f"{ROOT}/{path.lstrip('/')}")
        except BadPath as exc:
            return Answer(f"Nothing removed: {exc}.")
        count = await store.remove(memory_scope(team_id, channel_id), canonical)
        if not count:
            return Answer(f"Nothing removed: the memory has no {mrkdwn_escape(canonical)}.")
        log.info("channel %s: %d memory file(s) removed by %s", channel_id, count, user_id)
        return await self.show(team_id, channel_id, user_id, f"Removed {mrkdwn_escape(canonical)}.")

    async def _may_change(self, team_id: str, user_id: str) -> bool:
        nobody_named = not self._admins.admin_ids and not self._admins.workspace_admins
        return nobody_named or await self._admins.is_admin(team_id, user_id)


def register_memory_buttons(app: AsyncApp, memory: MemoryCommands) -> None:
    """Attach the buttons of `/agent memory`'s listing; each replaces the listing with the updated one."""

    async def handle_button(ack: AsyncAck, respond: AsyncRespond, body: dict[str, Any]) -> None:
        await ack()
        team_id, channel = payload_team_id(body) or "", body.get("channel") or {}
        channel_id, user_id = str(channel.get("id", "")), str(body["user"]["id"])
        action = body["actions"][0]
        value = str(action.get("value", ""))
        if action.get("action_id") == CLEAR_MEMORY:
            if value != channel_id:
                await respond(
                    text="That button belongs to another channel: nothing was cleared.", replace_original=True
                )
                return
            answer = await memory.clear(team_id, channel_id, user_id)
        else:
            answer = await memory.remove(team_id, channel_id, user_id, value)
        await respond(text=answer.text, blocks=answer.blocks, response_type="ephemeral", replace_original=True)

    app.action(CLEAR_MEMORY)(handle_button)
    app.action(REMOVE_MEMORY_FILE)(handle_button)
