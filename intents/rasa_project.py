"""Generates the Rasa project's data from the catalogue and the city data pack:
bot/domain.yml, bot/data/nlu.yml, bot/data/rules.yml and data/jieba/userdict.txt.

Generated files are committed; tests/test_generated.py fails when they are stale.
Run: python -m intents.rasa_project"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import yaml

from intents.city import china
from intents.city.pack import load_pack
from intents.city.tables import load_tables
from intents.menu import SAID
from intents.services import ANNOTATION, Catalogue, annotated_entities, load_catalogue, plain_text

REPO = Path(__file__).resolve().parent.parent
BOT = REPO / "bot"
PACK = REPO / "data" / "karamay"
USERDICT = REPO / "data" / "jieba" / "userdict.txt"

CORE_ACTIONS = [
    "action_help",
    "action_search",
    "action_cancel",
    "action_out_of_scope",
    "action_inform",
    "action_offer_reply",
]
RESPONSES = {
    "utter_greet": [
        {
            "text": "您好！我是克拉玛依市民服务助手，可以帮您查公交、挂号、买电影票、缴费、银行取号等。请问有什么可以帮您？"
        }
    ],
    "utter_goodbye": [{"text": "感谢您的使用，再见！"}],
    "utter_thanks": [{"text": "不客气，很高兴为您服务！还有其他需要吗？"}],
    "utter_anything_else": [{"text": "好的。还有什么可以帮您？发送“菜单”查看全部服务。"}],
}
# Words jieba must keep whole besides the data's names, so that annotations align with tokens.
EXTRA_WORDS = ["公交车", "挂号", "预约", "缴费", "取号", "电影票", "到站", "户号", "网点"]


def pack_names(pack_dir: Path = PACK) -> dict[str, dict[str, list[str]]]:
    """For every lookup list of the pack: canonical name → aliases."""
    pack = load_pack(pack_dir)
    lists: dict[str, Sequence[Listed]] = {
        "bus_lines": pack.bus_lines,
        "bus_stops": pack.bus_stops,
        "hospitals": pack.hospitals,
        "departments": pack.departments,
        "cinemas": pack.cinemas,
        "films": pack.films,
        "utility_kinds": pack.utility_kinds,
        "bank_branches": pack.bank_branches,
        "bank_business_types": pack.bank_business_types,
    }
    names = {key: {item.name: list(item.aliases) for item in items} for key, items in lists.items()}
    # "独山子" for 独山子区; but not "克拉玛依", which is the city's name inside every other name.
    city = pack.city.name.removesuffix("市")
    names["districts"] = {d.name: [a for a in [d.name.removesuffix("区")] if a != city] for d in pack.districts}
    home = {
        pack.city.name,
        city,
        *(d.name for d in pack.districts),
        *(a for d in pack.districts for a in names["districts"][d.name]),
    }
    names["china_places"] = china.names(exclude=home)
    names["tables"] = {
        record.name: list(record.aliases) for table in load_tables(pack_dir).values() for record in table.records
    }
    return names


def _block(lines: list[str]) -> str:
    return "".join(f"- {line}\n" for line in lines)


class Listed(Protocol):
    """A pack item a lookup list names (a Film's name is its title)."""

    @property
    def name(self) -> str: ...
    @property
    def aliases(self) -> list[str]: ...


class _Literal(str):
    pass


def _literal_representer(dumper: yaml.SafeDumper, value: _Literal) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")


yaml.add_representer(_Literal, _literal_representer, Dumper=yaml.SafeDumper)


def _dump(data: Any) -> str:
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=1000)


def _lookup_values(names: dict[str, list[str]]) -> list[str]:
    # Longest first: the regex alternation must prefer 克拉玛依市人民医院 over 人民医院.
    values = {v for name, aliases in names.items() for v in [name, *aliases] if len(v) >= 2}
    return sorted(values, key=lambda v: (-len(v), v))


def search_words(cat: Catalogue) -> list[str]:
    """Bare words that name a whole area ("公积金", "医疗健康"): the citizen gets the list of matching
    services to choose from. Keywords of one service only, or already an example, are left out."""
    counts: dict[str, int] = {}
    for service in cat.services:
        for word in set(service.keywords):
            counts[word] = counts.get(word, 0) + 1
    examples = {plain_text(e) for s in cat.services for e in s.examples}
    examples |= {plain_text(e) for ex in cat.core_intents.values() for e in ex}
    words = {w for w, n in counts.items() if n >= 2} | {f.name for f in cat.families}
    return sorted(w for w in words if len(w) >= 2 and w not in examples and not ANNOTATION.search(w))


