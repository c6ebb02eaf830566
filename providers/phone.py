"""A citizen's phone for the demo: sends an SMS or a WeChat message to the gateway's webhook exactly
as Twilio or WeChat would (signed, and encrypted in WeChat's safe mode), then shows what the local
provider server was asked to deliver back to that phone.

    citygw phone sms "12路到哪了"
    citygw phone wechat "预约市人民医院"
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import aiohttp
from twilio.request_validator import RequestValidator

from channels.wechat.crypto import WeChatCrypto, msg_signature


def twilio_webhook(
    url: str, auth_token: str, sender: str, to: str, text: str, sid: str | None = None
) -> tuple[dict, dict]:
    """(form, headers) of Twilio's inbound-SMS webhook, signed as Twilio signs it."""
    form = {
        "MessageSid": sid or f"SM{secrets.token_hex(16)}",
        "AccountSid": "AC" + "0" * 32,
        "From": sender,
        "To": to,
        "Body": text,
        "NumMedia": "0",
        "ApiVersion": "2010-04-01",
    }
    return form, {"X-Twilio-Signature": RequestValidator(auth_token).compute_signature(url, form)}


def wechat_webhook(
    token: str, openid: str, text: str, account: str = "gh_citygw", aes_key: str | None = None, app_id: str = ""
) -> tuple[dict[str, str], str]:
    """(query, body) of a WeChat text-message callback; encrypted and signed when aes_key is given."""
    now, nonce = str(int(time.time())), str(secrets.randbelow(10**9))
    msg_id = str(secrets.randbelow(10**17))
    body = (
        f"<xml><ToUserName><![CDATA[{account}]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
        f"<CreateTime>{now}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        f"<Content><![CDATA[{text}]]></Content><MsgId>{msg_id}</MsgId></xml>"
    )
    query = {"signature": _sha1(token, now, nonce), "timestamp": now, "nonce": nonce, "openid": openid}
    if aes_key:
        encrypt = WeChatCrypto(token, aes_key, app_id).encrypt(body)
        query.update(encrypt_type="aes", msg_signature=msg_signature(token, now, nonce, encrypt))
        body = f"<xml><ToUserName><![CDATA[{account}]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
    return query, body


def _sha1(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


async def wait_for_replies(
    session: aiohttp.ClientSession, messages_url: str, to_field: str, address: str, seen: int, timeout_s: float = 30
) -> list[dict[str, Any]]:
    """Poll a local provider's recorded messages until new ones to `address` stop arriving."""
    replies: list[dict[str, Any]] = []
    deadline, quiet_since = time.monotonic() + timeout_s, None
    while time.monotonic() < deadline:
        async with session.get(messages_url) as response:
            data = await response.json()
        rows = data.get("messages", data) if isinstance(data, dict) else data
        mine = [m for m in rows if m.get(to_field) == address]
        if len(mine) > seen + len(replies):
            replies, quiet_since = mine[seen:], time.monotonic()
        elif replies and quiet_since and time.monotonic() - quiet_since > 1.0:
            return replies
        await asyncio.sleep(0.2)
    return replies


@dataclass(frozen=True)
class DemoPhone(ABC):
    """One kind of citizen's phone: how it reaches the gateway's webhook and where its replies show up."""

    webhook: str  # path on the gateway
    default_sender: str
    replies_field: str  # the recipient's field in the local provider's recorded messages

    @abstractmethod
    def request(self, base: str, settings: Any, secrets_: dict[str, str], sender: str, text: str) -> dict[str, Any]: ...

    @abstractmethod
    def replies_url(self, settings: Any) -> str: ...

    @abstractmethod
    def show(self, reply: dict[str, Any]) -> str: ...


class SmsPhone(DemoPhone):
    def request(self, base: str, settings: Any, secrets_: dict[str, str], sender: str, text: str) -> dict[str, Any]:
        url = f"{base}{self.webhook}"
        form, headers = twilio_webhook(url, secrets_["twilio_auth_token"], sender, settings.twilio_from, text)
        return {"url": url, "data": form, "headers": headers}

    def replies_url(self, settings: Any) -> str:
        return f"http://127.0.0.1:{settings.local_twilio_port}/_control/messages?limit=100000"

    def show(self, reply: dict[str, Any]) -> str:
        return f"短信（{reply['segments']}条计费）：{reply['body']}"


class WeChatPhone(DemoPhone):
    def request(self, base: str, settings: Any, secrets_: dict[str, str], sender: str, text: str) -> dict[str, Any]:
        token, aes_key, app_id = secrets_["wechat_token"], secrets_["wechat_aes_key"], secrets_["wechat_app_id"]
        query, body = wechat_webhook(token, sender, text, aes_key=aes_key, app_id=app_id)
        return {"url": f"{base}{self.webhook}", "params": query, "data": body.encode()}

    def replies_url(self, settings: Any) -> str:
        return f"http://127.0.0.1:{settings.local_wechat_port}/_control/messages?limit=100000"

    def show(self, reply: dict[str, Any]) -> str:
        return f"微信：{reply.get('text') or reply.get('data')}"


PHONES: dict[str, DemoPhone] = {
    "sms": SmsPhone("/channels/twilio/sms", "+8613900000001", "to"),
    "wechat": WeChatPhone("/channels/wechat", "oDemoCitizen000000000000001", "touser"),
}
