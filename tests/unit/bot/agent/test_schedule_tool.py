"""The schedule tool over a real Redis and the Slack emulator: input checked, times read in the asker's zone (daylight
saving time included) and shown as ISO and Slack date tokens, limits refused as error results, and only the thread's
own schedules."""

from __future__ import annotations

import re
import time
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from redis.asyncio import Redis

from bot.agent.schedule_times import BadTime, Zone, parse_local, slack_date
from bot.agent.schedule_tool import ScheduleTool, definition
from bot.agent.setup import AgentSetup
from bot.agent.tools import ToolCall
from bot.core.ports import UserTimeZone
from handlers.gateway import WebApiGateway
from store.errors import LeaseLost
from store.keys import KeySpace
from store.models import Task, TaskKind, ThreadRef
from store.schedules import ScheduleLimits, ScheduleStore
from store.tasks import TaskQueue
from tests.fakes import FakeSlack

NEW_YORK = ZoneInfo("America/New_York")
NOW = datetime(2027, 3, 12, 12, 0, tzinfo=NEW_YORK).timestamp()  # Friday; clocks go forward Sunday 02:00
THREAD = ThreadRef("T1", "C1", "1700000000.000100")
OTHER = ThreadRef("T1", "C1", "1700000099.000100")
LIMITS = ScheduleLimits(per_thread=2, per_channel=10, min_interval=600, max_lifetime=7 * 86400)


class FixedClock:
    """The timers' clock, stopped at NOW."""

    def now(self) -> float:
        return NOW


@pytest.fixture
def tool(redis: Redis, gateway: WebApiGateway, slack: FakeSlack) -> ScheduleTool:
    slack.add_user("U1", "ada", tz="America/New_York")
    return ScheduleTool(ScheduleStore(redis, KeySpace(), LIMITS), gateway, FixedClock())


_calls = 0


async def run(tool: ScheduleTool, thread: ThreadRef = THREAD, call_id: str = "", **given: Any) -> tuple[str, bool]:
    global _calls
    _calls += 1
    task = Task("task-1", TaskKind.ANSWER, thread, "hi", "U1", "1700000001.000100", time.time())
    result = await tool.run(ToolCall(call_id or f"toolu_{_calls}", "schedule", given, task, AgentSetup()))
    return result.text, result.is_error


def stamps(text: str) -> list[int]:
    """The Unix times of the Slack date tokens in a result."""
    return [int(found) for found in re.findall(r"<!date\^(\d+)\^\{date_short_pretty\} at \{time\}\|[^>]+>", text)]


def test_the_description_tells_the_model_the_limits() -> None:
    """Per thread, per channel, the minimum interval and the lifetime, as the settings have them."""
    text = definition(LIMITS)["description"]
    assert "at most 2 active schedules in a thread (10 in a channel)" in text
    assert "at most every 10 minutes" in text and "at most 7 days" in text


def test_slack_date_tokens_carry_the_time_and_a_fallback_in_the_persons_zone() -> None:
    """Slack's token with the Unix time, date_short_pretty at time, and the wall clock as the fallback."""
    zone = Zone.of(UserTimeZone("America/New_York", "Eastern Standard Time", -18000))
    assert slack_date(NOW, zone) == f"<!date^{int(NOW)}^{{date_short_pretty}} at {{time}}|Fri 12 Mar 2027 12:00 EST>"


def test_local_times_follow_daylight_saving_time_and_a_skipped_one_is_refused() -> None:
    """09:00 is UTC-5 before the change and UTC-4 after; 02:30 on the day the clocks go forward does not exist."""
    zone = Zone.of(UserTimeZone("America/New_York", "Eastern Daylight Time", -14400))
    assert parse_local("2027-03-13T09:00", zone) == datetime(2027, 3, 13, 14, 0, tzinfo=ZoneInfo("UTC")).timestamp()
    assert parse_local("2027-03-15 09:00", zone) == datetime(2027, 3, 15, 13, 0, tzinfo=ZoneInfo("UTC")).timestamp()
    assert parse_local("2027-03-15T09:00+00:00", zone) == datetime(2027, 3, 15, 9, tzinfo=ZoneInfo("UTC")).timestamp()
    with pytest.raises(BadTime, match="does not exist"):
        parse_local("2027-03-14T02:30", zone)
    with pytest.raises(BadTime):
        parse_local("next tuesday", zone)


def test_an_unknown_zone_name_falls_back_to_its_offset_and_none_to_utc() -> None:
    """A name this machine does not know: Slack's offset; no zone at all: UTC."""
    odd = Zone.of(UserTimeZone("Nowhere/Special", "?", 3600))
    assert parse_local("2027-03-13T09:00", odd) == datetime(2027, 3, 13, 8, tzinfo=ZoneInfo("UTC")).timestamp()
    assert odd.iana == "UTC" and Zone.of(None).name == "UTC"


