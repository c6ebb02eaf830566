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
