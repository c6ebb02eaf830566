"""How the assistant talks, across services: discovery, follow-ups, Chinese forms of input."""

from __future__ import annotations

from tests.conftest import Chat


async def test_family_menu_then_a_family_lists_its_services(chat: Chat):
    await chat.say("你能做什么")
    # the families are the buttons (numbered lines on SMS/WeChat), not listed a second time in the text
    assert "项城市服务" in chat.text and len(chat.buttons) == 12 and "1. " not in chat.text
    await chat.press("社保公积金")
    assert "公积金" in chat.text and len(chat.buttons) >= 5


async def test_keyword_search_lists_matching_services(chat: Chat):
    await chat.say("公积金")
    titles = [b["title"] for b in chat.buttons]
    assert any("公积金" in t for t in titles), chat.text


async def test_follow_up_reuses_the_last_question(chat: Chat):
    await chat.say("独山子区明天天气怎么样")
    assert "独山子区明天" in chat.text
    await chat.say("那后天呢？")
    assert "独山子区后天" in chat.text


async def test_full_width_digits_and_traditional_characters(chat: Chat):
    await chat.say("１２路公車到哪了")
    assert "12路" in chat.text and "在运行" in chat.text


async def test_a_form_answer_can_be_a_partial_name(chat: Chat):
    await chat.say("我想挂明天上午的号")
    assert "哪家医院" in chat.text
    await chat.say("中心医院")
    assert ("科室" in chat.text and "克拉玛依市中心医院" not in chat.text) or "科室" in chat.text


async def test_requests_that_are_no_city_service_are_declined(chat: Chat):
    for text in ("给我讲个笑话", "红烧肉怎么做", "推荐一只股票"):
        await chat.say(text)
        assert "暂时帮不上忙" in chat.text, text
        assert chat.buttons
