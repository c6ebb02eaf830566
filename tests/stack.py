"""A running system for tests: Rasa + action server + gateway processes on free ports, against a
fresh database (SQLite file or a new PostgreSQL database) and in-memory state or real Redis."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import text
from sqlmodel import Session

from gateway.config import REPO_ROOT, Settings
from gateway.db.engine import sync_engine
from gateway.db.migrate import upgrade
from gateway.db.seed import seed
from gateway.demo import TWILIO, WECHAT, WECHATPAY, ensure_merchant_key, wechatpay_args
from gateway.rasa_env import start_actions, start_rasa, stop, wait_http
from intents.city.pack import load_pack

FIXED_NOW = "2026-11-25T10:00:00"  # a Wednesday morning: buses run, banks and clinics are open
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/0"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def empty_database(kind: str, directory: Path, file: str = "citygw.db", prefix: str = "citygw_test") -> str:
    """A new database migrated to the head schema, with no data: the SQLite file `file` in directory, or
    a PostgreSQL database named `prefix`_<random>."""
    if kind == "sqlite":
        url = f"sqlite:///{directory / file}"
    else:
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        admin = sync_engine(PG_ADMIN_URL).execution_options(isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        url = f"postgresql://postgres@127.0.0.1:5432/{name}"
    upgrade(url)
    return url


def fresh_database(kind: str, directory: Path) -> str:
    """An empty database with the city data pack seeded into it."""
    url = empty_database(kind, directory)
    seed(url, load_pack())
    return url


def drop_database(url: str) -> None:
    if url.startswith("postgresql"):
        name = url.rsplit("/", 1)[1]
        admin = sync_engine(PG_ADMIN_URL).execution_options(isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@dataclass
class Stack:
    name: str
    database_url: str
    redis_url: str | None
    directory: Path
    model: Path
    gateway_port: int = field(default_factory=free_port)
    rasa_port: int = field(default_factory=free_port)
    action_port: int = field(default_factory=free_port)
    twilio_port: int = field(default_factory=free_port)
    wechat_port: int = field(default_factory=free_port)
    wechatpay_port: int = field(default_factory=free_port)
    processes: list[subprocess.Popen] = field(default_factory=list)
    prefix: str = field(default_factory=lambda: f"citygw-test-{uuid.uuid4().hex[:8]}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    @property
    def twilio_url(self) -> str:
        return f"http://127.0.0.1:{self.twilio_port}"

    @property
    def wechat_url(self) -> str:
        return f"http://127.0.0.1:{self.wechat_port}"

    @property
    def wechatpay_url(self) -> str:
        return f"http://127.0.0.1:{self.wechatpay_port}"

    @property
    def merchant_key(self) -> Path:
        return self.directory / "wechatpay-merchant.pem"

    @property
    def rasa_url(self) -> str:
        return f"http://127.0.0.1:{self.rasa_port}"

    def env(self) -> dict[str, str]:
        env = {
            **os.environ,
            "CITYGW_DATABASE_URL": self.database_url,
            "CITYGW_RASA_URL": self.rasa_url,
            "CITYGW_PORT": str(self.gateway_port),
            "CITYGW_ACTION_PORT": str(self.action_port),
            "CITYGW_FIXED_NOW": FIXED_NOW,
            "CITYGW_RATE_LIMIT_PER_MINUTE": "1000",
            "CITYGW_RATE_LIMIT_PER_ADDRESS_PER_MINUTE": "100000",  # every test citizen comes from 127.0.0.1
            "CITYGW_QUEUE_PREFIX": self.prefix,
            # The local provider servers this stack starts, with the demo's credentials.
            "CITYGW_LOCAL_PROVIDERS": "false",
            "CITYGW_TWILIO_API_BASE": self.twilio_url,
            "CITYGW_WECHAT_API_BASE": self.wechat_url,
            "CITYGW_SMS_RATE": "0",
            **{f"CITYGW_{k.upper()}": v for k, v in {**TWILIO, **WECHAT, **WECHATPAY}.items()},
            "CITYGW_WECHATPAY_PRIVATE_KEY": str(self.merchant_key),
            "CITYGW_WECHATPAY_API_BASE": self.wechatpay_url,
            "CITYGW_PAYMENT_SWEEP_S": "0.5",  # unpaid orders made to expire are closed within a test
        }
        if self.redis_url:
            env["CITYGW_REDIS_URL"] = self.redis_url
        else:
            env.pop("CITYGW_REDIS_URL", None)
        return env

    def log(self, name: str) -> Path:
        return self.directory / f"{name}.log"

    def start(self) -> None:
        public_key = ensure_merchant_key(self.merchant_key)
        env = self.env()
        actions = start_actions(self.action_port, self.log("actions"), env)
        self.processes.append(actions)
        rasa = start_rasa(Settings(), self.model, self.rasa_port, self.action_port, self.log("rasa"))
        self.processes.append(rasa)
        twilio = ["--account-sid", TWILIO["twilio_account_sid"], "--auth-token", TWILIO["twilio_auth_token"]]
        self._spawn("twilio", ["-m", "providers.twilio_api", "--port", str(self.twilio_port), *twilio], env)
        wechat = ["--app-id", WECHAT["wechat_app_id"], "--secret", WECHAT["wechat_app_secret"]]
        self._spawn("wechat", ["-m", "providers.wechat_api", "--port", str(self.wechat_port), *wechat], env)
        self._spawn("wechatpay", wechatpay_args(self.wechatpay_port, public_key), env)
        self._spawn("gateway", ["-m", "gateway.cli", "run", "--no-rasa"], env)

    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> None:
        process = subprocess.Popen(
            [sys.executable, *args],
            cwd=REPO_ROOT,
            env=env,
            stdout=self.log(name).open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes.append(process)

    def wait(self) -> None:
        actions, rasa, twilio, wechat, wechatpay, gateway = self.processes
        wait_http(f"{self.twilio_url}/_control/stats", 30, twilio, self.log("twilio"))
        wait_http(f"{self.wechat_url}/_control/state", 30, wechat, self.log("wechat"))
        wait_http(f"{self.wechatpay_url}/_control/orders", 30, wechatpay, self.log("wechatpay"))
        wait_http(f"http://127.0.0.1:{self.action_port}/health", 90, actions, self.log("actions"))
        wait_http(f"{self.rasa_url}/status", 240, rasa, self.log("rasa"))
        wait_http(f"{self.url}/healthz", 60, gateway, self.log("gateway"))

    def stop(self) -> None:
        for proc in reversed(self.processes):
            stop(proc)
        drop_database(self.database_url)

    def db(self) -> Session:
        return Session(sync_engine(self.database_url))
