import pytest

from channels.sms.keywords import keyword


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("TD", "stop"), ("td", "stop"), ("ＴＤ", "stop"), (" t ", "stop"), ("退订", "stop"), ("退订。", "stop"),
        ("STOP", "stop"), ("unsubscribe", "stop"), ("订阅", "start"), ("start", "start"),
        ("帮助", "help"), ("HELP", "help"),
        ("TD是什么意思", None), ("我想退订空气质量预警", None), ("12路到哪了", None), ("", None),
    ],
)  # fmt: skip
def test_keywords_match_whole_messages_only(text, expected):
    assert keyword(text) == expected
