"""How residents ask for a person, or for their complaint's progress (citizens-voice.md: short SMS,
pinyin slips, traditional characters), and the words that only look like it."""

from __future__ import annotations

import pytest

from gateway.handoff.responders import asks_for_person
from gateway.handoff.workorders import asks_for_progress
from intents.zh import normalize_text

PERSON = [
    "转人工",
    "专人工",
    "人工",
    "人工！",
    "客服？",
    "人工客服",
    "我要找真人",
    "轉人工",
    "麻烦你帮我转真人客服",
    "怎么打人工客服电话",
]
NOT_PERSON = ["我想问人工费多少", "人工降雨什么时候", "拨打人社局电话", "12路到哪了", "人工湖公园几点开门"]
PROGRESS = ["我的投诉进度", "我的投诉处理得怎么样了", "投诉进度", "工单进度查一下", "我反映的诉求的进展", "我的建议"]
NOT_PROGRESS = ["我要投诉", "投诉物业乱收费", "提个建议", "查进度 SQ2611250012"]


@pytest.mark.parametrize("text", PERSON)
def test_asking_for_a_person(text: str) -> None:
    assert asks_for_person(text)


@pytest.mark.parametrize("text", NOT_PERSON)
def test_not_asking_for_a_person(text: str) -> None:
    assert not asks_for_person(text)


@pytest.mark.parametrize("text", PROGRESS)
def test_asking_for_progress(text: str) -> None:
    assert asks_for_progress(normalize_text(text))


@pytest.mark.parametrize("text", NOT_PROGRESS)
def test_not_asking_for_progress(text: str) -> None:
    assert not asks_for_progress(normalize_text(text))
