"""Cron schedules' run times, worked out here in Python (cronsim) in the person's time zone (zoneinfo).

A cron schedule keeps its next RUNS_AHEAD run times in its hash ("runs", integer ms, comma separated). The fire
script (store/schedules_lua.py FIRE) takes the first of them after now, so firing stays one script and exactly once,
and a cron schedule missed during downtime fires once, then next runs at its first time after now. The run's handler
tops the list up (ScheduleStore.refill_cron) each time it runs, well before it runs out.
"""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import pairwise
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from store.schedule_models import ScheduleRefused

RUNS_AHEAD = 20  # run times a cron schedule keeps ahead: at least 20 periods of downtime before it must refill
GAPS_CHECKED = 200  # consecutive run times whose gaps are checked against the minimum interval


def zone(name: str) -> ZoneInfo:
    """The IANA zone `name`; ScheduleRefused if there is none by that name."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ScheduleRefused(f"{name!r} is not a time zone name like Europe/London.") from exc


def _iterator(expression: str, tz: str, after: float) -> CronSim:
    start = datetime.fromtimestamp(after, UTC).astimezone(zone(tz))
    try:
        return CronSim(expression, start)
    except CronSimError as exc:
        raise ScheduleRefused(
            f"{expression!r} is not a cron expression of five fields (minute hour day-of-month month "
            f"day-of-week): {exc}."
        ) from exc


def next_runs(expression: str, tz: str, after: float, count: int = RUNS_AHEAD) -> list[float]:
    """The expression's first `count` run times (Unix seconds) strictly after `after`, read in zone `tz`."""
    if len(expression.split()) != 5:  # cronsim also takes a seconds field; a schedule is in minutes
        raise ScheduleRefused(
            f"{expression!r} is not a cron expression of five fields (minute hour day-of-month month day-of-week)."
        )
    runs: list[float] = []
    try:
        for at in _iterator(expression, tz, after):
            stamp = at.timestamp()
            if stamp > after:
                runs.append(stamp)
            if len(runs) >= count:
                break
    except StopIteration:  # an expression that never matches again (say, Feb 30)
        pass
    if not runs:
        raise ScheduleRefused(f"The cron expression {expression!r} never runs.")
    return runs


def shortest_gap(expression: str, tz: str, after: float) -> float:
    """The shortest time between consecutive runs among the next GAPS_CHECKED (inf for a single run)."""
    runs = next_runs(expression, tz, after, GAPS_CHECKED)
    return min((later - earlier for earlier, later in pairwise(runs)), default=float("inf"))


def explain(expression: str) -> str:
    """The expression in words ("Every fifth minute of every hour"), or the expression itself."""
    try:
        return CronSim(expression, datetime.now(UTC)).explain()
    except (CronSimError, ValueError):
        return expression


def encode_runs(runs: list[float]) -> str:
    """Run times as the hash keeps them."""
    return ",".join(str(round(at * 1000)) for at in runs)
