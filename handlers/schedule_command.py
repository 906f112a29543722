"""`/agent schedules` and its buttons: people see a channel's scheduled follow-ups and cancel (or resume) them.

Who may cancel or resume one: the bot's admins, the thread's starter and the people who wrote in it (those who may
reset or stop its agent, bot/tasks/admins.py), and the person the schedule was made for (its creator). A click is
checked again when it comes: the button was shown to one person, but the check is of whoever clicked, now.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from bot.core.clock import Clock
from bot.core.errors import SlackError
from bot.core.ports import SlackGateway
from bot.tasks.admins import Admins
from bot.tasks.schedule_text import note_start, slack_date
from handlers.agent_command import Answer
from handlers.schedule_views import (
    CANCEL_SCHEDULE,
    RESUME_SCHEDULE,
    parse_button_value,
    schedules_listing,
    schedules_status_block,
)
from handlers.workspace_auth import payload_team_id
from store.models import ThreadRef
from store.schedule_models import Schedule
from store.schedules import ScheduleStore

log = logging.getLogger(__name__)

Block = dict[str, Any]
USAGE = (
    "`/agent schedules` lists this channel's follow-ups; `/agent schedules cancel <id>` cancels one, "
    "`/agent schedules resume <id>` resumes a paused one."
)


class ScheduleCommands:
    """What `/agent schedules`, its buttons and the schedules' part of `/agent status` do."""

    def __init__(self, store: ScheduleStore, admins: Admins, slack: SlackGateway, clock: Clock) -> None:
        self._store = store
        self._admins = admins
        self._slack = slack
        self._clock = clock  # the timers' clock: a resumed schedule's next run is after the time they run by

    async def channel_block(self, team_id: str, channel_id: str, team_domain: str) -> Block:
        """The channel's schedules as a section of `/agent status`."""
        found = await self._store.list_channel(team_id, channel_id)
        return schedules_status_block(found, team_domain, with_thread=True)

    async def thread_block(self, ref: ThreadRef, team_domain: str) -> Block | None:
        """The thread's schedules as a section of `/agent status <link>`; None if it has none."""
        found = await self._store.list_thread(ref)
        return schedules_status_block(found, team_domain, with_thread=False) if found else None

    async def run(self, team_id: str, channel_id: str, user_id: str, team_domain: str, words: list[str]) -> Answer:
        """`/agent schedules [cancel ID | resume ID]`."""
        verb = words[0].lower() if words else ""
        if not verb:
            return await self.listing(team_id, channel_id, team_domain)
        if verb in ("cancel", "resume") and len(words) == 2:
            found = await self._find(team_id, channel_id, words[1])
            if found is None:
                note = f"This channel has no follow-up `{words[1][:20]}`: it may have ended or been cancelled."
                return await self.listing(team_id, channel_id, team_domain, note)
            act = self.cancel if verb == "cancel" else self.resume
            return await act(found.thread, found.schedule_id, user_id, team_domain)
        return Answer(USAGE)

    async def listing(self, team_id: str, channel_id: str, team_domain: str, note: str = "") -> Answer:
        """The channel's schedules, each with its buttons; `note` (an outcome) goes first."""
        found = await self._store.list_channel(team_id, channel_id)
        text = note or f"{len(found)} scheduled follow-up(s) in <#{channel_id}>."
        return Answer(text, schedules_listing(channel_id, found, team_domain, note))

    async def cancel(self, ref: ThreadRef, schedule_id: str, user_id: str, team_domain: str) -> Answer:
        """Cancel one schedule if the person may; the thread is told who cancelled it."""
        schedule = await self._store.get(ref, schedule_id)
        if schedule is None:
            return await self._gone(ref, team_domain)
        if not await self._may_change(schedule, user_id):
            return await self._refused(schedule, "cancel that follow-up", team_domain)
        if not await self._store.cancel(ref, schedule_id):  # ended or cancelled meanwhile
            return await self._gone(ref, team_domain)
        log.info("schedule %s of %s cancelled by %s", schedule_id, ref.encode(), user_id)
        told = f"<@{user_id}> cancelled a scheduled follow-up here: “{note_start(schedule.note)}”"
        await self._tell_thread(ref, told)
        note = f"Cancelled `{schedule_id}` (“{note_start(schedule.note)}”): it will not run again."
        return await self.listing(ref.team_id, ref.channel_id, team_domain, note)

    async def resume(self, ref: ThreadRef, schedule_id: str, user_id: str, team_domain: str) -> Answer:
        """Resume a paused schedule at its next run after now, if the person may."""
        schedule = await self._store.get(ref, schedule_id)
        if schedule is None:
            return await self._gone(ref, team_domain)
        if not await self._may_change(schedule, user_id):
            return await self._refused(schedule, "resume that follow-up", team_domain)
        if not await self._store.resume(ref, schedule_id, self._clock.now()):
            note = f"`{schedule_id}` was not paused, or has no run left before its end: nothing changed."
            return await self.listing(ref.team_id, ref.channel_id, team_domain, note)
        log.info("schedule %s of %s resumed by %s", schedule_id, ref.encode(), user_id)
        resumed = await self._store.get(ref, schedule_id)
        when = f", next {slack_date(resumed.next_at)}" if resumed else ""
        return await self.listing(ref.team_id, ref.channel_id, team_domain, f"Resumed `{schedule_id}`{when}.")

    async def _find(self, team_id: str, channel_id: str, schedule_id: str) -> Schedule | None:
        """A schedule of the channel by its id (the channel has at most SCHEDULES_PER_CHANNEL)."""
        found = await self._store.list_channel(team_id, channel_id)
        return next((schedule for schedule in found if schedule.schedule_id == schedule_id), None)

    async def _may_change(self, schedule: Schedule, user_id: str) -> bool:
        """The schedule's creator, or whoever may reset or stop its thread's agent."""
        return user_id == schedule.created_by or await self._admins.may_act_on_thread(schedule.thread, user_id)

    async def _refused(self, schedule: Schedule, what: str, team_domain: str) -> Answer:
        note = f"{self._admins.who_may(what, thread=True)} <@{schedule.created_by}>, who it was made for, may too."
        ref = schedule.thread
        return await self.listing(ref.team_id, ref.channel_id, team_domain, note)

    async def _gone(self, ref: ThreadRef, team_domain: str) -> Answer:
        note = "That follow-up has already ended or was cancelled: nothing changed."
        return await self.listing(ref.team_id, ref.channel_id, team_domain, note)

    async def _tell_thread(self, ref: ThreadRef, text: str) -> None:
        """A short note in the thread: its people were told there that the agent would come back, and would
        otherwise wait for a run that never comes. Best effort: the cancel is done either way."""
        try:
            await self._slack.post_reply(ref, text)
        except SlackError as exc:
            log.warning("could not tell thread %s of a cancelled schedule: %s", ref.encode(), exc)


