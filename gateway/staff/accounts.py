"""Staff accounts: create, list, disable. Shared by the API and the `citygw staff` commands."""

from __future__ import annotations

import re

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from gateway.db.models import School, StaffSession, StaffUser
from gateway.staff.errors import ApiError, not_found
from gateway.staff.passwords import hash_password_async, password_problem
from gateway.staff.schemas import ROLES

USERNAME = re.compile(r"^[A-Za-z0-9_.-]{3,64}$")
ROLE_NAMES = {
    "admin": "管理员",
    "broadcaster": "发布员",
    "approver": "审批员",
    "school": "学校教职工",
    "viewer": "只读用户",
    "agent": "人工客服",
}


async def create_staff(
    db: AsyncSession,
    *,
    username: str,
    password: str,
    role: str,
    display_name: str | None = None,
    school_id: str | None = None,
) -> StaffUser:
    """Add an account (flushed, not committed). Raises ApiError with a Chinese reason."""
    if not USERNAME.match(username):
        raise ApiError(400, "invalid", "用户名须为3到64个字母、数字或 _ . -。", field="username")
    if role not in ROLES:
        raise ApiError(400, "invalid", f"角色须为以下之一：{'、'.join(ROLES)}。", field="role")
    problem = password_problem(password, username)
    if problem:
        raise ApiError(400, "invalid", problem, field="password")
    if role == "school":
        if not school_id:
            raise ApiError(400, "invalid", "学校教职工账号必须指定学校（school_id）。", field="school_id")
        if await db.get(School, school_id) is None:
            raise ApiError(400, "invalid", f"没有编号为“{school_id}”的学校。", field="school_id")
    elif school_id:
        raise ApiError(400, "invalid", "只有学校教职工账号才能指定学校。", field="school_id")
    if (await db.exec(select(StaffUser.id).where(StaffUser.username == username))).first() is not None:
        raise ApiError(409, "username_taken", f"用户名“{username}”已被使用。", field="username")
    user = StaffUser(
        username=username,
        display_name=display_name or username,
        password_hash=await hash_password_async(password),
        role=role,
        school_id=school_id,
    )
    db.add(user)
    try:
        await db.flush()
    except IntegrityError as exc:  # the same username created twice at once
        await db.rollback()
        raise ApiError(409, "username_taken", f"用户名“{username}”已被使用。", field="username") from exc
    return user


async def list_staff(db: AsyncSession) -> list[StaffUser]:
    return list((await db.exec(select(StaffUser).order_by(col(StaffUser.id)))).all())


async def disable_staff(db: AsyncSession, staff_id: int, by: StaffUser) -> StaffUser:
    """Mark the account inactive and end its sessions at once."""
    user = await db.get(StaffUser, staff_id)
    if user is None:
        raise not_found(f"没有编号为{staff_id}的账号。")
    if user.id == by.id:
        raise ApiError(409, "self", "不能停用自己的账号。")
    user.active = False
    db.add(user)
    await db.exec(delete(StaffSession).where(col(StaffSession.staff_id) == staff_id))
    await db.flush()
    return user