async def test_create_in_30_minutes_gives_the_next_run_as_iso_and_a_slack_token(tool: ScheduleTool) -> None:
    """A delay from the clock's now; the result names the schedule and its next run in the asker's zone."""
    text, error = await run(tool, action="create", in_minutes=30, note="check the deploy")
    assert not error, text
    assert "once" in text and "2027-03-12T12:30-05:00 (America/New_York)" in text
    assert stamps(text) == [int(NOW + 1800)]


async def test_an_at_time_is_read_in_the_askers_zone_across_daylight_saving_time(tool: ScheduleTool) -> None:
    """Monday 09:00 for someone in New York is 13:00 UTC (EDT by then), however far from UTC the server is."""
    text, error = await run(tool, action="create", at="2027-03-15T09:00", note="decide")
    assert not error, text
    assert "2027-03-15T09:00-04:00" in text
    assert stamps(text) == [int(datetime(2027, 3, 15, 13, tzinfo=ZoneInfo("UTC")).timestamp())]


async def test_a_cron_schedule_runs_in_the_askers_zone(tool: ScheduleTool) -> None:
    """Weekdays at 09:00: next Monday 09:00 New York time, said in words too."""
    text, error = await run(tool, action="create", cron="0 9 * * 1-5", note="post the summary", until_goal=True)
    assert not error, text
    assert "cron '0 9 * * 1-5' in America/New_York" in text and "2027-03-15T09:00-04:00" in text
    assert "when you cancel it with the goal met" in text


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ({"note": "x"}, "Say when"),
        ({"in_minutes": 5}, "needs a note"),
        ({"in_minutes": 5, "at": "2027-03-13T09:00", "note": "x"}, "not both"),
        ({"every_minutes": 30, "cron": "0 9 * * *", "note": "x"}, "not both"),
        ({"in_minutes": 5, "count": 3, "note": "x"}, "runs once"),
        ({"every_minutes": 30, "count": 0, "note": "x"}, "at least 1"),
        ({"every_minutes": "often", "note": "x"}, "must be a number"),
        ({"at": "2027-03-01T09:00", "note": "x"}, "in the past"),
        ({"at": "2027-03-14T02:30", "note": "x"}, "does not exist"),
        ({"cron": "0 9 * *", "note": "x"}, "five fields"),
        ({"every_minutes": 5, "note": "x"}, "at most every 10 minutes, not every 5 minutes"),
        ({"cron": "*/5 * * * *", "note": "x"}, "at most every 10 minutes"),
        ({"in_minutes": 8 * 24 * 60, "note": "x"}, "at most 7 days from now"),
    ],
)
async def test_bad_input_and_refusals_are_error_results_that_say_why(
    tool: ScheduleTool, given: dict[str, Any], says: str
) -> None:
    """The model reads what to change."""
    text, error = await run(tool, action="create", **given)
    assert error and says in text, text


async def test_the_per_thread_limit_is_an_error_result_naming_it(tool: ScheduleTool) -> None:
    """Two schedules in a thread (the limit here): a third is refused with the limit; another thread may still."""
    for minutes in (10, 20):
        assert not (await run(tool, action="create", in_minutes=minutes, note="x"))[1]
    text, error = await run(tool, action="create", in_minutes=30, note="x")
    assert error and "already has 2 active schedules, the most it may have (2)" in text
    assert not (await run(tool, OTHER, action="create", in_minutes=30, note="x"))[1]


async def test_a_create_call_run_again_makes_no_second_schedule(tool: ScheduleTool) -> None:
    """The same tool_use id twice (the task resumed before its result was journaled): one schedule."""
    first, _ = await run(tool, call_id="toolu_same", action="create", in_minutes=30, note="x")
    again, _ = await run(tool, call_id="toolu_same", action="create", in_minutes=30, note="x")
    assert first == again
    listed, _ = await run(tool, action="list")
    assert listed.count("\n- ") == 1


async def test_list_and_cancel_see_only_the_threads_own_schedules(tool: ScheduleTool) -> None:
    """Another thread's schedule is neither listed nor cancelled from here; cancel with a reason ends one."""
    made, _ = await run(tool, OTHER, action="create", every_minutes=10, until_goal=True, note="poll")
    other_id = made.removeprefix("Scheduled ").split(":")[0]
    assert (await run(tool, action="list")) == ("This thread has no schedules.", False)
    text, error = await run(tool, action="cancel", schedule_id=other_id, reason="goal met")
    assert error and "no active schedule" in text
    text, error = await run(tool, OTHER, action="cancel", schedule_id=other_id, reason="the deploy is green")
    assert not error and text == f"Cancelled schedule {other_id} (the deploy is green)."
    assert (await run(tool, OTHER, action="list"))[0] == "This thread has no schedules."


