"""What a form asks: which service the question is for, why it needs the answer, and date choices that
all read the same way (issue 12)."""

from __future__ import annotations

from datetime import datetime

from intents import slots
from intents.runtime import Context, pack
from intents.services import catalogue

NOW = datetime(2026, 11, 25, 10, 0)  # a Wednesday


def ctx(service_id: str) -> Context:
    return Context(
        slots={},
        citizen_id=None,
        conversation_id="t",
        text="",
        now=NOW,
        pack=pack(),
        sessions=None,  # type: ignore[arg-type]  # asking reads no database
        service=catalogue().service(service_id),
    )


async def test_a_question_names_its_service_and_says_why_an_id_number_is_needed():
    question, _ = await slots.ask("id_number", ctx("social_security_card_apply"))
    assert question.startswith("社保卡申领：") and "18位身份证号码" in question and "核对您本人" in question


async def test_a_service_asks_in_its_own_words_where_the_generic_question_would_mislead():
    question, _ = await slots.ask("bus_stop", ctx("taxi_call"))
    assert question.startswith("电召出租车：") and "上车" in question and "等车" not in question


async def test_a_taxi_goes_to_an_address_the_stop_list_does_not_have():
    check = await slots.validate("bus_stop", "石油大学北门", ctx("taxi_call"))
    assert check.value == "石油大学北门"
    assert (await slots.validate("bus_stop", "幸福小区3号楼", ctx("taxi_call"))).value == "幸福小区3号楼"
    assert (await slots.validate("bus_stop", "13899012345", ctx("taxi_call"))).value is None  # no address
    # a bus stop is still one of the city's stops
    assert (await slots.validate("bus_stop", "幸福小区3号楼", ctx("bus_stop_lines"))).value is None


async def test_date_buttons_all_read_month_day_and_weekday():
    _question, buttons = await slots.ask("date", ctx("hospital_appointment"))
    titles = [b["title"] for b in buttons]
    assert titles == ["今天 11月25日（周三）", "明天 11月26日（周四）", "后天 11月27日（周五）", "11月28日（周六）"]


async def test_a_question_offers_every_choice_not_the_first_ten():
    context = ctx("hospital_appointment")
    context.slots["hospital"] = "克拉玛依市人民医院"
    _question, buttons = await slots.ask("department", context)
    titles = [b["title"] for b in buttons]
    assert len(titles) == 20 and "眼科" in titles and "口腔科" in titles  # the 12th and 14th departments
