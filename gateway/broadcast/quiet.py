"""City time and quiet hours. Ordinary notices wait until quiet hours are over; emergencies and
urgent school notices do not.

Times are the city's local time, as intents.runtime.now() gives them (CITYGW_FIXED_NOW pins the
clock); the clock here reads the Settings it is handed, so a test or a worker can pin its own."""

from __future__ import annotations

from datetime import UTC, datetime, time

from gateway.config import Settings
from intents.runtime import city_tz


def city_now(settings: Settings) -> datetime:
    """Local city time, naive, like intents.runtime.now() but from these settings."""
    if settings.fixed_now:
        return datetime.fromisoformat(settings.fixed_now)
    return datetime.now(city_tz()).replace(tzinfo=None)


def utc_now(settings: Settings) -> datetime:
    """The same instant as city_now, timezone-aware UTC (how the database stores times)."""
    return to_utc(city_now(settings))


def to_utc(value: datetime) -> datetime:
    """A naive value is city local time; an aware one is converted."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=city_tz())
    return value.astimezone(UTC)


def parse_window(spec: str) -> tuple[time, time] | None:
    """ "22:00-07:00" → (22:00, 07:00); an empty spec means no quiet hours."""
    spec = (spec or "").strip()
    if not spec:
        return None
    start, _, end = spec.partition("-")
    try:
        return time.fromisoformat(start.strip()), time.fromisoformat(end.strip())
    except ValueError:
        raise ValueError(f"quiet_hours must look like 22:00-07:00, not {spec!r}") from None


def in_quiet_hours(spec: str, local: datetime) -> bool:
    """Whether local (city time) falls in the window; a window may run past midnight."""
    window = parse_window(spec)
    if window is None:
        return False
    start, end = window
    now = local.time()
    if start <= end:
        return start <= now < end
    return now >= start or now < end


def quiet_now(settings: Settings) -> bool:
    return in_quiet_hours(settings.quiet_hours, city_now(settings))
