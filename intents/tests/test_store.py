"""The domain's tables stand alone: a process that never loads the gateway (the action server run by
rasa-sdk directly, a domain script) creates them and books against them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ALONE = """
import sys
from sqlmodel import Session, SQLModel, create_engine
from intents.store.models import Application, Booking, Subscription

engine = create_engine("sqlite://")
SQLModel.metadata.create_all(engine)
with Session(engine) as db:
    db.add_all([Booking(ref="B1", service_id="s", citizen_id=5), Subscription(citizen_id=5, topic="t"),
                Application(ref="A1", service_id="s", citizen_id=5)])
    db.commit()
print(sorted(m for m in sys.modules if m.split(".")[0] == "gateway"))
"""


def test_the_domain_tables_are_written_without_the_gateway_loaded():
    done = subprocess.run(
        [sys.executable, "-c", ALONE], cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"
