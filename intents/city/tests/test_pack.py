"""The city data pack: reproducible from its seed, internally consistent, resolvable by name; the bus simulator."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from intents.city import generate
from intents.city.live import SimulatedBusFeed
from intents.city.pack import DEFAULT_PACK_DIR, CityPack, load_pack, minutes_of

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def pack() -> CityPack:
    return load_pack()


def feed_at(pack: CityPack, hh: int, mm: int, ss: int = 0) -> SimulatedBusFeed:
    moment = datetime(2026, 11, 25, hh, mm, ss)
    return SimulatedBusFeed(pack, clock=lambda: moment)


# --- reproducible ------------------------------------------------------------------------------
def test_regenerating_matches_committed_files(tmp_path: Path) -> None:
    generate.write(tmp_path)
    generated = sorted(p.name for p in tmp_path.iterdir())
    assert generated == sorted(p.name for p in DEFAULT_PACK_DIR.glob("*.yaml"))
    for name in generated:
        assert (tmp_path / name).read_bytes() == (DEFAULT_PACK_DIR / name).read_bytes(), f"{name} is stale"


def test_generator_ignores_hash_randomisation(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    cmd = [sys.executable, "-m", "intents.city.generate", "--out", str(tmp_path)]
    subprocess.run(cmd, cwd=REPO, env=env, check=True, capture_output=True)
    for path in sorted(tmp_path.iterdir()):
        assert path.read_bytes() == (DEFAULT_PACK_DIR / path.name).read_bytes()


def test_another_seed_gives_another_valid_pack(tmp_path: Path) -> None:
    generate.write(tmp_path, seed=7)
    other = load_pack(tmp_path)
    assert [line.stops for line in other.bus_lines] != [line.stops for line in load_pack().bus_lines]


# --- counts ------------------------------------------------------------------------------------
def test_counts(pack: CityPack) -> None:
    assert pack.city.name == "克拉玛依市" and pack.city.timezone == "Asia/Shanghai"
    assert [d.name for d in pack.districts] == ["克拉玛依区", "独山子区", "白碱滩区", "乌尔禾区"]
    assert len(pack.communities) == 84
    per_district = Counter(c.district for c in pack.communities)
    assert per_district.most_common(1)[0] == ("karamay", 50)
    assert 180 <= len(pack.bus_stops) <= 220
    assert 25 <= len(pack.bus_lines) <= 35
    assert len(pack.departments) >= 18 and 7 <= len(pack.hospitals) <= 9
    assert 5 <= len(pack.cinemas) <= 6 and 6 <= len(pack.films) <= 8
    assert Counter(a.kind for a in pack.utility_accounts) == {"water": 10, "electricity": 10, "gas": 10, "heating": 10}
    assert 8 <= len(pack.bank_branches) <= 10 and [b.prefix for b in pack.bank_business_types] == list("ABCV")


def test_names_are_unique_per_kind(pack: CityPack) -> None:
    for field in ("communities", "bus_stops", "bus_lines", "hospitals", "departments", "cinemas", "bank_branches"):
        names = [item.name for item in getattr(pack, field)]
        assert len(names) == len(set(names)), field
    assert len({f.title for f in pack.films}) == len(pack.films)


# --- referential integrity ---------------------------------------------------------------------
def test_every_reference_exists(pack: CityPack) -> None:
    districts = {d.id for d in pack.districts}
    stops = {s.id for s in pack.bus_stops}
    for item in [*pack.communities, *pack.bus_stops, *pack.hospitals, *pack.cinemas, *pack.bank_branches]:
        assert item.district in districts
    for line in pack.bus_lines:
        assert set(line.stops) <= stops and len(set(line.stops)) == len(line.stops)
        assert 8 <= len(line.stops) <= 25
        assert minutes_of(line.first_bus) < minutes_of(line.last_bus)
    departments = {d.id for d in pack.departments}
    for hospital in pack.hospitals:
        assert hospital.departments and set(hospital.departments) <= departments
        assert hospital.phone.startswith("0990-") and len(hospital.phone) == 12
    for o in pack.appointment.capacity_overrides:
        assert o.department in pack.hospital(o.hospital).departments
    for showing in pack.showings:
        cinema = pack.cinema(showing.cinema)
        assert showing.hall in {h.id for h in cinema.halls}
        assert pack.film(showing.film).id == showing.film
    kinds = {k.id for k in pack.utility_kinds}
    for account in pack.utility_accounts:
        assert account.kind in kinds
        assert account.account_no[0] == "1234"[["water", "electricity", "gas", "heating"].index(account.kind)]


def test_every_stop_is_served_and_transfers_exist(pack: CityPack) -> None:
    served = Counter(stop for line in pack.bus_lines for stop in line.stops)
    assert set(served) == {s.id for s in pack.bus_stops}
    assert sum(1 for n in served.values() if n > 1) >= 20


def test_demo_facts(pack: CityPack) -> None:
    line_ids = {line.id for line in pack.bus_lines}
    assert {"1", "2", "3", "5", "12", "16", "21", "101"} <= line_ids
    hospital_stop = pack.resolve("bus_stop", "克拉玛依市人民医院")[0]
    assert hospital_stop.how == "exact" and hospital_stop.id in pack.line("12").stops
    assert all(len({s.cinema for s in pack.showings_of(film_id=f.id)}) >= 2 for f in pack.films)
    assert pack.appointment.capacity_for("renmin", "ophthalmology", "am") == 1
    assert pack.appointment.capacity_for("renmin", "pediatrics", "pm") == pack.appointment.capacity
    assert [p.start for p in pack.appointment.periods] == ["09:00", "15:30"]
    assert any(a.amount_due_yuan == 0 for a in pack.utility_accounts)
    assert pack.account("2087654321").kind == "electricity" and pack.account("0000000000") is None


def test_lookups_by_id(pack: CityPack) -> None:
    assert pack.hospital("renmin").name == "克拉玛依市人民医院"
    assert pack.department("cardiology").name == "心血管内科"
    assert pack.line("12").name == "12路"
    assert pack.branch("yingyebu").name == "昆仑银行克拉玛依分行营业部"
    assert pack.cinema("wanda").name == "万达影城(克拉玛依店)"
    assert pack.hall("wanda-1").seats > 0
    with pytest.raises(KeyError):
        pack.hospital("nope")


# --- resolve -----------------------------------------------------------------------------------
def test_resolve_exact_and_alias(pack: CityPack) -> None:
    assert pack.resolve("department", "心内科")[0].name == "心血管内科"
    assert pack.resolve("hospital", "中心医院")[0].name == "克拉玛依市中心医院"
    assert pack.resolve("cinema", "万达")[0].id == "wanda"
    assert pack.resolve("film", "熊猫总动员")[0].how == "exact"
    assert pack.resolve("business_type", "存取款")[0].id == "personal"
    assert pack.resolve("business_type", "vip")[0].id == "vip"
    assert pack.resolve("utility_kind", "取暖费")[0].id == "heating"
    assert pack.resolve("bus_line", "十二路")[0].id == "12"
    assert pack.resolve("bus_line", "12")[0].id == "12"
    assert pack.resolve("bank_branch", "营业部")[0].id == "yingyebu"


def test_resolve_partial_names(pack: CityPack) -> None:
    first = pack.resolve("bank_branch", "友谊路")[0]
    assert (first.id, first.how) == ("youyilu", "contains")
    assert pack.resolve("bus_line", "12路车")[0].id == "12"
    assert pack.resolve("bus_stop", "石油大学站")[0].name == "石油大学"
    assert pack.resolve("cinema", "独山子影剧院（电影院）")[0].id == "dushanzi"


def test_resolve_unknown_gives_suggestions(pack: CityPack) -> None:
    suggestions = pack.resolve("hospital", "人名医院")
    assert suggestions and suggestions[0].name == "克拉玛依市人民医院"
    assert all(c.how == "similar" for c in suggestions)
    assert [c.score for c in suggestions] == sorted((c.score for c in suggestions), reverse=True)
    assert pack.resolve("hospital", "北京协和医院") == []
    assert pack.resolve("film", "") == []


# --- the bus simulator -------------------------------------------------------------------------
async def test_simulator_is_deterministic(pack: CityPack) -> None:
    first = await feed_at(pack, 9, 17, 30).vehicles("12")
    again = await feed_at(pack, 9, 17, 30).vehicles("12")
    assert first and first == again
    later = await feed_at(pack, 9, 18, 30).vehicles("12")
    assert later != first


async def test_no_buses_before_first_bus_or_after_the_last_trip(pack: CityPack) -> None:
    line = pack.line("12")
    first = minutes_of(line.first_bus)
    before = feed_at(pack, (first - 1) // 60, (first - 1) % 60)
    assert await before.vehicles("12") == []
    assert await before.arrivals("12", line.stops[3]) == []
    assert not before.in_service("12")
    night = feed_at(pack, 23, 59)
    assert await night.vehicles("12") == [] and await night.arrivals("12", line.stops[3]) == []
    at_first = feed_at(pack, first // 60, first % 60)
    assert at_first.in_service("12") and len(await at_first.vehicles("12")) == 2  # one from each terminal


async def test_vehicle_positions_follow_the_line(pack: CityPack) -> None:
    line = pack.line("12")
    terminals = {pack.stop(line.stops[0]).name, pack.stop(line.stops[-1]).name}
    for hour in range(9, 21):
        vehicles = await feed_at(pack, hour, 7, 20).vehicles("12")
        assert vehicles
        assert len({v.vehicle_id for v in vehicles}) == len(vehicles)
        for v in vehicles:
            assert v.vehicle_id.startswith("新J-") and len(v.vehicle_id) == 8
            assert v.direction in terminals
            a, b = line.stops.index(v.last_stop_id), line.stops.index(v.next_stop_id)
            assert abs(a - b) == 1
            assert 1 <= v.minutes_to_next <= line.minutes_between_stops


async def test_arrivals_sorted_and_non_negative(pack: CityPack) -> None:
    line = pack.line("12")
    stop = pack.resolve("bus_stop", "克拉玛依市人民医院")[0].id
    moment = datetime(2026, 11, 25, 10, 3, 0)
    for step in range(0, 240, 7):
        now = moment + timedelta(minutes=step)
        arrivals = await SimulatedBusFeed(pack, clock=lambda now=now: now).arrivals("12", stop)
        assert arrivals
        assert arrivals == sorted(arrivals)
        assert all(a.minutes_until >= 0 and a.stops_away >= 0 for a in arrivals)
        assert {a.direction for a in arrivals} == {pack.stop(line.stops[0]).name, pack.stop(line.stops[-1]).name}


async def test_a_terminal_only_sees_buses_leaving_it(pack: CityPack) -> None:
    line = pack.line("5")
    arrivals = await feed_at(pack, 12, 0).arrivals("5", line.stops[0])
    assert arrivals and {a.direction for a in arrivals} == {pack.stop(line.stops[-1]).name}


async def test_timezone_aware_clock_is_read_in_city_time(pack: CityPack) -> None:
    from zoneinfo import ZoneInfo

    local = datetime(2026, 11, 25, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    utc = local.astimezone(ZoneInfo("UTC"))
    assert await SimulatedBusFeed(pack, lambda: utc).vehicles("3") == await feed_at(pack, 10, 0).vehicles("3")