def build_nlu(cat: Catalogue, names: dict[str, dict[str, list[str]]]) -> str:
    items: list[dict[str, Any]] = []
    for intent, examples in cat.core_intents.items():
        items.append({"intent": intent, "examples": _Literal(_block(examples))})
    items.append({"intent": "search", "examples": _Literal(_block(search_words(cat)))})
    for service in cat.services:
        items.append({"intent": service.intent, "examples": _Literal(_block(service.examples))})
    for slot in cat.slots.values():
        if slot.lookup:
            items.append({"lookup": slot.name, "examples": _Literal(_block(_lookup_values(names[slot.lookup])))})
        if slot.regex:
            items.append({"regex": slot.name, "examples": _Literal(_block(slot.regex))})
    for slot in cat.slots.values():
        for name, aliases in (names.get(slot.lookup or "") or {}).items():
            aliases = [a for a in aliases if a != name and len(a) >= 2]
            if aliases:
                items.append({"synonym": name, "examples": _Literal(_block(aliases))})
    return "# Generated by `python -m intents.rasa_project`; edit intents/catalogue/ instead.\n" + _dump(
        {"version": "3.1", "nlu": items}
    )


def _slot_mappings(cat: Catalogue, slot: str) -> list[dict[str, Any]]:
    users = [s for s in cat.services if slot in s.slots]
    mappings: list[dict[str, Any]] = [
        # Filled by the message that asks for the service ("明天人民医院挂号") ...
        {"type": "from_entity", "entity": slot, "intent": [s.intent for s in users]}
    ]
    forms = [s.form for s in users if s.form and slot in s.required]
    if forms:
        # ... and by any answer while one of its forms is asking; never by unrelated chatter.
        mappings.append({"type": "from_entity", "entity": slot, "conditions": [{"active_loop": f} for f in forms]})
    return mappings


def build_domain(cat: Catalogue) -> str:
    services = cat.services
    slots: dict[str, Any] = {}
    for name in cat.slots:
        slots[name] = {"type": "text", "influence_conversation": False, "mappings": _slot_mappings(cat, name)}
    confirm_forms = [s.form for s in services if s.confirm]
    slots["confirmed"] = {
        "type": "bool",
        "influence_conversation": False,
        "mappings": [
            {
                "type": "from_intent",
                "intent": intent,
                "value": value,
                "conditions": [{"active_loop": f, "requested_slot": "confirmed"} for f in confirm_forms],
            }
            for intent, value in (("affirm", True), ("deny", False))
        ],
    }
    # What the citizen just asked, so "那明天呢？" can ask it again with a new date.
    slots["last_service"] = {"type": "text", "influence_conversation": False, "mappings": [{"type": "custom"}]}
    slots["offer"] = {"type": "text", "influence_conversation": False, "mappings": [{"type": "custom"}]}
    slots["last_slots"] = {"type": "any", "influence_conversation": False, "mappings": [{"type": "custom"}]}
    applications = [s.intent for s in services if s.handler == "application"]
    if applications:
        # The citizen's own words ("楼道灯坏了") are the application: kept from the asking message.
        slots["request_text"] = {
            "type": "text",
            "influence_conversation": False,
            "mappings": [{"type": "from_text", "intent": applications}],
        }
    forms = {s.form: {"required_slots": s.form_slots} for s in services if s.form}
    actions = [
        *CORE_ACTIONS,
        *(f"action_svc_{s.id}" for s in services),
        *(f"validate_{s.form}" for s in services if s.form),
        *(f"action_ask_{slot}" for slot in [*cat.slots, "confirmed"]),
    ]
    domain = {
        "version": "3.1",
        "session_config": {"session_expiration_time": 60, "carry_over_slots_to_new_session": False},
        "intents": [*cat.core_intents, "search", *(s.intent for s in services)],
        "entities": [*cat.slots, "family", SAID],  # only from buttons: a menu family, restated words
        "slots": slots,
        "forms": forms,
        "responses": RESPONSES,
        "actions": actions,
    }
    return "# Generated by `python -m intents.rasa_project`; edit intents/catalogue/ instead.\n" + _dump(domain)


