"""Times for the scheduling tool: read in the asking person's time zone, shown both as ISO and as Slack's date token.

The model writes times as people say them ("tomorrow 09:00" becomes 2026-12-04T09:00): a time without an offset is
read in the person's zone, as its wall clock shows it, daylight saving time included. A wall-clock time the zone
skips (clocks going forward) is refused rather than moved; one it has twice (clocks going back) is the first.
Slack's `<!date^…>` token shows a time in each reader's own zone; its fallback (for clients that cannot) is the
time in the person's zone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.core.ports import UserTimeZone


class BadTime(ValueError):
    """A time the tool cannot read; str() says why, for the model."""


@dataclass(frozen=True)
class Zone:
    """The zone times are read and shown in: its IANA name (what cron schedules run in) and its tzinfo."""

    name: str
    info: tzinfo

    @classmethod
    def of(cls, found: UserTimeZone | None) -> Zone:
        """The person's zone as Slack gave it; its fixed offset if the name is unknown here; UTC without either."""
        if found is None:
            return cls("UTC", UTC)
        try:
            return cls(found.name, ZoneInfo(found.name))
        except (ZoneInfoNotFoundError, ValueError):
            fixed = timezone(timedelta(seconds=found.offset))
            return cls("UTC", fixed) if found.offset == 0 else cls(str(fixed), fixed)

    @property
    def iana(self) -> str:
        """The name cron schedules keep: the IANA name, or UTC for a bare offset (cron needs a real zone)."""
        return self.name if isinstance(self.info, ZoneInfo) or self.name == "UTC" else "UTC"


def parse_local(text: str, zone: Zone) -> float:
    """Unix seconds of an ISO date-time ("2026-12-04T09:00", "2026-12-04 09:00", or with an offset); one without an
    offset is the person's wall-clock time."""
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise BadTime(f"{text[:40]!r} is not a date and time like 2026-12-04T09:00.") from exc
    if parsed.tzinfo is not None:
        return parsed.timestamp()
    local = parsed.replace(tzinfo=zone.info)
    there_and_back = datetime.fromtimestamp(local.timestamp(), zone.info).replace(tzinfo=None)
    if there_and_back != parsed:
        raise BadTime(
            f"{parsed:%Y-%m-%d %H:%M} does not exist in {zone.name} (the clocks go forward then): pick another time."
        )
    return local.timestamp()


def iso(at: float, zone: Zone) -> str:
    """The time in the person's zone as ISO 8601 with its offset, to the minute."""
    return datetime.fromtimestamp(at, zone.info).isoformat(timespec="minutes")


def slack_date(at: float, zone: Zone) -> str:
    """Slack's date token: "today at 9:00 AM" and the like in each reader's own zone; the fallback in the person's."""
    local = datetime.fromtimestamp(at, zone.info)
    fallback = f"{local:%a %d %b %Y %H:%M} {local.tzname() or zone.name}"
    return f"<!date^{int(at)}^{{date_short_pretty}} at {{time}}|{fallback}>"


def shown(at: float, zone: Zone) -> str:
    """A time as a tool result gives it: ISO in the zone, and the Slack token to write in an answer."""
    return f"{iso(at, zone)} ({zone.name}), in Slack {slack_date(at, zone)}"
