"""Record tables of a city pack (data/<city>/tables/*.yaml): the data behind generic services."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field, model_validator

from intents.city.pack import DEFAULT_PACK_DIR


class Record(BaseModel):
    id: str
    name: str
    aliases: list[str] = Field(default_factory=list)
    key: str | None = None
    owner: str | None = None  # the phone (E.164) of the person the record belongs to; never shown
    district: str | None = None
    summary: str = ""
    capacity: int | None = None
    fields: dict[str, Any] = Field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return [self.name, *self.aliases]


class Table(BaseModel):
    id: str
    source: str
    records: list[Record]

    @model_validator(mode="after")
    def _unique_ids(self) -> Table:
        ids = [r.id for r in self.records]
        if len(ids) != len(set(ids)):
            raise ValueError(f"table {self.id}: duplicate record ids")
        return self

    def record(self, record_id: str) -> Record:
        return next(r for r in self.records if r.id == record_id)

    def by_key(self, key: str) -> Record | None:
        wanted = key.strip().upper()
        return next((r for r in self.records if r.key and r.key.upper() == wanted), None)


def load_tables(pack_dir: Path = DEFAULT_PACK_DIR) -> dict[str, Table]:
    tables = {}
    for path in sorted((Path(pack_dir) / "tables").glob("*.yaml")):
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        tables[path.stem] = Table(id=path.stem, **raw)
    return tables


@lru_cache
def default_tables() -> dict[str, Table]:
    return load_tables()


def resolve_record(table: Table, text: str) -> tuple[Record | None, list[str]]:
    """The record the text names (exact name or alias, or the only record whose name it contains or
    is contained in), else None and the closest names for "您是不是要找…"."""
    import difflib

    query = "".join(text.split())
    exact = [r for r in table.records if query in r.names]
    if exact:
        return exact[0], []
    partial = [r for r in table.records if any(n in query or (len(query) >= 2 and query in n) for n in r.names)]
    if len(partial) == 1:
        return partial[0], []
    if partial:
        return None, [r.name for r in partial][:5]
    scored = sorted(
        ((max(difflib.SequenceMatcher(None, query, n).ratio() for n in r.names), r.name) for r in table.records),
        reverse=True,
    )
    return None, [name for score, name in scored if score >= 0.4][:3]


def _bigrams(text: str) -> set[str]:
    return {text[i : i + 2] for i in range(len(text) - 1)}


def record_in_sentence(table: Table, text: str, city: str) -> Record | None:
    """The record a whole sentence names in passing ("约羽毛球 全民健身中心 明天上午" → 全民健身中心羽毛球馆,
    "预约参观科技馆" → 克拉玛依科技馆): the one sharing the most character pairs with the text, at least
    three or the whole name without the city's (克拉玛依市, or 克拉玛依), and more than any other record."""
    said = _bigrams("".join(text.split()))
    short_city = city.removesuffix("市")

    def score(record: Record) -> int:
        best = 0
        for name in record.names:
            short = name.removeprefix(city).removeprefix(short_city)
            shared = len(_bigrams(short) & said)
            if shared >= 3 or (shared >= 2 and shared == len(_bigrams(short))):
                best = max(best, shared)
        return best

    scored = sorted(((score(r), r.id) for r in table.records), reverse=True)
    if not scored or scored[0][0] == 0 or (len(scored) > 1 and scored[1][0] == scored[0][0]):
        return None
    return table.record(scored[0][1])
