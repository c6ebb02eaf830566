"""The unanswered-questions loop: what citizens asked that the assistant declined, did not understand or
only guessed at ("did you mean"), grouped by similarity for staff to review; an admin assigns a group to
a service of the catalogue or marks it out of scope, and the assignments export as candidate training
examples in the catalogue's format (intents/catalogue/examples/<family>.yaml: intent → list of texts).

Grouping: character bigrams and their Jaccard similarity, leader clustering. Citizens' questions are
short and full of pinyin and voice-input slips (工交/公交, 挂好/挂号) and run-together words; a word
segmenter (jieba) cuts a misspelt word into different tokens, so two askings of one question share few
tokens, while they still share most character pairs. Bigrams need no dictionary and no model, and the
score is easy to explain to staff (the share of two-character pieces two questions have in common).
Distinct texts, most asked (then shortest) first, each join the group whose first text they resemble most (at least
SIMILAR), else start a group: one pass, predictable, scoring only groups that share a bigram with the
text, over a bounded window (the newest WINDOW questions).
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

import yaml
from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from gateway.db.models import UnansweredQuestion, utcnow
from intents.services import catalogue
from intents.zh import normalize_text

OUT_OF_SCOPE = "out_of_scope"  # the catalogue's own name for what no service covers
SIMILAR = 0.4  # Jaccard of character bigrams: "楼道灯坏了找谁" ~ "楼道的灯坏了找谁修" is 0.56
WINDOW = 2000  # the newest questions grouped in one listing
MEDIA_TYPE = "application/yaml"  # the export
_NOT_TEXT = re.compile(r"[^\w*]+")


def bigrams(text: str) -> frozenset[str]:
    """The two-character pieces of a question, punctuation and spaces dropped, traditional characters
    and full-width digits normalised; a one-character question is its own piece."""
    plain = _NOT_TEXT.sub("", normalize_text(text).lower())
    if len(plain) < 2:
        return frozenset({plain}) if plain else frozenset()
    return frozenset(plain[i : i + 2] for i in range(len(plain) - 1))


def similarity(a: frozenset[str], b: frozenset[str]) -> float:
    if not a or not b:
        return 0.0
    return len(a & b) / len(a | b)


@dataclass
class Group:
    text: str  # the most asked wording: the group's leader
    pieces: frozenset[str]
    ids: list[int] = field(default_factory=list)
    texts: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    channels: Counter[str] = field(default_factory=Counter)
    assigned: Counter[str] = field(default_factory=Counter)
    last_at: datetime | None = None

    @property
    def count(self) -> int:
        return len(self.ids)


def group(questions: list[UnansweredQuestion]) -> list[Group]:
    """Groups of similar questions, the most asked first."""
    by_text: dict[str, list[UnansweredQuestion]] = {}
    for q in questions:
        by_text.setdefault(normalize_text(q.text), []).append(q)
    groups: list[Group] = []
    # bigram → the groups whose leader has it: a question can only reach SIMILAR with a group it shares
    # a bigram with, so only those are scored (all 2,000 against all 2,000 took seconds)
    holding: dict[str, list[int]] = {}
    # most asked first; among equals the shortest wording, which is usually the plainest, leads
    for text, same in sorted(by_text.items(), key=lambda item: (-len(item[1]), len(item[0]), item[0])):
        pieces = bigrams(text)
        best, score = None, 0.0
        for index in sorted({i for piece in pieces for i in holding.get(piece, ())}):
            s = similarity(pieces, groups[index].pieces)
            if s > score:
                best, score = groups[index], s
        if best is None or score < SIMILAR:
            best = Group(text, pieces)
            for piece in pieces:
                holding.setdefault(piece, []).append(len(groups))
            groups.append(best)
        for q in same:
            assert q.id is not None
            best.ids.append(q.id)
            best.texts[text] += 1
            best.outcomes[q.outcome] += 1
            best.channels[q.channel] += 1
            if q.assigned_to:
                best.assigned[q.assigned_to] += 1
            if best.last_at is None or q.created_at > best.last_at:
                best.last_at = q.created_at
    groups.sort(key=lambda g: (-g.count, g.text))
    return groups


async def listing(db: AsyncSession, assigned: bool) -> list[Group]:
    """The newest WINDOW questions still to review (or, assigned=True, already assigned), grouped."""
    assigned_to = col(UnansweredQuestion.assigned_to)
    rows = await db.exec(
        select(UnansweredQuestion)
        .where(assigned_to.is_not(None) if assigned else assigned_to.is_(None))
        .order_by(col(UnansweredQuestion.id).desc())
        .limit(WINDOW)
    )
    # up to half a second of CPU for a full window of unlike questions: off the loop citizens' turns run on
    return await asyncio.to_thread(group, list(rows.all()))


def targets() -> dict[str, str]:
    """What a question may be assigned to: every service's intent → its name, and out of scope."""
    return {**{s.intent: s.name for s in catalogue().services}, OUT_OF_SCOPE: "不属于服务范围"}


async def assign(db: AsyncSession, ids: list[int], target: str, staff_id: int) -> int:
    """Assign these questions (a group's ids) to a service or out_of_scope; returns how many changed."""
    result = await db.exec(
        update(UnansweredQuestion)
        .where(col(UnansweredQuestion.id).in_(ids))
        .values(assigned_to=target, assigned_by=staff_id, assigned_at=utcnow())
    )
    return int(result.rowcount or 0)


async def export(db: AsyncSession) -> tuple[str, int]:
    """The assigned questions as the catalogue's examples file: a YAML mapping of intent → texts, each
    intent under a comment naming the service and the family file it would go in. Returns (YAML, count)."""
    rows = await db.exec(
        select(UnansweredQuestion.assigned_to, UnansweredQuestion.text)
        .where(col(UnansweredQuestion.assigned_to).is_not(None))
        .order_by(col(UnansweredQuestion.assigned_to), col(UnansweredQuestion.id))
    )
    examples: dict[str, list[str]] = {}
    for intent, text in rows.all():
        texts = examples.setdefault(intent or OUT_OF_SCOPE, [])  # never None: the query keeps assigned rows
        if text not in texts:
            texts.append(text)
    services = {s.intent: s for s in catalogue().services}
    parts = [
        "# Candidate training examples: citizens' questions the assistant could not serve, assigned by staff\n"
        f"# in the console (exported {utcnow():%Y-%m-%d %H:%M} UTC). Numbers are masked (**): write them back\n"
        "# as a resident would, annotate entities ([12路](bus_line)), then add each list to\n"
        "# intents/catalogue/examples/<family>.yaml (out_of_scope: _core.yaml) and retrain.\n"
    ]
    for intent, texts in examples.items():
        service = services.get(intent)
        where = f"{service.name}（{service.family}.yaml）" if service else "不属于服务范围（_core.yaml）"
        body = yaml.safe_dump({intent: texts}, allow_unicode=True, sort_keys=False, width=1000)
        parts.append(f"# {where}\n{body}")
    return "\n".join(parts), sum(len(t) for t in examples.values())
