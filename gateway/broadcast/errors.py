"""The one error the broadcast engine raises: a reason in plain Chinese for staff, a machine code for
the API, and the HTTP status it maps to."""

from __future__ import annotations


class BroadcastError(Exception):
    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.status = code, message, status


def not_found(what: str = "广播") -> BroadcastError:
    return BroadcastError("not_found", f"没有找到这条{what}。", 404)


def forbidden(message: str = "您的账号没有这项权限。") -> BroadcastError:
    return BroadcastError("forbidden", message, 403)
