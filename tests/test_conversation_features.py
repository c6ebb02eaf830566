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


async def test_a_form_question_names_its_service_and_why(chat: Chat):
    await chat.say("我要办失业登记")
    assert "失业登记：" in chat.text and "身份证" in chat.text and "核对您本人" in chat.text, chat.text


async def test_the_same_question_is_not_asked_a_third_time(chat: Chat, stack):
    await chat.say("我要交燃气费")
    assert "缴费户号" in chat.text
    await chat.say("12345")
    assert "缴费户号" in chat.text and "取消" in chat.text  # asked again, with the way out
    await chat.say("678")
    assert "已退出" in chat.text and "请输入10位缴费户号" not in chat.text, chat.text
    await chat.say("12路到哪了")  # the form is gone: the next request is answered as itself
    assert "12路" in chat.text and "缴费户号" not in chat.text


async def test_what_an_aside_names_is_kept_for_the_form(chat: Chat):
    await chat.say("充话费")
    assert "手机号" in chat.text
    await chat.say("我先问下还剩多少话费 号码13899512345")
    assert "您刚才在办理“手机话费充值”" in chat.text and "充值多少" in chat.text, chat.text
    await chat.say("那充30")
    assert "30" in chat.text and "138" in chat.text and "确认" in chat.text, chat.text


async def test_a_taxi_asks_where_to_pick_up_and_takes_the_address_as_said(chat: Chat):
    await chat.say("叫个车")
    assert "上车" in chat.text and "请确认提交" not in chat.text, chat.text
    await chat.say("石油大学北门")
    assert "请确认提交" in chat.text and "地点：石油大学北门" in chat.text, chat.text


async def test_saying_no_half_way_through_a_form_leaves_it(chat: Chat, stack):
    await chat.say("我要预约补办身份证")
    await chat.say("不约了")
    assert "已退出" in chat.text and "没有为您办理" in chat.text, chat.text


async def test_numbers_spelled_in_chinese_digits_with_spaces_are_read(chat: Chat):
    await chat.say("充话费")
    await chat.say("幺三八 九九零幺 二三四五")
    assert "充值多少" in chat.text, chat.text


async def test_a_correction_asks_the_last_question_again_about_the_right_thing(chat: Chat):
    await chat.say("查学区 枫林社区")
    assert "枫林" in chat.text
    await chat.say("不对，打错了，是光明社区")
    assert "光明" in chat.text and "没太明白" not in chat.text, chat.text


async def test_a_phone_number_given_for_the_pickup_is_kept_as_the_phone(chat: Chat):
    await chat.say("叫个车")
    await chat.say("幺三八 九九零幺 二三四五")  # spoken digits, grouped
    assert "请确认提交" not in chat.text and "上车" in chat.text, chat.text  # still asks where
    await chat.say("友谊馆北门")
    assert "地点：友谊馆北门" in chat.text and "联系电话：138****2345" in chat.text, chat.text
