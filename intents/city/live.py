"""Live bus positions behind an adapter: a real city API implements BusFeed; the demo uses SimulatedBusFeed.

The simulator is a pure function of the clock: on every line, buses leave both terminals every
``interval_min`` minutes from ``first_bus`` to ``last_bus`` (the pack's local times) and take
``minutes_between_stops`` per stop. A bus that arrives at a terminal turns around after a short layover,
so one plate does both directions and the plates on the road at one moment are unique.
Before the first bus and once the last trips have finished, a line has no vehicles and no arrivals:
the caller says 已停运 and quotes first_bus / last_bus."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple, Protocol
from zoneinfo import ZoneInfo

from intents.city.pack import BusLine, CityPack, minutes_of

LAYOVER_MIN = 5  # at a terminal before the return trip
PLATE_PREFIX = "新J-"  # Karamay's plate prefix


@dataclass(frozen=True)
class VehiclePosition:
    vehicle_id: str  # plate, e.g. 新J-12345
    line_id: str
    direction: str  # name of the terminal stop it is heading to
    last_stop_id: str  # the stop it passed (or is standing at) last
    next_stop_id: str
    minutes_to_next: int  # whole minutes, rounded up, at least 1 unless standing at next_stop


class Arrival(NamedTuple):
    minutes_until: int
    stops_away: int  # 0 = at the stop now; for a bus still waiting at the terminal, stops from there
    direction: str


class BusFeed(Protocol):
    async def vehicles(self, line_id: str) -> list[VehiclePosition]: ...

    async def arrivals(self, line_id: str, stop_id: str) -> list[Arrival]: ...


@dataclass(frozen=True)
class _Trip:
    vehicle_id: str
    stops: list[str]  # in travel order
    depart: float  # minutes after midnight at stops[0]


class SimulatedBusFeed:
    """Deterministic positions from the time of day; ``clock`` gives "now" (naive = city local time)."""

    def __init__(self, pack: CityPack, clock: Callable[[], datetime] = datetime.now) -> None:
        self.pack = pack
        self.clock = clock
        self.tz = ZoneInfo(pack.city.timezone)

    def now_minutes(self) -> float:
        now = self.clock()
        if now.tzinfo is not None:
            now = now.astimezone(self.tz)
        return now.hour * 60 + now.minute + now.second / 60 + now.microsecond / 60_000_000

    def in_service(self, line_id: str) -> bool:
        """True from the first bus until the last trips reach their terminals."""
        line = self.pack.line(line_id)
        trip = self._trip_minutes(line)
        return minutes_of(line.first_bus) <= self.now_minutes() <= minutes_of(line.last_bus) + trip

    async def vehicles(self, line_id: str) -> list[VehiclePosition]:
        line = self.pack.line(line_id)
        now, step = self.now_minutes(), line.minutes_between_stops
        positions = []
        for trip in self._trips(line):
            elapsed = now - trip.depart
            if not 0 <= elapsed < step * (len(trip.stops) - 1):
                continue
            passed = int(elapsed // step)
            positions.append(
                VehiclePosition(
                    vehicle_id=trip.vehicle_id,
                    line_id=line.id,
                    direction=self.pack.stop(trip.stops[-1]).name,
                    last_stop_id=trip.stops[passed],
                    next_stop_id=trip.stops[passed + 1],
                    minutes_to_next=math.ceil(step * (passed + 1) - elapsed),
                )
            )
        return sorted(positions, key=lambda v: (v.direction, v.minutes_to_next, v.vehicle_id))

    async def arrivals(self, line_id: str, stop_id: str, per_direction: int = 2) -> list[Arrival]:
        """The next buses at a stop, soonest first: those on the way, then those about to leave the
        terminal. A terminal only gets the buses that start there."""
        line = self.pack.line(line_id)
        if stop_id not in line.stops:
            raise ValueError(f"stop {stop_id} is not on line {line_id}")
        now, step = self.now_minutes(), line.minutes_between_stops
        if now < minutes_of(line.first_bus):
            return []
        found: dict[str, list[Arrival]] = {}
        for trip in self._trips(line):
            at = trip.stops.index(stop_id)
            if at == len(trip.stops) - 1:
                continue
            until = trip.depart + at * step - now
            if until < 0:
                continue
            direction = self.pack.stop(trip.stops[-1]).name
            stops_away = at - max(0, math.floor((now - trip.depart) / step))
            found.setdefault(direction, []).append(Arrival(math.ceil(until), stops_away, direction))
        soonest = [a for arrivals in found.values() for a in sorted(arrivals)[:per_direction]]
        return sorted(soonest)

    # --- the timetable -------------------------------------------------------------------------
    @staticmethod
    def _trip_minutes(line: BusLine) -> int:
        return line.minutes_between_stops * (len(line.stops) - 1)

    def _departures(self, line: BusLine) -> list[float]:
        first, last = minutes_of(line.first_bus), minutes_of(line.last_bus)
        return [float(t) for t in range(first, last + 1, line.interval_min)]

    def _fleet(self, line: BusLine) -> list[str]:
        """Enough plates for a bus to do trip j one way and trip j + c the other way, c trips later."""
        size = 2 * self._turnaround(line)
        rng = random.Random(f"bus-fleet-{line.id}")  # str seeds are stable across runs
        numbers = rng.sample(range(10000, 100000), size)
        return [f"{PLATE_PREFIX}{n}" for n in numbers]

    def _turnaround(self, line: BusLine) -> int:
        return math.ceil((self._trip_minutes(line) + LAYOVER_MIN) / line.interval_min)

    def _trips(self, line: BusLine) -> list[_Trip]:
        fleet, c = self._fleet(line), self._turnaround(line)
        outbound, inbound = line.stops, list(reversed(line.stops))
        trips = []
        for j, depart in enumerate(self._departures(line)):
            trips.append(_Trip(fleet[j % len(fleet)], outbound, depart))
            trips.append(_Trip(fleet[(j - c) % len(fleet)], inbound, depart))
        return trips
