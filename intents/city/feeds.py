"""Live city feeds (weather, air, roads, parking, exchange rates, queues, outages) behind one
interface. The simulator is deterministic per key and hour, so a demo or test sees stable values;
a city with real APIs implements the same methods."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Protocol

SKIES = ["晴", "晴", "多云", "晴转多云", "阴", "小雪", "扬沙"]
WINDS = ["西北风3级", "北风2级", "西风4级", "东南风2级", "西北风5级"]
POLLUTANTS = ["PM2.5", "PM10", "臭氧", "二氧化氮"]
AQI_LEVELS = [(50, "优"), (100, "良"), (150, "轻度污染"), (200, "中度污染"), (300, "重度污染")]
ROAD_STATES = ["畅通", "畅通", "畅通", "缓行", "拥堵"]
MONTHLY_LOWS = [-20, -16, -5, 6, 14, 20, 22, 20, 13, 4, -6, -15]  # Karamay, °C, January first


@dataclass(frozen=True)
class Weather:
    sky: str
    low: int
    high: int
    wind: str


@dataclass(frozen=True)
class AirQuality:
    aqi: int
    level: str
    pollutant: str


class LiveFeeds(Protocol):
    def weather(self, district: str, day: date) -> Weather: ...
    def air_quality(self, district: str, at: datetime) -> AirQuality: ...
    def warning(self, district: str, day: date) -> str | None: ...
    def road(self, road: str, at: datetime) -> str: ...
    def free_spaces(self, lot: str, total: int, at: datetime) -> int: ...
    def exchange_rate(self, currency: str, base: float, day: date) -> float: ...
    def queue(self, branch: str, counters: int, at: datetime) -> int: ...
    def outage(self, district: str, day: date) -> str | None: ...


def _rng(*key: object) -> random.Random:
    return random.Random(":".join(str(k) for k in key))  # str seeds are stable across runs


class SimulatedFeeds:
    def weather(self, district: str, day: date) -> Weather:
        rng = _rng("weather", district, day)
        low = MONTHLY_LOWS[day.month - 1] + rng.randint(-4, 3)
        return Weather(rng.choice(SKIES), low, low + rng.randint(6, 11), rng.choice(WINDS))

    def air_quality(self, district: str, at: datetime) -> AirQuality:
        rng = _rng("aqi", district, at.date(), at.hour)
        aqi = rng.randint(25, 160)
        level = next(name for limit, name in AQI_LEVELS if aqi <= limit)
        return AirQuality(aqi, level, rng.choice(POLLUTANTS))

    def warning(self, district: str, day: date) -> str | None:
        rng = _rng("warning", district, day)
        return rng.choice([None, None, None, "大风蓝色预警", "寒潮蓝色预警", "道路结冰黄色预警"])

    def road(self, road: str, at: datetime) -> str:
        rush = at.hour in (8, 9, 13, 18, 19)
        return _rng("road", road, at.date(), at.hour).choice(ROAD_STATES[2:] if rush else ROAD_STATES)

    def free_spaces(self, lot: str, total: int, at: datetime) -> int:
        return _rng("parking", lot, at.date(), at.hour).randint(0, total)

    def exchange_rate(self, currency: str, base: float, day: date) -> float:
        return round(base * (1 + _rng("fx", currency, day).uniform(-0.01, 0.01)), 4)

    def queue(self, branch: str, counters: int, at: datetime) -> int:
        return _rng("queue", branch, at.date(), at.hour).randint(0, 6 * counters)

    def outage(self, district: str, day: date) -> str | None:
        rng = _rng("outage", district, day)
        if rng.random() < 0.6:
            return None
        what = rng.choice(["停水", "停电"])
        when = day + timedelta(days=rng.randint(1, 5))
        return f"{when.month}月{when.day}日 10:00-16:00 因管网检修{what}，请提前做好准备"
