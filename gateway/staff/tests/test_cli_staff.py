"""`citygw staff create-admin` and `citygw staff add` against a SQLite file: as a subprocess (the real
command line), and in-process through the same argparse registration for the refusals."""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from gateway import cli_staff
from gateway.config import REPO_ROOT, Settings
from gateway.staff.passwords import verify_password


@pytest.fixture
def database(city_template: Path, tmp_path: Path) -> Path:
    path = tmp_path / "cli.db"
    shutil.copyfile(city_template, path)
    return path


def citygw(database: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "CITYGW_ADMIN_PASSWORD"}
    environ |= {"CITYGW_DATABASE_URL": f"sqlite:///{database}", **env}
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", "staff", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        env=environ,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )


def account(database: Path, username: str) -> dict | None:
    with contextlib.closing(sqlite3.connect(database)) as conn:
        conn.row_factory = sqlite3.Row
        row = conn.execute("SELECT * FROM staffuser WHERE username = ?", (username,)).fetchone()
        return dict(row) if row else None


def test_create_admin_with_password_option(database: Path) -> None:
    result = citygw(database, "create-admin", "root", "--password", "a strong password")
    assert result.returncode == 0, result.stderr
    assert "root" in result.stdout
    user = account(database, "root")
    assert user and user["role"] == "admin" and user["active"] == 1 and user["school_id"] is None
    assert user["password_hash"].startswith("$argon2id$") and "a strong password" not in user["password_hash"]
    assert verify_password(user["password_hash"], "a strong password")
    with contextlib.closing(sqlite3.connect(database)) as conn:
        (detail,) = conn.execute("SELECT detail FROM auditlog WHERE action = 'user_create'").fetchone()
    assert '"cli"' in detail
    # Again: refused, and the first account is untouched.
    again = citygw(database, "create-admin", "root", "--password", "another password")
    assert again.returncode == 1 and "已被使用" in again.stderr
    assert account(database, "root")["password_hash"] == user["password_hash"]


def test_create_admin_reads_the_password_from_the_environment(database: Path) -> None:
    result = citygw(database, "create-admin", "envadmin", CITYGW_ADMIN_PASSWORD="from the environment")
    assert result.returncode == 0, result.stderr
    assert verify_password(account(database, "envadmin")["password_hash"], "from the environment")


def test_without_any_password_and_no_terminal_it_refuses(database: Path) -> None:
    result = citygw(database, "create-admin", "nopass")
    assert result.returncode == 2 and "CITYGW_ADMIN_PASSWORD" in result.stderr
    assert account(database, "nopass") is None


def run_in_process(database: Path, *argv: str) -> int:
    parser = argparse.ArgumentParser(prog="citygw")
    cli_staff.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["staff", *argv])
    return args.func(args, Settings(database_url=f"sqlite:///{database}"))


def test_add_staff_with_a_role_and_school(database: Path) -> None:
    result = citygw(
        database, "add", "teacher9", "--role", "school", "--school", "s1", "--password", "a strong password"
    )
    assert result.returncode == 0, result.stderr
    user = account(database, "teacher9")
    assert (user["role"], user["school_id"]) == ("school", "s1")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("add", "teacher2x", "--role", "school", "--password", "a strong password"), "学校"),
        (("add", "teacher3x", "--role", "school", "--school", "nope", "--password", "a strong password"), "nope"),
        (("add", "viewer4x", "--role", "viewer", "--password", "short"), "密码"),
        (("add", "viewer5x", "--role", "viewer", "--school", "s1", "--password", "a strong password"), "学校"),
        (("add", "no", "--role", "viewer", "--password", "a strong password"), "用户名"),
    ],
    ids=["school-without-school", "unknown-school", "short-password", "school-for-viewer", "short-username"],
)
def test_add_refuses_with_a_reason(database: Path, capsys, argv: tuple[str, ...], message: str) -> None:
    assert run_in_process(database, *argv) == 1
    assert message in capsys.readouterr().err
    assert account(database, argv[1]) is None


def test_add_offers_only_the_known_roles(database: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        run_in_process(database, "add", "king5x", "--role", "king", "--password", "a strong password")
    assert exit_.value.code == 2 and "invalid choice" in capsys.readouterr().err
