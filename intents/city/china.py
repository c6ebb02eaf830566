"""China's provinces, cities and counties (data/china/places.csv), so that another city in a question
("乌鲁木齐到北京的机票", "石河子冷不冷") is a `city` entity instead of noise in the classifier's n-grams.

The CSV is derived from the adcode list in the MIT-licensed `cpca` package (data/china/README.md):
`python -m intents.city.china /path/to/cpca/resources/adcodes.csv` rewrites it."""

from __future__ import annotations

import csv
import re
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from intents import zh

PLACES_CSV = Path(__file__).resolve().parents[2] / "data" / "china" / "places.csv"
_ETHNIC = (
    "蒙古族|蒙古|回族|藏族|维吾尔|哈萨克|柯尔克孜|塔吉克|锡伯|苗族|彝族|壮族|布依族|侗族|瑶族|土家族|白族|傣族|傈僳族|"
    "景颇族|哈尼族|朝鲜族|羌族|黎族|土族|撒拉族|纳西族|拉祜族|佤族|畲族|水族|仡佬族|满族|达斡尔族|鄂温克族|鄂伦春族|"
    "裕固族|保安族|东乡族|积石山|各族|仫佬族|毛南族|京族|独龙族|怒族|普米族|阿昌族|德昂族|布朗族|基诺族|门巴族|珞巴族"
)
_SUFFIX = re.compile(rf"(({_ETHNIC})+)?(自治州|自治县|自治旗|自治区|特别行政区|地区|省|市|县|盟|旗)$")
# Short forms that are everyday words or clash with names in the city: never an entity on their own.
# How people in the region say some of them, beyond the short form.
COLLOQUIAL = {"乌市": "乌鲁木齐市", "魔都": "上海市", "帝都": "北京市", "羊城": "广州市", "蓉城": "成都市"}
_NOT_ALONE = {
    "安康",
    "白银",
    "中山",
    "阿里",
    "东方",
    "普洱",
    "大同",
    "永安",
    "长寿",
    "太平",
    "和平",
    "新华",
    "吉利",
    "城关",
}


@dataclass(frozen=True)
class Place:
    adcode: str
    name: str  # 乌鲁木齐市
    short: str  # 乌鲁木齐 ("" when the short form would be ambiguous)
    level: str  # province | prefecture | county
    province: str  # 新疆


def short_name(name: str) -> str:
    short = _SUFFIX.sub("", name)
    return short if len(short) >= 2 and short != name and short not in _NOT_ALONE else ""


def _level(adcode: str) -> str:
    if adcode[2:6] == "0000":
        return "province"
    return "prefecture" if adcode[4:6] == "00" else "county"


def build(adcodes_csv: Path) -> list[Place]:
    rows = list(csv.DictReader(adcodes_csv.open(encoding="utf-8")))
    provinces = {r["adcode"][:2]: short_name(r["name"]) or r["name"] for r in rows if _level(r["adcode"]) == "province"}
    places, taken = [], set()
    # Provinces and prefectures first, so "乌鲁木齐" is the city and not 乌鲁木齐县.
    for r in sorted(rows, key=lambda r: (["province", "prefecture", "county"].index(_level(r["adcode"])), r["adcode"])):
        level, name = _level(r["adcode"]), r["name"]
        if "辖" in name or (level == "county" and name.endswith("区")):
            continue  # 市辖区 placeholders; city districts (城关区, 新华区…) are everywhere and rarely meant
        short = short_name(name)
        short = "" if short in taken or name in taken else short
        taken |= {name, short}
        places.append(Place(r["adcode"][:6], name, short, level, provinces.get(r["adcode"][:2], "")))
    return sorted(places, key=lambda p: p.adcode)


@lru_cache
def places() -> tuple[Place, ...]:
    with PLACES_CSV.open(encoding="utf-8") as f:
        return tuple(Place(**row) for row in csv.DictReader(f))


def names(exclude: frozenset[str] | set[str] = frozenset()) -> dict[str, list[str]]:
    """Canonical name → aliases, for the `city` lookup; names inside `exclude` (the home city's own
    names: they are districts there, not other cities) are left out."""
    out: dict[str, list[str]] = {}
    for p in places():
        if p.name in exclude or p.short in exclude:
            continue
        out[p.name] = [p.short] if p.short and not any(p.short in e for e in exclude) else []
    for word, name in COLLOQUIAL.items():
        if name in out:
            out[name].append(word)
    return out


@lru_cache
def _by_word() -> dict[str, Place]:
    by_word = {w: p for p in reversed(places()) for w in (p.name, p.short) if w}
    by_name = {p.name: p for p in places()}
    by_word.update({word: by_name[name] for word, name in COLLOQUIAL.items()})
    return by_word


def main(argv: list[str]) -> int:
    built = build(Path(argv[0]))
    with PLACES_CSV.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["adcode", "name", "short", "level", "province"])
        writer.writeheader()
        writer.writerows(p.__dict__ for p in built)
    print(f"wrote {len(built)} places to {PLACES_CSV}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))


def find(text: str) -> Place | None:
    """The place a citizen's words name: an exact name or short form, else the longest one inside."""
    by_word = _by_word()
    if text in by_word:
        return by_word[text]
    inside = [w for w in by_word if len(w) >= 2 and w in text]
    return by_word[max(inside, key=len)] if inside else None


def mentioned(text: str) -> list[Place]:
    """Places named in the text, in the order they appear ("从奎屯到北京" → 奎屯, 北京)."""
    by_word = _by_word()
    return [by_word[w] for w in zh.words_in(text, by_word)]
