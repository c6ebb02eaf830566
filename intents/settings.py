"""The domain's own settings, read from the same environment variables (and .env) as the gateway's, so
one environment configures both: where the database is, which city, and a pinned clock for tests."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = f"sqlite:///{REPO_ROOT / 'var' / 'citygw.db'}"
DEFAULT_CITY_PACK = REPO_ROOT / "data" / "karamay"


class DomainSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CITYGW_", env_file=".env", extra="ignore")

    database_url: str = DEFAULT_DATABASE_URL
    city_pack: Path = DEFAULT_CITY_PACK
    fixed_now: str | None = None  # ISO local time, e.g. 2026-11-25T10:00:00; pins the clock for demos and tests
    payment_ttl_min: int = 30  # how long a pay link can be paid; on the real clock (money moves in real time)


@lru_cache
def get_settings() -> DomainSettings:
    return DomainSettings()
