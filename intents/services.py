"""The service catalogue: declarative YAML under intents/catalogue/, loaded and checked here."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field, model_validator

CATALOGUE_DIR = Path(__file__).with_name("catalogue")
EXAMPLES_DIR = "examples"
ANNOTATION = re.compile(r"\[([^\]]+)\]\(([a-z_]+)\)")


class SlotSpec(BaseModel):
    name: str
    ask: str
    why: str = ""  # why the service needs it, said with the question ("用于核对您本人的记录")
    label: str = ""  # its name in a summary to confirm ("上车地点：友谊馆")
    private: bool = False  # shown masked in a summary (an ID number)
    lookup: str | None = None
    regex: list[str] = Field(default_factory=list)


class Turn(BaseModel):
    say: str
    expect: list[str] = Field(default_factory=list)


class Service(BaseModel):
    id: str
    name: str
    description: str
    handler: str
    params: dict[str, Any] = Field(default_factory=dict)
    family: str = ""
    slots: list[str] = Field(default_factory=list)
    required: list[str] = Field(default_factory=list)
    confirm: bool = False
    personal: bool = False  # its records belong to people: shown only to the owner (verified phone)
    keywords: list[str] = Field(default_factory=list)
    ask: dict[str, str] = Field(default_factory=dict)  # this service's own question for a slot
    examples: list[str]
    test: list[Turn] = Field(default_factory=list)  # the conformance conversation

    @property
    def intent(self) -> str:
        return self.id

    @property
    def form(self) -> str | None:
        """Services that must ask for something, or confirm, run as a Rasa form."""
        return f"{self.id}_form" if self.required or self.confirm else None

    @property
    def form_slots(self) -> list[str]:
        return [*self.required, *(["confirmed"] if self.confirm else [])]

    @model_validator(mode="after")
    def _required_are_slots(self) -> Service:
        missing = (set(self.required) | set(self.ask)) - set(self.slots)
        if missing:
            raise ValueError(f"service {self.id}: required or asked slots {sorted(missing)} not in slots")
        return self


class Family(BaseModel):
    id: str
    name: str
    order: int
    services: list[Service] = Field(default_factory=list)


class Catalogue(BaseModel):
    families: list[Family]
    slots: dict[str, SlotSpec]
    core_intents: dict[str, list[str]]

    @property
    def services(self) -> list[Service]:
        return [s for f in self.families for s in f.services]

    def service(self, service_id: str) -> Service:
        for s in self.services:
            if s.id == service_id:
                return s
        raise KeyError(service_id)

    def family(self, family_id: str) -> Family:
        return next(f for f in self.families if f.id == family_id)

    def search(self, text: str) -> list[Service]:
        """Services whose name, family name or keywords occur in the text, or contain it."""
        hits = []
        for family in self.families:
            for s in family.services:
                words = [s.name, family.name, *s.keywords]
                if any(w and (w in text or (len(text) >= 2 and text in w)) for w in words):
                    hits.append(s)
        return hits


def annotated_entities(example: str) -> list[tuple[str, str]]:
    """[(value, entity)] of a Rasa-annotated example such as "[12路](bus_line)到哪了"."""
    return ANNOTATION.findall(example)


def plain_text(example: str) -> str:
    return ANNOTATION.sub(lambda m: m.group(1), example)


def _more_examples(directory: Path, name: str) -> dict[str, list[str]]:
    """examples/<family>.yaml: the bulk of each service's training examples, kept apart from the
    service definitions so the family files stay readable."""
    path = directory / EXAMPLES_DIR / f"{name}.yaml"
    if not path.exists():
        return {}
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


def load_catalogue(directory: Path = CATALOGUE_DIR) -> Catalogue:
    slots_raw = yaml.safe_load((directory / "_slots.yaml").read_text(encoding="utf-8"))["slots"]
    slots = {name: SlotSpec(name=name, **spec) for name, spec in slots_raw.items()}
    core = yaml.safe_load((directory / "_core.yaml").read_text(encoding="utf-8"))["core_intents"]
    for intent, examples in _more_examples(directory, "_core").items():
        core[intent] = [*core.get(intent, []), *examples]
    families = []
    for path in sorted(directory.glob("[!_]*.yaml")):
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        family = Family(**raw["family"])
        more = _more_examples(directory, family.id)
        family.services = [
            Service(**{**s, "examples": [*s["examples"], *more.pop(s["id"], [])]}, family=family.id)
            for s in raw.get("services", [])
        ]
        if more:
            raise ValueError(f"{EXAMPLES_DIR}/{family.id}.yaml: examples for unknown services {sorted(more)}")
        families.append(family)
    families.sort(key=lambda f: f.order)
    catalogue = Catalogue(families=families, slots=slots, core_intents=core)
    _check(catalogue)
    return catalogue


def _check(catalogue: Catalogue) -> None:
    seen: set[str] = set()
    for s in catalogue.services:
        if s.id in seen or s.id in catalogue.core_intents:
            raise ValueError(f"duplicate service id {s.id}")
        seen.add(s.id)
        unknown = set(s.slots) - set(catalogue.slots)
        if unknown:
            raise ValueError(f"service {s.id}: unknown slots {sorted(unknown)}")
        for example in s.examples:
            for _value, entity in annotated_entities(example):
                if entity not in catalogue.slots:
                    raise ValueError(f"service {s.id}: example {example!r} annotates unknown entity {entity}")


@lru_cache
def catalogue() -> Catalogue:
    return load_catalogue()
