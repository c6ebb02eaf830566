from channels.base import Reply
from channels.sms.render import render_sms
from channels.sms.segments import MORE, segment_count
from channels.textmenu import choice, numbered, wants_more

SIGNATURE = "【克拉玛依市民服务】"


def test_buttons_become_a_numbered_menu_across_the_turn():
    replies = [
        Reply("请选择医院：", [{"title": "市人民医院", "payload": '/inform{"hospital":"市人民医院"}'}]),
        Reply("或者：", [{"title": "中心医院", "payload": '/inform{"hospital":"中心医院"}'}]),
    ]
    sms = render_sms(replies, SIGNATURE, max_segments=3)
    assert sms.text == f"{SIGNATURE}请选择医院：\n回复1 市人民医院\n或者：\n回复2 中心医院"
    assert sms.payloads == ['/inform{"hospital":"市人民医院"}', '/inform{"hospital":"中心医院"}']
    assert sms.segments == 1 and sms.rest == ""


def test_a_later_number_picks_that_buttons_payload():
    payloads = numbered([Reply("选", [{"title": "甲", "payload": "/a"}, {"title": "乙", "payload": "/b"}])]).payloads
    assert choice("2", payloads) == "/b"
    assert choice("１", payloads) == "/a"  # full-width digit from a Chinese keyboard
    assert choice(" 1。", payloads) == "/a"
    assert choice("3", payloads) is None and choice("0", payloads) is None
    assert choice("12路到哪了", payloads) is None


def test_long_answers_are_cut_and_record_their_segment_count():
    text = "".join(f"第{i}站，" for i in range(100))
    sms = render_sms([Reply(text)], SIGNATURE, max_segments=2)
    assert sms.segments == 2 == segment_count(sms.text)
    assert sms.text.startswith(SIGNATURE) and sms.text.endswith(MORE)
    assert sms.text[len(SIGNATURE) : -len(MORE)] + sms.rest == text


def test_more_words():
    assert wants_more("更多") and wants_more(" 更多。") and wants_more("more")
    assert not wants_more("更多公交线路")


def test_a_long_menu_is_cut_between_lines_never_inside_one():
    # a family with 16 services: the third segment ends before "回复15 …", which goes whole with "更多"
    services = ["预约挂号", "取消挂号", "门诊排班查询", "医生出诊查询", "药品信息查询", "疫苗接种预约", "疫苗知识查询"]
    services += ["夜间值班药店", "医保账户查询", "医院信息查询", "体检预约", "检验报告查询", "急救指南", "无偿献血"]
    services += ["心理援助热线", "智能导诊"]
    buttons = [{"title": s, "payload": f"/s{i}"} for i, s in enumerate(services)]
    sms = render_sms([Reply("医疗健康（16项服务），请选择，或直接说出您的需要：", buttons)], "【市民服务】", 3)
    shown = sms.text.removeprefix("【市民服务】").removesuffix(MORE)
    assert shown.endswith("\n") and sms.rest.startswith("回复")
    lines = [line for line in shown.splitlines() if line.startswith("回复")]
    assert all(line.split(" ", 1)[1] in services for line in lines)  # every name whole
    assert shown + sms.rest == numbered([Reply("医疗健康（16项服务），请选择，或直接说出您的需要：", buttons)]).text
