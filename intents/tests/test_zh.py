"""Table-driven tests for intents.zh (Chinese phrasing → values)."""

from __future__ import annotations

from datetime import date

import pytest

from intents.zh import (
    extract_int,
    identifier_digits,
    normalize_text,
    parse_clock,
    parse_date,
    parse_int,
    parse_period,
)

WED = date(2026, 11, 25)  # a Wednesday
NEW_YEARS_EVE_EVE = date(2026, 12, 30)  # a Wednesday, for year-end rollover
LEAP_FEB = date(2028, 2, 10)  # 2028 is a leap year
PLAIN_FEB = date(2027, 2, 10)  # 2027 is not


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("１２路", "12路"),
        ("ＡＢ线", "AB线"),
        ("１９：３０", "19:30"),
        ("醫院", "医院"),
        ("預約門診", "预约门诊"),
        ("電費", "电费"),
        ("銀行排隊幾號", "银行排队几号"),
        ("兩張車票還有嗎", "两张车票还有吗"),
        ("撥打電話", "拨打电话"),
        ("下週三下午", "下周三下午"),
        ("  明天   上午\t十點 ", "明天 上午 十点"),
        ("明天\u3000上午", "明天 上午"),
        ("我想挂明天上午的号", "我想挂明天上午的号"),  # simplified text is left alone
        ("著名的医院，干净", "著名的医院,干净"),
        ("", ""),
    ],
)
def test_normalize_text(text: str, expected: str) -> None:
    assert normalize_text(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("十二", 12),
        ("二十", 20),
        ("二十五", 25),
        ("一百零五", 105),
        ("一百〇五", 105),
        ("一百五", 150),
        ("一百五十", 150),
        ("两千三", 2300),
        ("一千零一十", 1010),
        ("一万五", 15000),
        ("两万三千五百", 23500),
        ("两", 2),
        ("俩", 2),
        ("兩", 2),
        ("〇", 0),
        ("零", 0),
        ("十", 10),
        ("12", 12),
        ("１２", 12),
        ("3", 3),
        (" 3 ", 3),
        ("二〇二六", 2026),
        ("幺零三", 103),
        ("叁拾", 30),
        ("十十", None),
        ("二十五五", None),
        ("一百零", None),
        ("三四", None),
        ("一3", None),
        ("几", None),
        ("十二路", None),
        ("abc", None),
        ("3.5", None),
        ("", None),
    ],
)
def test_parse_int(text: str, expected: int | None) -> None:
    assert parse_int(text) == expected


@pytest.mark.parametrize(
    ("text", "unit", "expected"),
    [
        ("十二路公交", "路", 12),
        ("两张票", "张", 2),
        ("3个人", "个", 3),
        ("3 个人", "个", 3),
        ("１２路车几点到", "路", 12),
        ("兩張票", "張", 2),
        ("兩張票", "张", 2),
        ("坐一百零五路", "路", 105),
        ("我要买二十张", "张", 20),
        ("万一3个人来", "个", 3),
        ("我们三四个人", "个", None),
        ("十二三个人", "个", None),
        ("买票", "张", None),
        ("12路", "张", None),
    ],
)
def test_extract_int(text: str, unit: str, expected: int | None) -> None:
    assert extract_int(text, unit) == expected


def test_extract_int_rejects_empty_unit() -> None:
    with pytest.raises(ValueError):
        extract_int("12路", " ")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("今天", date(2026, 11, 25)),
        ("今日", date(2026, 11, 25)),
        ("明天", date(2026, 11, 26)),
        ("明日", date(2026, 11, 26)),
        ("后天", date(2026, 11, 27)),
        ("後天", date(2026, 11, 27)),
        ("大后天", date(2026, 11, 28)),
        ("我想挂明天上午的号", date(2026, 11, 26)),
        ("周三", date(2026, 11, 25)),  # today counts
        ("星期三", date(2026, 11, 25)),
        ("礼拜三", date(2026, 11, 25)),
        ("禮拜五下午", date(2026, 11, 27)),
        ("周二", date(2026, 12, 1)),  # already past this week → next week's
        ("周一", date(2026, 11, 30)),
        ("星期天", date(2026, 11, 29)),
        ("周日", date(2026, 11, 29)),
        ("礼拜天", date(2026, 11, 29)),
        ("周末", date(2026, 11, 28)),
        ("下周三", date(2026, 12, 2)),
        ("下星期三", date(2026, 12, 2)),
        ("下个礼拜一", date(2026, 11, 30)),
        ("下週日", date(2026, 12, 6)),
        ("下下周一", date(2026, 12, 7)),
        ("上周五", date(2026, 11, 20)),
        ("这周五", date(2026, 11, 27)),
        ("本周五", date(2026, 11, 27)),
        ("这周一", date(2026, 11, 23)),  # this calendar week's, even if past
        ("查一下周三的号", date(2026, 11, 25)),  # 一下 is not 下周
        ("11月28日", date(2026, 11, 28)),
        ("11月28号", date(2026, 11, 28)),
        ("11.28", date(2026, 11, 28)),
        ("11/28", date(2026, 11, 28)),
        ("１１月２８號", date(2026, 11, 28)),
        ("十一月二十八号", date(2026, 11, 28)),
        ("3月5日", date(2027, 3, 5)),  # already past this year → next year
        ("28号", date(2026, 11, 28)),
        ("28日的电影", date(2026, 11, 28)),
        ("二十八号", date(2026, 11, 28)),
        ("25号", date(2026, 11, 25)),
        ("24号", date(2026, 12, 24)),  # past this month → next month
        ("31号", date(2026, 12, 31)),  # November has no 31st
        ("下个月5号", date(2026, 12, 5)),
        ("2026-11-28", date(2026, 11, 28)),
        ("2026/12/01", date(2026, 12, 1)),
        ("2026年11月28日", date(2026, 11, 28)),
        ("二〇二六年十一月二十八日", date(2026, 11, 28)),
        ("帮我约2026年12月3号下午", date(2026, 12, 3)),
        ("坐12号线明天去", date(2026, 11, 26)),
        ("12号线", None),
        ("3号窗口", None),
        ("现在叫到28号了吗", None),
        ("一周三次", None),
        ("11.28元", None),
        ("13月1日", None),
        ("2027年2月29日", None),
        ("下午三点", None),
        ("我想挂号", None),
        ("", None),
    ],
)
def test_parse_date(text: str, expected: date | None) -> None:
    assert parse_date(text, WED) == expected


