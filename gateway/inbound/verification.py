"""Six-digit SMS codes that prove a sender holds a phone, as phone binding (gateway.inbound.binding) and guardian
binding (gateway.inbound.schools) both ask for them: stored hashed and salted in state for five minutes, five wrong
tries end the attempt, one code per phone per minute whichever of the two asked."""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Awaitable, Callable

from channels.base import Outgoing
from channels.sms.wire import SmsWire
from gateway.state import StateStore

CODE_RE = re.compile(r"^\d{6}$")
CODE_TTL_S = 300
RESEND_S = 60
MAX_TRIES = 5

TOO_SOON = "验证码已发送，请1分钟后再试。"
WRONG = "验证码不正确，还可以再试{left}次。"


def _hash(code: str, salt: str) -> str:
    return hashlib.sha256(f"{salt}:{code}".encode()).hexdigest()


async def new_code(state: StateStore, phone: str) -> tuple[str, dict] | None:
    """A fresh code for the phone and what state keeps of it ({"hash", "salt"}), or None when a code
    went to that phone in the last minute."""
    if not await state.claim(f"bind-sent:{phone}", RESEND_S):
        return None
    code, salt = f"{secrets.randbelow(10**6):06d}", secrets.token_hex(8)
    return code, {"hash": _hash(code, salt), "salt": salt}


def matches(code: str, stored: dict) -> bool:
    """Whether the code is the one stored ({"hash", "salt"} from new_code)."""
    return secrets.compare_digest(_hash(code, stored["salt"]), stored["hash"])


async def wrong_try(state: StateStore, key: str, pending: dict, exhausted: str) -> str:
    """Counts a wrong code against the attempt pending at key: at MAX_TRIES the attempt ends and the
    reply is `exhausted`, else the reply says how many tries are left."""
    pending["tries"] += 1
    if pending["tries"] >= MAX_TRIES:
        await state.set_json(key, None, 1)
        return exhausted
    await state.set_json(key, pending, CODE_TTL_S)
    return WRONG.format(left=MAX_TRIES - pending["tries"])


async def send_code(
    enqueue: Callable[[Outgoing], Awaitable[object]], phone: SmsWire, to: str, text: str, ref: str
) -> None:
    """The SMS that carries a code (text already holds it), signed as every SMS is."""
    sms = phone.signed(text)
    await enqueue(Outgoing(channel=phone.name, to=to, text=sms.text, ref=ref, segments=sms.segments or 1))
