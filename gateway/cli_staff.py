"""`citygw staff …`: create the first administrator and other staff accounts from a terminal."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys

from gateway.config import Settings

PASSWORD_ENV = "CITYGW_ADMIN_PASSWORD"


def _password(args: argparse.Namespace) -> str | None:
    """--password, else CITYGW_ADMIN_PASSWORD, else asked twice at the terminal."""
    if args.password:
        return args.password
    if os.environ.get(PASSWORD_ENV):
        return os.environ[PASSWORD_ENV]
    if not sys.stdin.isatty():
        print(f"没有密码：请用 --password、环境变量 {PASSWORD_ENV} 或在终端中输入。", file=sys.stderr)
        return None
    first = getpass.getpass("密码：")
    if first != getpass.getpass("再输入一次："):
        print("两次输入的密码不一致。", file=sys.stderr)
        return None
    return first


def _create(
    settings: Settings, username: str, password: str, role: str, display_name: str | None, school: str | None
) -> int:
    from gateway.db.engine import async_engine, session_factory
    from gateway.db.migrate import upgrade
    from gateway.staff import accounts, audit
    from gateway.staff.errors import ApiError

    upgrade(settings.database_url)

    async def run() -> int:
        engine = async_engine(settings.database_url)
        try:
            async with session_factory(engine)() as db:
                try:
                    user = await accounts.create_staff(
                        db, username=username, password=password, role=role, display_name=display_name, school_id=school
                    )
                except ApiError as exc:
                    print(exc.message, file=sys.stderr)
                    return 1
                audit.record(
                    db,
                    "user_create",
                    staff_id=None,
                    target=f"staff:{user.id}",
                    detail={"username": username, "role": role, "school_id": school, "via": "cli"},
                )
                await db.commit()
                print(f"已创建账号 {username}（{accounts.ROLE_NAMES[role]}，编号 {user.id}）")
                return 0
        finally:
            await engine.dispose()

    return asyncio.run(run())


def cmd_create_admin(args: argparse.Namespace, settings: Settings) -> int:
    password = _password(args)
    if password is None:
        return 2
    return _create(settings, args.username, password, "admin", args.display_name, None)


def cmd_add(args: argparse.Namespace, settings: Settings) -> int:
    password = _password(args)
    if password is None:
        return 2
    return _create(settings, args.username, password, args.role, args.display_name, args.school)


def register(sub: argparse._SubParsersAction) -> None:
    from gateway.staff.schemas import ROLES

    staff = sub.add_parser("staff", help="staff accounts for the console and the staff API")
    commands = staff.add_subparsers(dest="staff_command", required=True)
    admin = commands.add_parser("create-admin", help="create an administrator account")
    admin.add_argument("username")
    admin.add_argument("--password", help=f"default: ${PASSWORD_ENV}, else asked at the terminal")
    admin.add_argument("--display-name")
    admin.set_defaults(func=cmd_create_admin)
    add = commands.add_parser("add", help="create a staff account with a role")
    add.add_argument("username")
    add.add_argument("--role", required=True, choices=ROLES)
    add.add_argument("--school", help="school id (required for --role school)")
    add.add_argument("--password", help=f"default: ${PASSWORD_ENV}, else asked at the terminal")
    add.add_argument("--display-name")
    add.set_defaults(func=cmd_add)