@pytest.mark.parametrize(
    ("text", "today", "expected"),
    [
        ("明天", NEW_YEARS_EVE_EVE, date(2026, 12, 31)),
        ("后天", NEW_YEARS_EVE_EVE, date(2027, 1, 1)),
        ("1月2日", NEW_YEARS_EVE_EVE, date(2027, 1, 2)),
        ("3号", NEW_YEARS_EVE_EVE, date(2027, 1, 3)),
        ("下周一", NEW_YEARS_EVE_EVE, date(2027, 1, 4)),
        ("下个月5号", NEW_YEARS_EVE_EVE, date(2027, 1, 5)),
        ("周四", NEW_YEARS_EVE_EVE, date(2026, 12, 31)),
        ("29号", LEAP_FEB, date(2028, 2, 29)),
        ("2月29日", LEAP_FEB, date(2028, 2, 29)),
        ("29号", PLAIN_FEB, date(2027, 3, 29)),  # no 29 Feb in 2027
        ("2月29日", PLAIN_FEB, date(2028, 2, 29)),  # next leap year
        ("2028年2月29日", PLAIN_FEB, date(2028, 2, 29)),
        ("周末", date(2026, 11, 29), date(2026, 11, 29)),  # already the weekend
    ],
)
def test_parse_date_rollover(text: str, today: date, expected: date) -> None:
    assert parse_date(text, today) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("上午", "am"),
        ("明天早上", "am"),
        ("早晨八点", "am"),
        ("上半天", "am"),
        ("下午", "pm"),
        ("今天晚上", "pm"),
        ("傍晚", "pm"),
        ("下半天", "pm"),
        ("明晚", "pm"),
        ("下午不行，上午吧", "pm"),  # first mentioned wins
        ("中午", None),
        ("上下午都行", None),
        ("三点", None),
        ("", None),
    ],
)
def test_parse_period(text: str, expected: str | None) -> None:
    assert parse_period(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("下午三点", "15:00"),
        ("晚上7点半", "19:30"),
        ("晚上七点半", "19:30"),
        ("三点一刻", "15:15"),  # bare 1-6 → afternoon
        ("三点三刻", "15:45"),
        ("两点", "14:00"),
        ("一点半", "13:30"),
        ("一点钟", "13:00"),
        ("10点", "10:00"),
        ("7点", "07:00"),  # bare 7-12 kept
        ("十二点", "12:00"),
        ("19:30", "19:30"),
        ("19：30", "19:30"),
        ("１９：３０的场次", "19:30"),
        ("3:30", "15:30"),
        ("03:30", "03:30"),
        ("上午9:30", "09:30"),
        ("下午3:30", "15:30"),
        ("上午10点半", "10:30"),
        ("早上7点", "07:00"),
        ("上午6点", "06:00"),
        ("八点四十", "08:40"),
        ("8点05", "08:05"),
        ("8点零五分", "08:05"),
        ("八点三十分", "08:30"),
        ("十五时三十分", "15:30"),
        ("晚上12点", "00:00"),
        ("凌晨2点", "02:00"),
        ("中午1点", "13:00"),
        ("下午15点", "15:00"),
        ("晚上八點", "20:00"),
        ("明天下午3点的电影", "15:00"),
        ("明天上午去医院，三点看电影", "15:00"),  # period word from another clause is ignored
        ("8点，晚上的", "08:00"),
        ("8点晚上的场", "20:00"),  # period word after the time, same clause
        ("2026-11-28 19:30", "19:30"),
        ("便宜一点", None),
        ("快一点儿", None),
        ("三点五公里", None),
        ("第三点", None),
        ("25点", None),
        ("几点", None),
        ("明天", None),
        ("", None),
    ],
)
def test_parse_clock(text: str, expected: str | None) -> None:
    assert parse_clock(text) == expected


@pytest.mark.parametrize(
    ("typed", "read"),
    [
        ("幺三八 九九零幺 二三四五", "13899012345"),
        ("户号1134 412 157", "户号1134412157"),
        ("1134-412-157", "1134412157"),
        ("650203 19900101 1234", "650203199001011234"),
        ("2026-12-08", "2026-12-08"),  # a date keeps its dashes
        ("交暖气费 1134412157 2000", "交暖气费 1134412157 2000"),  # an account, then an amount
        ("买三四个", "买三四个"),  # "three or four", not a number
        ("十二路 3站", "十二路 3站"),
    ],
)
def test_identifiers_are_read_as_people_type_them(typed, read):
    assert identifier_digits(typed) == read
