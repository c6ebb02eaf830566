"""Settings from the environment (prefix CITYGW_) with embedded defaults for a laptop."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CITYGW_", env_file=".env", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8080
    # Embedded default: a SQLite file and in-process state; set both for a multi-process deployment.
    database_url: str = f"sqlite:///{REPO_ROOT / 'var' / 'citygw.db'}"
    redis_url: str | None = None

    rasa_url: str = "http://127.0.0.1:5005"
    rasa_timeout_s: float = 10.0
    rasa_retries: int = 2
    breaker_failures: int = 3
    breaker_reset_s: float = 15.0
    action_port: int = 5055

    city_pack: Path = REPO_ROOT / "data" / "karamay"
    max_text_chars: int = 1000
    rate_limit_per_minute: int = 30
    dedupe_ttl_s: int = 7 * 24 * 3600
    history_limit: int = 50
    log_level: str = "INFO"

    cache_dir: Path = Field(default_factory=lambda: Path.home() / ".cache" / "citygw")
    python310: str | None = None
    fixed_now: str | None = None  # ISO local time, e.g. 2026-11-25T10:00:00; pins the clock for demos and tests


@lru_cache
def get_settings() -> Settings:
    return Settings()
