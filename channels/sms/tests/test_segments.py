import pytest

from channels.sms.segments import MORE, PART, SINGLE, cut, segment_count, units


@pytest.mark.parametrize(
    ("text", "segments"),
    [
        ("", 1),
        ("您好", 1),
        ("字" * SINGLE, 1),  # 70 Chinese characters: one segment, whatever their UTF-8 size (210 bytes)
        ("字" * (SINGLE + 1), 2),
        ("字" * (PART * 2), 2),
        ("字" * (PART * 2 + 1), 3),
        ("😀" * 35, 1),  # emoji take two UCS-2 units each
        ("😀" * 36, 2),
    ],
)
def test_segments_are_counted_in_ucs2_units(text, segments):
    assert segment_count(text) == segments


def test_short_answers_go_out_whole_with_the_signature():
    result = cut("12路约3分钟到站", max_segments=2, signature="【克拉玛依市民服务】")
    assert result.sent == "【克拉玛依市民服务】12路约3分钟到站" and result.rest == "" and result.segments == 1


@pytest.mark.parametrize("max_segments", [1, 2, 3])
def test_long_answers_are_cut_to_the_budget_and_nothing_is_lost(max_segments):
    text = "".join(f"第{i}站，" for i in range(200))
    signature = "【克拉玛依市民服务】"
    result = cut(text, max_segments=max_segments, signature=signature)
    assert result.segments <= max_segments
    assert result.sent.endswith(MORE)
    sent_text = result.sent.removeprefix(signature).removesuffix(MORE)
    assert sent_text + result.rest == text


def test_an_emoji_is_never_split():
    text = "好" * 60 + "😀" * 20
    result = cut(text, max_segments=1)
    assert units(result.sent) <= SINGLE
    assert (result.sent.removesuffix(MORE) + result.rest) == text