async def with_schedules(status: Awaitable[Answer], schedules: Awaitable[Block | None], *, channel: bool) -> Answer:
    """A status answer with the schedules' section added: before a channel overview's closing hint, after a
    thread's detail (also when the thread has no agent: a schedule outlives nothing, but is shown if it is there)."""
    answer, block = await status, await schedules
    if block is None:
        return answer
    blocks = list(answer.blocks) or [{"type": "section", "text": {"type": "mrkdwn", "text": answer.text}}]
    blocks.insert(len(blocks) - 1 if channel and len(blocks) > 1 else len(blocks), block)
    return Answer(answer.text, blocks)


def register_schedule_buttons(app: AsyncApp, schedules: ScheduleCommands) -> None:
    """Attach the Cancel and Resume buttons of `/agent schedules`; each replaces the listing with the updated one."""

    async def handle_button(ack: AsyncAck, respond: AsyncRespond, body: dict[str, Any]) -> None:
        await ack()
        # An org-wide install's click has `team` null: payload_team_id reads the clicking user's team then.
        team_id, channel = payload_team_id(body) or "", body.get("channel") or {}
        channel_id, user_id = str(channel.get("id", "")), str(body["user"]["id"])
        team_domain = str((body.get("team") or {}).get("domain", ""))
        action = body["actions"][0]
        parsed = parse_button_value(str(action.get("value", "")))
        if not team_id or parsed is None or parsed[0] != channel_id:
            text = "That button belongs to another channel: nothing was changed."
            await respond(text=text, response_type="ephemeral", replace_original=False)
            return
        ref = ThreadRef(team_id, channel_id, parsed[1])
        act = schedules.cancel if action.get("action_id") == CANCEL_SCHEDULE else schedules.resume
        answer = await act(ref, parsed[2], user_id, team_domain)
        await respond(text=answer.text, blocks=answer.blocks, response_type="ephemeral", replace_original=True)

    app.action(CANCEL_SCHEDULE)(handle_button)
    app.action(RESUME_SCHEDULE)(handle_button)
