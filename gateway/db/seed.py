"""Loads the city data pack into the database, and the demo population (residents, schools, guardians:
gateway.db.people). Idempotent: rows that exist are left alone, so re-seeding never undoes a citizen's
payment or booking, and never duplicates a resident."""

from __future__ import annotations

from sqlmodel import Session

from gateway.db.engine import sync_engine
from gateway.db.models import BankBranch, Cinema, Community, District, Hospital, UtilityAccount
from gateway.db.people import DEFAULT_SEED, DEMO_RESIDENTS, seed_people
from intents.city.pack import CityPack

# The pack's rows; all but utility accounts are keyed by `id`.
PackRow = District | Community | Hospital | Cinema | BankBranch | UtilityAccount


def rows(pack: CityPack) -> list[PackRow]:
    out: list[PackRow] = [District(id=d.id, name=d.name) for d in pack.districts]
    out += [Community(id=c.id, name=c.name, district_id=c.district) for c in pack.communities]
    out += [
        Hospital(id=h.id, name=h.name, district_id=h.district, address=h.address, phone=h.phone) for h in pack.hospitals
    ]
    out += [Cinema(id=c.id, name=c.name, district_id=c.district, address=c.address) for c in pack.cinemas]
    out += [
        BankBranch(id=b.id, name=b.name, district_id=b.district, address=b.address, hours=b.hours)
        for b in pack.bank_branches
    ]
    out += [
        UtilityAccount(
            account_no=a.account_no,
            kind=a.kind,
            holder=a.holder,
            address=a.address,
            period=a.period,
            amount_due_fen=round(a.amount_due_yuan * 100),
            balance_fen=round(a.balance_yuan * 100),
        )
        for a in pack.utility_accounts
    ]
    return out


def seed(url: str, pack: CityPack) -> int:
    """Insert what is missing; returns how many rows were added."""
    engine = sync_engine(url)
    added = 0
    with Session(engine) as db:
        previous: type | None = None
        for row in rows(pack):
            if previous is not None and type(row) is not previous:
                db.flush()  # parents before children: districts, then what refers to them
            previous = type(row)
            key = row.account_no if isinstance(row, UtilityAccount) else row.id
            if db.get(type(row), key) is None:
                db.add(row)
                added += 1
        db.commit()
    engine.dispose()
    return added


def seed_population(
    url: str, pack: CityPack, residents: int = DEMO_RESIDENTS, seed_: int = DEFAULT_SEED
) -> dict[str, int]:
    """The first `residents` residents of the demo population across the pack's communities, and the
    schools with their students and guardians. Needs the city data (communities) seeded first.
    Returns what was added per kind."""
    return seed_people(url, [c.id for c in pack.communities], residents, seed_)