def build_rules(cat: Catalogue) -> str:
    rules: list[dict[str, Any]] = [
        {"rule": "greet", "steps": [{"intent": "greet"}, {"action": "utter_greet"}]},
        {"rule": "goodbye", "steps": [{"intent": "goodbye"}, {"action": "utter_goodbye"}]},
        {"rule": "thanks", "steps": [{"intent": "thanks"}, {"action": "utter_thanks"}]},
        {"rule": "help", "steps": [{"intent": "help"}, {"action": "action_help"}]},
        {"rule": "out of scope", "steps": [{"intent": "out_of_scope"}, {"action": "action_out_of_scope"}]},
        {"rule": "a bare keyword", "steps": [{"intent": "search"}, {"action": "action_search"}]},
        {"rule": "not understood", "steps": [{"intent": "nlu_fallback"}, {"action": "action_out_of_scope"}]},
        {
            "rule": "cancel with nothing to cancel",
            "steps": [{"intent": "cancel"}, {"action": "action_offer_reply"}],  # it lets go of an offer
        },
        {"rule": "bare answer without a question", "steps": [{"intent": "inform"}, {"action": "action_inform"}]},
        # outside a form, "确认" takes what the last answer offered (cancelling the one booking there is)
        {"rule": "affirm without a question", "steps": [{"intent": "affirm"}, {"action": "action_offer_reply"}]},
        {"rule": "deny without a question", "steps": [{"intent": "deny"}, {"action": "action_offer_reply"}]},
    ]
    for s in cat.services:
        if not s.form:
            rules.append({"rule": f"answer {s.id}", "steps": [{"intent": s.intent}, {"action": f"action_svc_{s.id}"}]})
            continue
        rules += [
            {
                "rule": f"start {s.id}",
                "steps": [{"intent": s.intent}, {"action": s.form}, {"active_loop": s.form}],
            },
            {
                "rule": f"finish {s.id}",
                "condition": [{"active_loop": s.form}],
                "steps": [
                    {"action": s.form},
                    {"active_loop": None},
                    {"slot_was_set": [{"requested_slot": None}]},
                    {"action": f"action_svc_{s.id}"},
                ],
            },
            {
                "rule": f"leave {s.id}",
                "condition": [{"active_loop": s.form}],
                "steps": [{"intent": "cancel"}, {"action": "action_cancel"}, {"active_loop": None}],
            },
        ]
    return "# Generated by `python -m intents.rasa_project`; edit intents/catalogue/ instead.\n" + _dump(
        {"version": "3.1", "rules": rules}
    )


def build_userdict(cat: Catalogue, names: dict[str, dict[str, list[str]]]) -> str:
    words = set(EXTRA_WORDS)
    for table in names.values():
        for name, aliases in table.items():
            words.update([name, *aliases])
    examples = [e for s in cat.services for e in s.examples] + [e for ex in cat.core_intents.values() for e in ex]
    for example in examples:
        words.update(value for value, _entity in annotated_entities(example))
    words = {w.strip() for w in words if len(w.strip()) >= 2 and " " not in w.strip()}
    # A high frequency makes jieba keep each entity value as one token.
    return "".join(f"{w} 100000 nz\n" for w in sorted(words))


def misaligned(cat: Catalogue, userdict: str) -> list[str]:
    """Annotated examples whose entities do not fall on jieba token boundaries (Rasa would drop them)."""
    import jieba

    tokenizer = jieba.Tokenizer()
    for line in userdict.splitlines():
        word, freq, tag = line.split(" ")
        tokenizer.add_word(word, int(freq), tag)
    problems = []
    examples = [e for s in cat.services for e in s.examples] + [e for ex in cat.core_intents.values() for e in ex]
    for example in examples:
        text = plain_text(example)
        bounds = {0, len(text)} | {edge for _w, start, end in tokenizer.tokenize(text) for edge in (start, end)}
        removed = 0  # markup characters before the current annotation
        for match in ANNOTATION.finditer(example):
            value, entity = match.groups()
            start = match.start() - removed
            removed += len(match.group(0)) - len(value)
            if start not in bounds or start + len(value) not in bounds:
                problems.append(f"{text!r}: {value!r} ({entity})")
    return problems


def outputs(cat: Catalogue | None = None) -> dict[Path, str]:
    cat = cat or load_catalogue()
    names = pack_names()
    userdict = build_userdict(cat, names)
    return {
        BOT / "domain.yml": build_domain(cat),
        BOT / "data" / "nlu.yml": build_nlu(cat, names),
        BOT / "data" / "rules.yml": build_rules(cat),
        USERDICT: userdict,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if the committed files are stale")
    args = parser.parse_args(argv)
    cat = load_catalogue()
    files = outputs(cat)
    problems = misaligned(cat, files[USERDICT])
    if problems:
        print("Entity annotations that jieba would split:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    stale = [p for p, text in files.items() if not p.exists() or p.read_text(encoding="utf-8") != text]
    if args.check:
        for p in stale:
            print(f"stale: {p.relative_to(REPO)} (run python -m intents.rasa_project)", file=sys.stderr)
        return 1 if stale else 0
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(files[path], encoding="utf-8")
        print(f"wrote {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
