"""智能导诊: a citizen names what they feel ("拉肚子", "高血压怎么办", "娃娃发烧") and is told which
department to see, at which hospitals, with a button to book it. Urgent signs come first, with 120.
Rules live in the pack (guides/triage.yaml); this is guidance, never a diagnosis, and the answer says so."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml
from pydantic import BaseModel

from intents import zh
from intents.runtime import Answer, Context, button
from intents.services import Service
from intents.settings import get_settings

NOT_A_DIAGNOSIS = "以上为导诊建议，不能代替医生诊断。"
MAX_HOSPITALS = 3


class Rule(BaseModel):
    department: str
    words: list[str]
    advice: str


class Urgent(BaseModel):
    words: list[str]
    advice: str


class Triage(BaseModel):
    source: str
    urgent: Urgent
    children: list[str]
    rules: list[Rule]


@lru_cache
def triage(pack_dir: str | None = None) -> Triage:
    path = Path(pack_dir or get_settings().city_pack) / "guides" / "triage.yaml"
    return Triage(**yaml.safe_load(path.read_text(encoding="utf-8")))


def _first_match(text: str, rules: list[Rule]) -> tuple[Rule, str] | None:
    """The rule whose word appears earliest in the text (longest word first at the same place)."""
    hits = [(text.find(w), -len(w), w, r) for r in rules for w in r.words if w in text]
    if not hits:
        return None
    _pos, _len, word, rule = min(hits, key=lambda h: (h[0], h[1]))
    return rule, word


async def symptom_triage(service: Service, ctx: Context) -> Answer:
    rules = triage()
    text = zh.normalize_text(ctx.text)
    urgent = next((w for w in rules.urgent.words if w in text), None)
    match = _first_match(text, rules.rules)
    if match is None:
        if urgent:
            return Answer(f"{rules.urgent.advice}\n{NOT_A_DIAGNOSIS}")
        return Answer(
            "请说说哪里不舒服，例如“拉肚子”“头疼发烧”“孩子咳嗽”“牙疼”，我告诉您该挂哪个科。紧急情况请拨打120。"
        )
    rule, word = match
    department_id = rule.department
    if any(c in text for c in rules.children) and department_id in ("respiratory", "gastroenterology", "neurology"):
        department_id = "pediatrics"  # a child's fever, cough or diarrhoea is seen by paediatrics
    pack = ctx.pack
    department = pack.department(department_id)
    hospitals = [h for h in pack.hospitals if department_id in h.departments][:MAX_HOSPITALS]
    lines = [rules.urgent.advice] if urgent else []
    lines.append(f"根据您说的“{word}”，建议挂【{department.name}】。")
    if hospitals:
        lines.append("可就诊医院：" + "、".join(h.name for h in hospitals))
    lines += [rule.advice, NOT_A_DIAGNOSIS]
    buttons = [
        button(f"预约{h.name}{department.name}", "hospital_appointment", hospital=h.name, department=department.name)
        for h in hospitals
    ]
    return Answer("\n".join(lines), buttons)
