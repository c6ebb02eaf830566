"""The services that real questions showed were missing (issue 11), on the citizen's own words:
travel to other cities, another city's weather, symptom → department, where is / how do I get there,
scams and breakdowns that must hear the emergency numbers first, and "did you mean" buttons."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from intents.city import china
from intents.handlers import run_service
from intents.menu import SAID, did_you_mean
from intents.runtime import Context, pack
from intents.services import catalogue

NOW = datetime(2026, 11, 25, 10, 0)


def ctx(service_id: str, text: str, **slots: str) -> Context:
    return Context(
        slots=dict(slots),
        citizen_id=None,
        conversation_id="t",
        text=text,
        now=NOW,
        pack=pack(),
        sessions=None,  # type: ignore[arg-type]  # these services read no database
        service=catalogue().service(service_id),
    )


async def answer(service_id: str, text: str, **slots: str):
    return await run_service(catalogue().service(service_id), ctx(service_id, text, **slots))


# --- places of China -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("乌市到北京的火车票", ["乌鲁木齐", "北京"]),
        ("从奎屯回克拉玛依", ["奎屯", "克拉玛依"]),
        ("石河子冷不冷", ["石河子"]),
        ("想去伊犁看看", ["伊犁"]),
    ],
)
def test_cities_are_found_in_the_order_said(text, expected):
    assert [p.short or p.name for p in china.mentioned(text)] == expected


def test_the_city_lookup_leaves_out_the_home_city_and_its_districts():
    from intents.rasa_project import pack_names

    names = pack_names()["china_places"]
    words = {w for name, aliases in names.items() for w in [name, *aliases]}
    assert "乌鲁木齐市" in words and "乌市" in words and "北京" in words
    assert not {"克拉玛依", "克拉玛依市", "独山子", "乌尔禾"} & words


# --- travel ----------------------------------------------------------------------------------


async def test_a_destination_the_city_serves_gets_its_timetable():
    reply = await answer("train_schedule", "去乌市的火车几点", city="乌市")
    assert "克拉玛依—乌鲁木齐动车" in reply.text and "D2701" in reply.text


async def test_a_flight_by_destination_needs_no_flight_number():
    reply = await answer("flight_routes", "克拉玛依飞北京的飞机几点起飞")
    assert "HU7347" in reply.text


async def test_a_destination_without_a_direct_route_is_told_plainly_with_the_way_via_the_hub():
    reply = await answer("flight_routes", "去杭州的机票")
    assert "没有直达杭州的航班" in reply.text and "乌鲁木齐" in reply.text


async def test_a_trip_that_does_not_touch_the_city_is_sent_where_it_can_be_answered():
    reply = await answer("train_schedule", "郑州到西安的火车票")
    assert "郑州到西安" in reply.text and "12306" in reply.text


async def test_coming_to_the_city_is_not_mistaken_for_leaving_it():
    reply = await answer("flight_routes", "上海飞克拉玛依的航班")
    assert "CZ6883" in reply.text


async def test_another_citys_weather_says_what_the_assistant_covers():
    reply = await answer("weather_forecast", "北京明天冷不冷", city="北京")
    assert "只能查询克拉玛依市各区的天气" in reply.text and "北京" in reply.text


async def test_the_citys_own_weather_is_answered_even_if_named_as_a_city():
    reply = await answer("weather_forecast", "克拉玛依今天几度", city="克拉玛依")
    assert "℃" in reply.text and "只能查询" not in reply.text


# --- symptom → department --------------------------------------------------------------------


async def test_a_symptom_names_the_department_and_offers_booking_it():
    reply = await answer("symptom_triage", "拉肚子好几天了")
    assert "消化内科" in reply.text and "不能代替医生诊断" in reply.text
    payloads = [b["payload"] for b in reply.buttons]
    assert payloads and all(p.startswith("/hospital_appointment") and "消化内科" in p for p in payloads)


async def test_a_childs_fever_goes_to_paediatrics():
    reply = await answer("symptom_triage", "娃娃发烧咳嗽去哪看")
    assert "【儿科】" in reply.text


async def test_urgent_signs_come_first_with_120():
    reply = await answer("symptom_triage", "我爸突然胸痛喘不上气")
    assert reply.text.startswith("这可能是急症") and "120" in reply.text


async def test_no_symptom_named_asks_what_is_wrong():
    reply = await answer("symptom_triage", "看病挂什么科")
    assert "哪里不舒服" in reply.text


# --- where is, how to get there --------------------------------------------------------------


async def test_where_is_an_office_gives_its_address_and_bus():
    reply = await answer("place_directions", "税务局在哪")
    assert "准噶尔路66号" in reply.text and "准噶尔路东" in reply.text


async def test_from_one_place_to_another_plans_the_bus():
    reply = await answer("place_directions", "从万达广场到火车站怎么走")
    assert reply.text.startswith("从万达广场到火车站") and "路" in reply.text


# --- scams and breakdowns: the numbers first ---------------------------------------------------


async def test_a_scam_in_progress_hears_96110_before_anything_else():
    reply = await answer("fraud_warning", "有人打电话说我的卡涉嫌洗钱要我转到安全账户")
    assert reply.text.splitlines()[0].count("96110") == 1 and "110" in reply.text.splitlines()[0]


async def test_a_breakdown_hears_the_safety_steps_and_12122_first():
    reply = await answer("road_rescue", "高速上车坏了")
    assert "双闪" in reply.text.splitlines()[0] and "12122" in reply.text.splitlines()[0]


# --- did you mean ----------------------------------------------------------------------------


def test_did_you_mean_offers_the_plausible_services_with_the_citizens_words():
    ranking = [
        {"name": "nlu_fallback", "confidence": 0.25},
        {"name": "bill_query", "confidence": 0.22},
        {"name": "bill_payment", "confidence": 0.18},
        {"name": "greet", "confidence": 0.12},
        {"name": "bill_history", "confidence": 0.03},
    ]
    reply = did_you_mean("水费那个咋弄", ranking, {"utility_kind": "水费"})
    assert reply is not None
    titles = [b["title"] for b in reply.buttons]
    assert titles == ["费用查询", "生活缴费", "都不是"]
    entities = json.loads(reply.buttons[0]["payload"].removeprefix("/bill_query"))
    assert entities == {"utility_kind": "水费", SAID: "水费那个咋弄"}


def test_one_plausible_service_is_a_yes_no_question_that_yes_takes():
    ranking = [{"name": "nlu_fallback", "confidence": 0.3}, {"name": "bill_query", "confidence": 0.2}]
    reply = did_you_mean("水费那个咋弄", ranking, {})
    assert reply is not None and reply.offer  # the bot keeps the first button as the offer "对" takes
    assert reply.text.endswith("您是想办理“费用查询”吗？")
    assert [b["title"] for b in reply.buttons] == ["费用查询", "都不是"]
    assert not did_you_mean("水费那个咋弄", [*ranking, {"name": "bill_payment", "confidence": 0.2}], {}).offer


def test_nothing_plausible_gives_no_did_you_mean():
    assert did_you_mean("写首诗", [{"name": "bill_query", "confidence": 0.04}], {}) is None
