"""Questions the handlers ask of the city data by the names citizens use (slots hold names)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from intents.city.pack import KIND_FIELDS, CityPack, Kind, Showing, UtilityKind


@dataclass
class Resolution:
    match: str | None  # the canonical name when the text names exactly one thing
    suggestions: list[str] = field(default_factory=list)


def resolve(pack: CityPack, kind: Kind, text: str) -> Resolution:
    """An exact name or alias wins; a partial name wins only if it fits one thing (人民医院 fits
    several hospitals' names but is 克拉玛依市人民医院's alias); otherwise offer the candidates."""
    candidates = pack.resolve(kind, text)
    if not candidates:
        return Resolution(None)
    exact = [c for c in candidates if c.how == "exact"]
    contains = [c for c in candidates if c.how == "contains"]
    if exact:
        return Resolution(exact[0].name)
    if len(contains) == 1:
        return Resolution(contains[0].name)
    return Resolution(None, [c.name for c in candidates])


def named(pack: CityPack, kind: str, name: str) -> Any:
    """The item whose canonical name this is (slots hold canonical names): an exact match, no fuzzing."""
    for item in getattr(pack, KIND_FIELDS[kind]):
        if item.name == name:
            return item
    raise KeyError(f"no {kind} named {name!r}")


def departments_of(pack: CityPack, hospital_name: str) -> list[str]:
    hospital = named(pack, "hospital", hospital_name)
    return [pack.department(d).name for d in hospital.departments]


def showings(pack: CityPack, film_title: str | None = None, cinema_name: str | None = None) -> list[Showing]:
    film_id = named(pack, "film", film_title).id if film_title else None
    cinema_id = named(pack, "cinema", cinema_name).id if cinema_name else None
    return pack.showings_of(film_id, cinema_id)


def cinemas_showing(pack: CityPack, film_title: str) -> list[str]:
    ids = dict.fromkeys(s.cinema for s in showings(pack, film_title))
    return [pack.cinema(i).name for i in ids]


def show_times(pack: CityPack, film_title: str, cinema_name: str) -> list[str]:
    return sorted({t for s in showings(pack, film_title, cinema_name) for t in s.times})


def showing_at(pack: CityPack, film_title: str, cinema_name: str, time: str) -> Showing | None:
    return next((s for s in showings(pack, film_title, cinema_name) if time in s.times), None)


def utility_kind_of(pack: CityPack, text: str) -> UtilityKind | None:
    for kind in pack.utility_kinds:
        if any(name in text for name in kind.names):
            return kind
    found = resolve(pack, "utility_kind", text)
    return named(pack, "utility_kind", found.match) if found.match else None
