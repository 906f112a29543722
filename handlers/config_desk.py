"""What `/agent config` does: open the modal for an admin, and save what the modal submits.

A modal is opened on the configuration's version at the time; its submission saves with that version
(store/channel_config.py), so two admins editing at once cannot silently undo each other: the second is shown the
modal again with their own entries kept and a warning, and saves over the first only by saving again. Who may
change it is checked when the modal opens and again when it is submitted (an admin may be demoted in between).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from bot.core.errors import SlackError
from bot.core.ports import SlackGateway
from bot.tasks.admins import Admins
from bot.tasks.channel_setup import ChannelSetups, is_dm
from handlers.config_views import (
    INSTRUCTIONS_BLOCK,
    ConfigChoices,
    ConfigForm,
    ConfigTarget,
    change_note,
    config_modal,
    config_status,
)
from store.channel_config import ChannelConfig, ChannelConfigStore, ConfigConflict
from store.connection import REDIS_FAILURES
from store.models import ThreadRef

log = logging.getLogger(__name__)

WHAT = "change this channel's agent settings"
NOT_IN_A_DM = "Settings are per channel: a direct message with me always uses the app's defaults."
STORAGE_DOWN = "My storage is not answering just now: nothing was saved. Try again in a minute."


@dataclass(frozen=True)
class Submission:
    """The acknowledgement of a submitted modal (Slack's response_action, or nothing to close it), and the note
    the channel gets when it changed something."""

    ack: dict[str, Any]
    note: str = ""
    target: ConfigTarget | None = None


class ConfigDesk:
    """Opens and saves channels' configurations."""

    def __init__(
        self,
        configs: ChannelConfigStore,
        setups: ChannelSetups,
        admins: Admins,
        slack: SlackGateway,
        default_model: str,
    ) -> None:
        self._configs = configs
        self._setups = setups
        self._admins = admins
        self._slack = slack
        self.choices = ConfigChoices(default_model, setups.models, setups.offered, setups.defaults)

    async def may_configure(self, team_id: str, user_id: str) -> bool:
        """Admins may; with no admins at all (ADMIN_USER_IDS empty, workspace admins not counted), anyone may."""
        if not self._admins.admin_ids and not self._admins.workspace_admins:
            return True
        return await self._admins.is_admin(team_id, user_id)

    async def modal(self, team_id: str, channel_id: str, user_id: str) -> dict[str, Any] | str:
        """The modal to open for this person, or why it does not open."""
        if is_dm(channel_id):
            return NOT_IN_A_DM
        if not await self.may_configure(team_id, user_id):
            return self._admins.who_may(WHAT)
        config = await self._configs.get(team_id, channel_id)
        return config_modal(ConfigTarget(team_id, channel_id, config.version), self._form_of(config), self.choices)

    async def status(self, team_id: str, channel_id: str) -> dict[str, Any]:
        """The configuration's block in `/agent status`."""
        return config_status(await self._setups.config(team_id, channel_id), self.choices)

    async def submit(self, view: dict[str, Any], user_id: str) -> Submission:
        """Save a submitted modal; validation problems, a refusal or a conflict keep the modal open."""
        try:
            target = ConfigTarget.from_metadata(str(view.get("private_metadata") or ""))
            ThreadRef(target.team_id, target.channel_id, "")  # ids Slack echoed back, checked before they make a key
        except ValueError:
            log.warning("a configuration modal came back without its channel: closed")
            return Submission({})
        try:
            return await self._save(target, (view.get("state") or {}).get("values") or {}, user_id)
        except REDIS_FAILURES:
            log.warning("channel %s: configuration not saved, Redis is not answering", target.channel_id)
            return Submission(_errors({INSTRUCTIONS_BLOCK: STORAGE_DOWN}))

    async def _save(self, target: ConfigTarget, values: dict[str, Any], user_id: str) -> Submission:
        if not await self.may_configure(target.team_id, user_id):
            return Submission(_errors({INSTRUCTIONS_BLOCK: self._admins.who_may(WHAT)}))
        current = await self._configs.get(target.team_id, target.channel_id)
        form = ConfigForm.from_state(values, current, self.choices)
        problems = form.problems(self.choices)
        if problems:
            return Submission(_errors(problems))
        if current.version == target.version and form == self._form_of(current):
            return Submission({})  # saved as it was: no new version, no note
        try:
            saved = await self._configs.save(
                target.team_id,
                target.channel_id,
                instructions=form.instructions,
                model=form.model,
                tools=form.tools,
                by=user_id,
                from_version=target.version,
            )
        except ConfigConflict:
            return Submission(await self._conflict(target, form, user_id))
        except ValueError as exc:  # a value the store's bounds refuse that the form's checks let through
            return Submission(_errors({INSTRUCTIONS_BLOCK: str(exc)}))
        return Submission({}, change_note(user_id, current, saved, self.choices), target)

    async def _conflict(self, target: ConfigTarget, form: ConfigForm, user_id: str) -> dict[str, Any]:
        """The modal again, on the newer version, with what this person entered and a warning."""
        latest = await self._configs.get(target.team_id, target.channel_id)
        who = f"<@{latest.updated_by}>" if latest.updated_by else "Someone"
        if latest.updated_by == user_id:  # a save of theirs that Slack did not hear back from in time
            who = "You (in another save)"
        warning = (
            f"{who} changed these settings while you were editing them. Your entries are kept below: *Save* again "
            "to replace theirs with yours, or *Cancel* to keep theirs."
        )
        newer = ConfigTarget(target.team_id, target.channel_id, latest.version)
        return {"response_action": "update", "view": config_modal(newer, form, self.choices, warning=warning)}

    async def post_note(self, target: ConfigTarget, note: str) -> None:
        """Tell the channel about a change (once: only the save that made the change posts it)."""
        try:
            await self._slack.post_reply(ThreadRef(target.team_id, target.channel_id, ""), note)
        except SlackError as exc:  # saved all the same; the channel just does not hear of it
            log.warning("channel %s: could not post the configuration change note: %s", target.channel_id, exc)

    def _form_of(self, config: ChannelConfig) -> ConfigForm:
        """A stored configuration as the modal shows it (a model no longer offered shows as the default)."""
        model = config.model if config.model in self.choices.models else ""
        return ConfigForm(config.instructions, model, config.tools)


def _errors(problems: dict[str, str]) -> dict[str, Any]:
    return {"response_action": "errors", "errors": problems}
