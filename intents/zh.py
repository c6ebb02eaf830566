"""Turn Chinese user phrasing into values: normalised text, integers, dates, am/pm and clock times.

Every parser normalises its input first (see :func:`normalize_text`), so traditional characters
(醫院, 兩張, 週三) and full-width digits (１２路, １９：３０) are accepted everywhere.

Resolution rules for ambiguous phrasing (all "future-oriented", because users book things):

* Dates
  - 周三 / 星期三 / 礼拜三 with no prefix: the next Wednesday on or after ``today`` (i.e. this
    week's if it is today or still ahead, otherwise next week's). 周末 = the coming Saturday, or
    ``today`` when ``today`` is already Saturday/Sunday.
  - 这周X / 本周X: this calendar week's day X (weeks start Monday), even if already past.
    下周X / 下个星期X: next calendar week's; 下下周X: the week after; 上周X: last week's.
  - 11月28日 / 11.28 / 11/28 without a year: this year, or the first later year in which the
    date exists and is not past (so 2月29日 may resolve to the next leap year).
  - 28号 / 28日: this month if not past, otherwise the first following month that has that day.
    A bare "N号" is skipped when it clearly is not a date: 第N号, 排到/叫到/轮到N号, or N号
    followed by 线/窗口/楼/柜台/门/厅/房/床/车/院/... (line 12, window 3, hall 5).
  - 下个月N号: day N of next month; 这个月/本月N号: day N of this month.
  - Explicit dates that do not exist (2027年2月29日, 13月1日) are ignored.
  - The first date mentioned in the text wins.
* Clock times
  - A period word in the same clause (the nearest one before the time, else the first after it:
    下午三点, 8点晚上的场) shifts the hour: 下午/傍晚/晚上 1-11 → +12; 晚上12点 → 00:00;
    中午1-5点 → 13-17; 凌晨12点 → 00:00; 深夜/半夜 8-11 → +12. Clauses end at ,.;!?。、
    so "明天上午去医院，三点看电影" reads 三点 without 上午.
  - Without a period word, hours 1-6 are taken as afternoon (三点一刻 → 15:15), matching
    cinema/office hours; 7-12 are kept (7点 → 07:00, 10点 → 10:00). Digital times follow the
    same rule unless written with a leading zero (3:30 → 15:30, 03:30 → 03:30).
  - "一点" with no period word, minutes or 钟 is read as "a little" (便宜一点), not 1 o'clock.
  - "三点五" (single bare digit after 点, no 分) is read as 3.5, not a time.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date, timedelta
from functools import lru_cache

from opencc import OpenCC

__all__ = [
    "extract_int",
    "normalize_text",
    "parse_clock",
    "parse_date",
    "parse_int",
    "parse_period",
]

# --------------------------------------------------------------------------- normalisation

# U+FF01..U+FF5E are the full-width forms of ASCII U+0021..U+007E; U+3000 is the ideographic space.
_FULLWIDTH = {cp: cp - 0xFEE0 for cp in range(0xFF01, 0xFF5F)}
_FULLWIDTH[0x3000] = 0x20
_WHITESPACE = re.compile(r"\s+")
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_CACHEABLE_LEN = 256


@lru_cache(maxsize=1)
def _t2s() -> OpenCC:
    return OpenCC("t2s")


@lru_cache(maxsize=4096)
def _normalize_cached(text: str) -> str:
    return _normalize(text)


def _normalize(text: str) -> str:
    text = text.translate(_FULLWIDTH)
    if _CJK.search(text):
        text = _t2s().convert(text)
    return _WHITESPACE.sub(" ", text).strip()


def normalize_text(text: str) -> str:
    """Full-width ASCII → half-width, traditional → simplified Chinese, collapse whitespace, strip."""
    if len(text) <= _CACHEABLE_LEN:
        return _normalize_cached(text)
    return _normalize(text)


# --------------------------------------------------------------------------- integers

_DIGITS: dict[str, int] = {
    "〇": 0,
    "零": 0,
    "一": 1,
    "壹": 1,
    "幺": 1,
    "二": 2,
    "贰": 2,
    "两": 2,
    "俩": 2,
    "三": 3,
    "叁": 3,
    "四": 4,
    "肆": 4,
    "五": 5,
    "伍": 5,
    "六": 6,
    "陆": 6,
    "七": 7,
    "柒": 7,
    "八": 8,
    "捌": 8,
    "九": 9,
    "玖": 9,
}
_SMALL_UNITS: dict[str, int] = {"十": 10, "拾": 10, "百": 100, "佰": 100, "千": 1000, "仟": 1000}
_BIG_UNITS: dict[str, int] = {"万": 10_000, "亿": 100_000_000}
_ZEROS = frozenset("〇零")
_NUMBER_RUN = re.compile("[0-9" + "".join([*_DIGITS, *_SMALL_UNITS, *_BIG_UNITS]) + "]+")
_TOKEN = re.compile(r"[0-9]+|.", re.DOTALL)


_DIGITISH = "[0-9〇零一二三四五六七八九幺]"
_GROUPED_DIGITS = re.compile(rf"{_DIGITISH}+(?:[ \-－—]+{_DIGITISH}+)+")
_SEPARATORS = re.compile(r"[ \-－—]+")
_SPELLED_NUMBER = re.compile(f"{_DIGITISH}{{5,}}")
MIN_GROUPED_IDENTIFIER = 9  # account 10, phone 11, ID 18 digits; a date (2026-12-08) has 8
MAX_GROUP = 8  # people group an identifier 3-4-4 or 6-8-4; a longer group is a whole number of its own


def identifier_digits(text: str) -> str:
    """An identifier as people type or say it: "幺三八 九九零幺 2345" and "1134-412-157" become plain
    digits. Only runs of five or more digits are read so, so "三四个" and "十二路" stay words."""

    def joined(match: re.Match[str]) -> str:
        groups = _SEPARATORS.split(match.group())
        digits = "".join(groups)
        whole = len(digits) >= MIN_GROUPED_IDENTIFIER and max(map(len, groups)) <= MAX_GROUP
        return digits if whole else match.group()

    text = _GROUPED_DIGITS.sub(joined, text)
    return _SPELLED_NUMBER.sub(lambda m: "".join(str(_DIGITS.get(c, c)) for c in m.group()), text)


def bot_text(text: str) -> str:
    """What the understanding reads: normalised, identifiers as plain digits (the citizen's own words are
    kept as typed elsewhere)."""
    return identifier_digits(normalize_text(text))


def _digit_sequence(tokens: list[str]) -> int | None:
    """一二三 → 123, 二〇二六 → 2026; no units involved."""
    if len(tokens) == 1:
        tok = tokens[0]
        return int(tok) if tok.isdigit() and tok.isascii() else _DIGITS.get(tok)
    if any(not (t in _DIGITS and t not in "两俩") for t in tokens):
        return None  # mixed scripts (一3) or 两/俩 inside a digit string
    if _is_approximation(tokens):
        return None
    return int("".join(str(_DIGITS[t]) for t in tokens))


def _is_approximation(tokens: list[str] | str) -> bool:
    """三四 / 七八: two consecutive Chinese digits mean "three or four", not 34."""
    return (
        len(tokens) == 2
        and all(t in _DIGITS and t not in _ZEROS for t in tokens)
        and _DIGITS[tokens[1]] == _DIGITS[tokens[0]] + 1
    )


def _with_units(tokens: list[str]) -> int | None:
    """Positional Chinese numerals: 二十五, 一百零五, 一百五 (=150), 两万三千, 3千."""
    total = 0  # finished 万/亿 sections
    section = 0  # value inside the current section
    num: int | None = None  # pending digit
    last_small: int | None = None
    last_big: int | None = None
    zero_seen = False
    for tok in tokens:
        if tok.isascii() and tok.isdigit():
            if num is not None:
                return None
            num = int(tok)
        elif tok in _ZEROS:
            if num is not None:
                return None
            zero_seen = True
        elif tok in _DIGITS:
            if num is not None:
                return None
            num = _DIGITS[tok]
        elif tok in _SMALL_UNITS:
            unit = _SMALL_UNITS[tok]
            if last_small is not None and unit >= last_small:
                return None
            if num is None:
                if unit == 10 or (section == 0 and not zero_seen):
                    num = 1  # 十二, 一百十 (=110), 百 (=100)
                else:
                    return None
            section += num * unit
            num, last_small, zero_seen = None, unit, False
        elif tok in _BIG_UNITS:
            unit = _BIG_UNITS[tok]
            if last_big is not None and unit >= last_big:
                return None
            value = section + (num or 0)
            if value == 0:
                if total or zero_seen:
                    return None
                value = 1  # 万 alone
            total += value * unit
            section, num, last_small, last_big, zero_seen = 0, None, None, unit, False
        else:
            return None
    if zero_seen and num is None:
        return None  # trailing 零 (一百零)
    if num is not None:
        # Elided lower unit: 一百五 = 150, 两千三 = 2300, 一万五 = 15000 (but 一百零五 = 105).
        before = tokens[-2] if len(tokens) > 1 else ""
        if num < 10 and before in _SMALL_UNITS and last_small and last_small >= 100:
            section += num * (last_small // 10)
        elif num < 10 and before in _BIG_UNITS and last_big:
            total += num * (last_big // 10)
        else:
            section += num
    return total + section


def _to_int(s: str) -> int | None:
    """Parse an already-normalised string that must be exactly one number."""
    if not s:
        return None
    if s.isascii() and s.isdigit():
        return int(s)
    tokens = _TOKEN.findall(s)
    if any(t in _SMALL_UNITS or t in _BIG_UNITS for t in tokens):
        return _with_units(tokens)
    return _digit_sequence(tokens)


def parse_int(text: str) -> int | None:
    """Whole text as a non-negative integer (十二 → 12, 一百零五 → 105, 两 → 2, １２ → 12), else None."""
    return _to_int(normalize_text(text))


def extract_int(text: str, unit: str) -> int | None:
    """First number immediately followed by ``unit`` (("十二路公交", "路") → 12), else None."""
    norm_unit = normalize_text(unit)
    if not norm_unit:
        raise ValueError("unit must not be empty")
    pattern = re.compile(f"({_NUMBER_RUN.pattern}) ?{re.escape(norm_unit)}")
    for match in pattern.finditer(normalize_text(text)):
        run = match.group(1)
        for start in range(len(run)):  # 万一3个 → try 万一3, 一3, 3
            if _is_approximation(run[start:]):
                break  # 三四个, 十二三个: a range, not one number
            value = _to_int(run[start:])
            if value is not None:
                return value
    return None


# --------------------------------------------------------------------------- dates

_CN_SMALL = "〇零一二两三四五六七八九十"
_NUM = rf"(?:[0-9]{{1,2}}|[{_CN_SMALL}]{{1,3}})"  # month, day or hour number
_NOT_AFTER_NUM = rf"(?<![0-9{_CN_SMALL}百千])"
_NOT_BEFORE_NUM = rf"(?![0-9{_CN_SMALL}])"
_YEAR = "(?:[0-9]{4}|[〇零一二三四五六七八九]{4})"
_WEEKDAYS = {"一": 0, "二": 1, "三": 2, "四": 3, "五": 4, "六": 5, "日": 6, "天": 6, "末": 5}
_WEEK_OFFSETS = {"下下": 2, "下": 1, "这": 0, "本": 0, "上": -1, "上上": -2}
_RELATIVE_DAYS = {
    "大前天": -3,
    "前天": -2,
    "昨天": -1,
    "昨日": -1,
    "今天": 0,
    "今日": 0,
    "今儿": 0,
    "明天": 1,
    "明日": 1,
    "明儿": 1,
    "后天": 2,
    "大后天": 3,
}
# Things that follow "N号" when it is a line, window, room ... rather than a day of the month.
_NOT_A_DAY_AFTER = "线|窗|楼|柜|门|口|厅|房|床|车|诊|台|座|机|位|桌|屏|馆|院|站|码|牌|地|球|键|厢|病"

_DATE_RE = re.compile(
    "|".join(
        [
            r"(?<![0-9])(?P<iso_y>[0-9]{4})[-/.](?P<iso_m>[0-9]{1,2})[-/.](?P<iso_d>[0-9]{1,2})(?![0-9])",
            rf"{_NOT_AFTER_NUM}(?P<ymd_y>{_YEAR})年(?P<ymd_m>{_NUM})月(?P<ymd_d>{_NUM})(?:日|号)?{_NOT_BEFORE_NUM}",
            rf"{_NOT_AFTER_NUM}(?P<md_m>{_NUM})月(?P<md_d>{_NUM})(?:日|号)?{_NOT_BEFORE_NUM}",
            r"(?<![0-9.:/\-])(?P<dot_m>[0-9]{1,2})[./](?P<dot_d>[0-9]{1,2})(?![0-9./:%]|元|块|角|折|倍|米|公里|斤|分)",
            rf"(?P<mrel>下个?月|这个?月|本月)(?P<mrel_d>{_NUM})(?:日|号)",
            r"(?P<wpre>(?<!一)下下个?|(?<!一)下个?|(?<![早晚])上上个?|(?<![早晚])上个?|这个?|本)?"
            r"(?<![0-9一二两三四五六七八九十几])(?P<wword>周|星期|礼拜)(?P<wday>[一二三四五六日天末1-7])",
            r"(?P<rel>大后天|大前天|后天|前天|明天|明日|明儿|今天|今日|今儿|昨天|昨日)",
            rf"(?<![第排叫])(?<!排到)(?<!叫到)(?<!轮到){_NOT_AFTER_NUM}(?P<day>{_NUM})"
            rf"(?:日|号)(?!{_NOT_A_DAY_AFTER})",
        ]
    )
)


def _safe_date(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _add_months(year: int, month: int, n: int) -> tuple[int, int]:
    index = year * 12 + (month - 1) + n
    return index // 12, index % 12 + 1


def _month_day_from(today: date, month: int, day: int) -> date | None:
    """Month/day without a year: the first occurrence on or after today (leap days included)."""
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return None
    for year in range(today.year, today.year + 9):
        candidate = _safe_date(year, month, day)
        if candidate is not None and candidate >= today:
            return candidate
    return None


def _day_from(today: date, day: int) -> date | None:
    """Day of month only: this month if not past, else the first later month that has the day."""
    if not 1 <= day <= 31:
        return None
    for n in range(13):
        year, month = _add_months(today.year, today.month, n)
        candidate = _safe_date(year, month, day)
        if candidate is not None and candidate >= today:
            return candidate
    return None


def _weekday_date(today: date, prefix: str | None, day_char: str) -> date:
    weekday = int(day_char) - 1 if day_char.isdigit() else _WEEKDAYS[day_char]
    if prefix is None:
        if day_char == "末" and today.weekday() >= 5:
            return today
        return today + timedelta(days=(weekday - today.weekday()) % 7)
    weeks = _WEEK_OFFSETS[prefix.rstrip("个")]
    monday = today - timedelta(days=today.weekday())
    return monday + timedelta(weeks=weeks, days=weekday)


def _resolve_date(m: re.Match[str], today: date) -> date | None:
    g = m.groupdict()
    if g["iso_y"]:
        return _safe_date(int(g["iso_y"]), int(g["iso_m"]), int(g["iso_d"]))
    if g["ymd_y"]:
        year, month, day = _to_int(g["ymd_y"]), _to_int(g["ymd_m"]), _to_int(g["ymd_d"])
        if year is None or month is None or day is None:
            return None
        return _safe_date(year, month, day)
    if g["md_m"]:
        month, day = _to_int(g["md_m"]), _to_int(g["md_d"])
        return None if month is None or day is None else _month_day_from(today, month, day)
    if g["dot_m"]:
        return _month_day_from(today, int(g["dot_m"]), int(g["dot_d"]))
    if g["mrel"]:
        day = _to_int(g["mrel_d"])
        if day is None:
            return None
        year, month = _add_months(today.year, today.month, 1 if g["mrel"].startswith("下") else 0)
        return _safe_date(year, month, day)
    if g["wword"]:
        return _weekday_date(today, g["wpre"], g["wday"])
    if g["rel"]:
        return today + timedelta(days=_RELATIVE_DAYS[g["rel"]])
    day = _to_int(g["day"])
    return None if day is None else _day_from(today, day)


def parse_date(text: str, today: date) -> date | None:
    """First date mentioned in ``text`` (明天, 下周三, 11月28号, 28号, 2026-11-28 ...), else None."""
    for match in _DATE_RE.finditer(normalize_text(text)):
        resolved = _resolve_date(match, today)
        if resolved is not None:
            return resolved
    return None


# --------------------------------------------------------------------------- periods and clock times

_PERIOD_WORDS: dict[str, str | None] = {
    "上下午": None,  # "morning or afternoon": no preference
    "上半天": "am",
    "上午": "am",
    "早上": "am",
    "早晨": "am",
    "清晨": "am",
    "凌晨": "am",
    "今早": "am",
    "明早": "am",
    "午前": "am",
    "午饭": "am",  # a meal booking's half-day: lunch is the morning's ("中午" alone stays unsure)
    "午餐": "am",
    "下半天": "pm",
    "下午": "pm",
    "午后": "pm",
    "傍晚": "pm",
    "晚上": "pm",
    "晚间": "pm",
    "夜里": "pm",
    "夜间": "pm",
    "今晚": "pm",
    "明晚": "pm",
    "晚饭": "pm",
    "晚餐": "pm",
}
_PERIOD_RE = re.compile("|".join(sorted(_PERIOD_WORDS, key=len, reverse=True)))

# How each word shifts an hour in parse_clock.
_CLOCK_PERIODS: dict[str, str] = {
    **{word: kind for word, kind in _PERIOD_WORDS.items() if kind is not None},
    "晚上": "night",
    "晚间": "night",
    "夜里": "night",
    "夜间": "night",
    "今晚": "night",
    "明晚": "night",
    "中午": "noon",
    "凌晨": "early",
    "半夜": "late",
    "深夜": "late",
}
_CLOCK_PERIOD_RE = re.compile("|".join(sorted(_CLOCK_PERIODS, key=len, reverse=True)))
_CLAUSE_BREAK = re.compile(r"[,.;!?。、；\n]")
_CLOCK_RE = re.compile(
    r"(?<![0-9:])(?P<dh>[0-9]{1,2}):(?P<dm>[0-5][0-9])(?![0-9])"
    rf"|(?<!第){_NOT_AFTER_NUM}(?P<h>{_NUM})(?P<mark>点钟?|时)"
)
_MINUTES_RE = re.compile(
    rf"(?P<half>半)|(?P<q1>[一1]刻)|(?P<q3>[三3]刻)|(?P<whole>整)|(?P<m>[0-9]{{1,2}}|[{_CN_SMALL}]{{1,3}})(?P<fen>分)?"
)


def parse_period(text: str) -> str | None:
    """ "am" for 上午/早上/早晨/上半天..., "pm" for 下午/晚上/傍晚/下半天...; first one mentioned wins."""
    match = _PERIOD_RE.search(normalize_text(text))
    return _PERIOD_WORDS[match.group()] if match else None


def _clause_period(text: str, start: int, end: int) -> str | None:
    """The period word nearest before the time in the same clause, else the first one after it."""
    breaks = [b.start() for b in _CLAUSE_BREAK.finditer(text)]
    lo = max((b for b in breaks if b < start), default=-1) + 1
    hi = min((b for b in breaks if b >= end), default=len(text))
    before = [m.group() for m in _CLOCK_PERIOD_RE.finditer(text, lo, start)]
    if before:
        return before[-1]
    after = _CLOCK_PERIOD_RE.search(text, end, hi)
    return after.group() if after else None


def _shift_hour(hour: int, word: str | None, leading_zero: bool) -> int:
    kind = _CLOCK_PERIODS.get(word) if word else None
    if kind is None:
        return hour + 12 if 1 <= hour <= 6 and not leading_zero else hour
    if kind == "pm":
        return hour + 12 if 1 <= hour <= 11 else hour
    if kind == "night":
        return 0 if hour == 12 else (hour + 12 if 1 <= hour <= 11 else hour)
    if kind == "noon":
        return hour + 12 if 1 <= hour <= 5 else hour
    if kind == "late":
        return 0 if hour == 12 else (hour + 12 if 8 <= hour <= 11 else hour)
    return 0 if hour == 12 and kind == "early" else hour  # am / early


def _clock_minutes(text: str, pos: int) -> tuple[int, int] | None:
    """Minutes written after 点 at ``pos``: (minutes, end), (0, pos) if none, None if ambiguous (三点五)."""
    m = _MINUTES_RE.match(text, pos)
    if m is None:
        return 0, pos
    if m["half"]:
        return 30, m.end()
    if m["q1"]:
        return 15, m.end()
    if m["q3"]:
        return 45, m.end()
    if m["whole"]:
        return 0, m.end()
    raw = m["m"]
    minutes = _to_int(raw)
    if minutes is None or minutes > 59:
        return None
    if not m["fen"] and len(raw) == 1 and raw not in "0〇零":
        return None  # 三点五 (3.5), 8点5: not a clock time
    return minutes, m.end()


def parse_clock(text: str) -> str | None:
    """First clock time as "HH:MM" (下午三点 → "15:00", 晚上7点半 → "19:30", 19:30 → "19:30"), else None."""
    norm = normalize_text(text)
    for match in _CLOCK_RE.finditer(norm):
        if match["dh"]:
            raw_hour, minutes, end = match["dh"], int(match["dm"]), match.end()
        else:
            raw_hour = match["h"]
            parsed = _clock_minutes(norm, match.end())
            if parsed is None or norm.startswith("儿", match.end()):
                continue
            minutes, end = parsed
        hour = _to_int(raw_hour)
        if hour is None or hour > 24 or (hour == 24 and minutes):
            continue
        word = _clause_period(norm, match.start(), end)
        bare_yi = match["mark"] == "时" or (match["mark"] == "点" and end == match.end())
        if raw_hour == "一" and word is None and bare_yi:
            continue  # 便宜一点 / 快一点: "a little"; 一时: "for a moment"
        hour = 0 if hour == 24 else _shift_hour(hour, word, raw_hour.startswith("0") and len(raw_hour) == 2)
        return f"{hour:02d}:{minutes:02d}"
    return None


def words_in(text: str, words: Iterable[str]) -> list[str]:
    """The given words found in the text, in the order they appear; where two overlap the longer wins
    ("克拉玛依市人民医院" over "人民医院"). Words shorter than two characters are ignored."""
    taken: list[tuple[int, int, str]] = []
    for word in sorted({w for w in words if len(w) >= 2}, key=len, reverse=True):
        start = text.find(word)
        while start != -1:
            end = start + len(word)
            if not any(s < end and start < e for s, e, _w in taken):
                taken.append((start, end, word))
            start = text.find(word, end)
    return [w for _s, _e, w in sorted(taken)]
