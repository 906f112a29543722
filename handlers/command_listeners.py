"""The `/agent` slash command and its buttons: parse the payload, answer the person who asked.

Slack wants the acknowledgement within 3 s. An answer ready within ANSWER_WITHIN goes in the acknowledgement;
a slower one (Redis under load) is acknowledged with "Working on it…" and sent through the command's
response_url when it is ready.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Coroutine
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from handlers.agent_command import HELP, AgentCommands, Answer
from handlers.config_desk import ConfigDesk
from handlers.config_listeners import open_config
from handlers.links import ThreadLink, parse_thread_link
from handlers.memory_command import OFF, MemoryCommands
from handlers.schedule_command import ScheduleCommands, with_schedules
from handlers.views import CANCEL_CHANNEL_RESET, CONFIRM_CHANNEL_RESET
from handlers.workspace_auth import payload_team_id
from store.models import ThreadRef

log = logging.getLogger(__name__)

ANSWER_WITHIN = 2.0
WORKING = Answer("Working on it…")
FAILED = Answer("Sorry, I could not do that just now (my storage is not answering). Try again in a minute.")


def ephemeral(answer: Answer) -> dict[str, Any]:
    """An answer as the arguments of ack() or respond(): shown only to the person who asked."""
    arguments: dict[str, Any] = {"text": answer.text, "response_type": "ephemeral"}
    if answer.blocks:
        arguments["blocks"] = answer.blocks
    return arguments


class Answerer:
    """Answers in the acknowledgement when that is quick, else later through response_url."""

    def __init__(self) -> None:
        self._later: set[asyncio.Task[None]] = set()  # the loop keeps only weak references to tasks

    async def answer(self, ack: AsyncAck, respond: AsyncRespond, work: Coroutine[Any, Any, Answer]) -> None:
        job = asyncio.ensure_future(work)
        done, _ = await asyncio.wait({job}, timeout=ANSWER_WITHIN)
        if job in done:
            await ack(**ephemeral(_result(job)))
            return
        await ack(**ephemeral(WORKING))
        self.later(respond, job)

    def later(self, respond: AsyncRespond, job: Awaitable[Answer]) -> None:
        """Send the answer of `job` through response_url once it is ready."""

        async def send() -> None:
            try:
                answer = await job
            except Exception:
                log.exception("an /agent command failed")
                answer = FAILED
            try:
                await respond(**ephemeral(answer), replace_original=True)
            except Exception:  # nobody else would hear of it: a background task's error is lost
                log.exception("could not send an /agent answer through its response_url")

        task = asyncio.ensure_future(send())
        self._later.add(task)
        task.add_done_callback(self._later.discard)


async def _answer(answer: Answer) -> Answer:
    return answer


def _result(job: asyncio.Future[Answer]) -> Answer:
    if job.exception() is not None:
        log.error("an /agent command failed", exc_info=job.exception())
        return FAILED
    return job.result()


def _quick_answer(action: str, words: list[str], link: ThreadLink | None, channel_id: str) -> Answer | None:
    """The answer to a command that needs no work: help, a link missing or unreadable."""
    if action in _OTHER_WORDS:
        return None
    if action == "config":
        return HELP  # no settings wired into this app
    if action not in ("status", "reset", "stop"):
        return HELP
    if link is None and action == "stop" and not words[1:]:
        return Answer("Which thread? " + _COPY_STOP_LINK)
    if words[1:] and link is None:
        return Answer("I could not read that as a link to a thread. " + _COPY_LINK)
    if link is not None and link.channel_id != channel_id:
        return Answer("That thread is in another channel: run the command there.")
    return None


def register_command_listeners(
    app: AsyncApp,
    commands: AgentCommands,
    config: ConfigDesk | None = None,
    memory: MemoryCommands | None = None,
    schedules: ScheduleCommands | None = None,
) -> None:
    """Attach the `/agent` listener and the channel-reset buttons; `config` opens `/agent config`, `memory` answers
    `/agent memory`, `schedules` answers `/agent schedules` and adds the schedules to `/agent status` (None: off)."""
    answerer = Answerer()

    async def handle_agent_command(
        ack: AsyncAck, respond: AsyncRespond, command: dict[str, Any], client: AsyncWebClient
    ) -> None:
        words = str(command.get("text", "")).split()
        action = words[0].lower() if words else "help"
        if action == "config" and config is not None:
            await open_config(config, client, ack, command)  # a modal, opened at once: its trigger_id lasts 3 s
            return
        quick = _quick_answer(action, words, _link(action, words), str(command["channel_id"]))
        if quick is not None:
            await ack(**ephemeral(quick))
            return
        await answerer.answer(ack, respond, _work(commands, memory, schedules, command, action, words))

    async def handle_confirm(ack: AsyncAck, respond: AsyncRespond, body: dict[str, Any]) -> None:
        await ack()
        # An org-wide install's click has `team` null: payload_team_id reads the clicking user's team then.
        team_id, channel_id = payload_team_id(body) or "", str(body["channel"]["id"])
        if not team_id or str(body["actions"][0].get("value")) != channel_id:
            await respond(**ephemeral(Answer("That button belongs to another channel: nothing was reset.")))
            return
        request_id = f"btn-{body.get('trigger_id') or body['actions'][0].get('action_ts')}"
        # The buttons go at once, so that a second click cannot start a second reset.
        await respond(**ephemeral(Answer(f"Resetting every agent of <#{channel_id}>…")), replace_original=True)
        answerer.later(respond, commands.reset_channel(team_id, channel_id, str(body["user"]["id"]), request_id))

    async def handle_cancel(ack: AsyncAck, respond: AsyncRespond) -> None:
        await ack()
        await respond(**ephemeral(Answer("Cancelled: nothing was reset.")), replace_original=True)

    app.command("/agent")(handle_agent_command)
    app.action(CONFIRM_CHANNEL_RESET)(handle_confirm)
    app.action(CANCEL_CHANNEL_RESET)(handle_cancel)


# Actions whose words are not a thread's link.
_OTHER_WORDS = ("limits", "memory", "schedules")
_COPY_LINK = "Use *Copy link* on a message of the thread, then `/agent status <link>`."
_COPY_STOP_LINK = "Use *Copy link* on a message of the thread, then `/agent stop <link>`."


def _link(action: str, words: list[str]) -> ThreadLink | None:
    """The thread link a command names (limits, memory and schedules take other words)."""
    return parse_thread_link(" ".join(words[1:])) if words[1:] and action not in _OTHER_WORDS else None


def _work(
    commands: AgentCommands,
    memory: MemoryCommands | None,
    schedules: ScheduleCommands | None,
    command: dict[str, Any],
    action: str,
    words: list[str],
) -> Coroutine[Any, Any, Answer]:
    """What answers a `/agent` command that needs Redis or Slack (the quick answers are made before)."""
    team_id, channel_id, user_id = str(command["team_id"]), str(command["channel_id"]), str(command["user_id"])
    domain = str(command.get("team_domain", ""))
    link = _link(action, words)
    if action == "limits":
        return commands.limits(team_id, user_id, words[1:])
    if action == "memory":
        return memory.run(team_id, channel_id, user_id, words[1:]) if memory else _answer(OFF)
    if action == "schedules":
        return schedules.run(team_id, channel_id, user_id, domain, words[1:]) if schedules else _answer(HELP)
    if link is None and action == "reset":
        return commands.ask_channel_reset(team_id, channel_id, user_id)  # admins only: asks Slack who they are
    if link is None:
        status = commands.channel_status(team_id, channel_id, domain, user_id)
        if schedules is None:
            return status
        return with_schedules(status, schedules.channel_block(team_id, channel_id, domain), channel=True)
    ref = ThreadRef(team_id, channel_id, link.thread_ts)
    if action == "status":
        detail = commands.thread_status(ref, domain, link_is_reply=link.is_reply)
        return with_schedules(detail, schedules.thread_block(ref, domain), channel=False) if schedules else detail
    if action == "stop":
        return commands.stop_thread(ref, domain, user_id)
    request_id = f"cmd-{command.get('trigger_id') or command.get('user_id')}"
    return commands.reset_thread(ref, domain, user_id, request_id, link_is_reply=link.is_reply)