async def test_unknown_actions_and_ids_are_refused(tool: ScheduleTool) -> None:
    """An action it does not have; a cancel without a usable id."""
    assert (await run(tool, action="snooze"))[1]
    text, error = await run(tool, action="cancel", schedule_id="../x")
    assert error and "schedule_id" in text


async def test_without_a_time_zone_from_slack_times_are_utc(tool: ScheduleTool) -> None:
    """A person Slack does not know (users.info fails): times are read and shown in UTC."""
    task = Task("task-1", TaskKind.ANSWER, THREAD, "hi", "U0NOBODY", "1700000001.000100", time.time())
    given = {"action": "create", "at": "2027-03-15T09:00", "note": "x"}
    result = await tool.run(ToolCall("toolu_utc", "schedule", given, task, AgentSetup()))
    assert "2027-03-15T09:00+00:00 (UTC)" in result.text


async def test_users_info_gives_the_zone_with_its_offset_now_and_the_gateway_keeps_it(
    gateway: WebApiGateway, slack: FakeSlack
) -> None:
    """As Slack's user object: tz, tz_label and tz_offset (the offset in force now: EST or EDT); asked once a while."""
    slack.add_user("U2", "grace", tz="America/New_York")
    zone = await gateway.time_zone("T1", "U2")
    assert zone is not None and zone.name == "America/New_York"
    assert (zone.label, zone.offset) in (("EST", -18000), ("EDT", -14400))
    assert await gateway.time_zone("T1", "U2") == zone
    assert len(slack.calls_to("users.info")) == 1
    assert await gateway.time_zone("T1", "U0NOBODY") is None


async def test_a_create_is_fenced_with_the_runs_lease(tool: ScheduleTool, redis: Redis) -> None:
    """A run whose thread was reset meanwhile (its lease revoked) schedules nothing: LeaseLost, as its other writes."""
    queue = TaskQueue(redis, KeySpace())
    for shard in range(queue.shards):
        await queue.ensure_group(shard)
    await queue.submit(Task("Ev1", TaskKind.ANSWER, THREAD, "hi", "U1", "1700000001.000100", time.time()))
    [lease] = await queue.claim_new("web.1", list(range(queue.shards)), count=10, block_ms=10)
    await queue.reset(Task("Ev2", TaskKind.RESET, THREAD, "", "U1", "1700000002.000100", time.time()))
    task = Task("Ev1", TaskKind.ANSWER, THREAD, "hi", "U1", "1700000001.000100", time.time())
    given = {"action": "create", "in_minutes": 30, "note": "x"}
    with pytest.raises(LeaseLost):
        await tool.run(ToolCall("toolu_fenced", "schedule", given, task, AgentSetup(), lease))
    assert (await run(tool, action="list"))[0] == "This thread has no schedules."


async def test_a_scheduled_run_cannot_chain_one_offs_faster_than_the_minimum_interval(tool: ScheduleTool) -> None:
    """A run that schedules its own next one-off at once would loop at model speed: from a scheduled run a one-off
    keeps the minimum interval (10 minutes here); a person's mention may still ask for one in a minute."""
    task = Task("sched-x-1", TaskKind.SCHEDULED, THREAD, "look again", "U1", "1700000001.000100", time.time())
    chained = await tool.run(
        ToolCall("toolu_chain", "schedule", {"action": "create", "in_minutes": 0, "note": "again"}, task, AgentSetup())
    )
    assert chained.is_error and "at least 10 minutes ahead" in chained.text
    assert not (await run(tool, action="create", in_minutes=1, note="soon"))[1]


async def test_out_of_range_times_and_numbers_are_error_results_not_failures(tool: ScheduleTool) -> None:
    """Input past what datetime or Redis take comes back to the model as an error result; the task goes on."""
    for given in (
        {"at": "9999-12-31T23:59"},
        {"every_minutes": 1e304, "until_goal": True},
        {"every_minutes": float("inf")},
        {"cron": "0 " * 60},
    ):
        text, error = await run(tool, action="create", note="x", **given)
        assert error and text, given


async def test_a_recurring_schedule_is_renewed_from_now_and_only_in_its_own_thread(tool: ScheduleTool) -> None:
    """renew starts a recurring schedule's lifetime again from now; another thread's, or a one-off, is refused."""
    made, _ = await run(tool, action="create", every_minutes=60, until_goal=True, note="check")
    schedule_id = made.split()[1].strip("():,")
    text, error = await run(tool, action="renew", schedule_id=schedule_id)
    assert not error and text.startswith("Renewed"), text
    assert (await run(tool, OTHER, action="renew", schedule_id=schedule_id))[1]
    assert (await run(tool, action="renew", schedule_id="nosuch"))[1]
