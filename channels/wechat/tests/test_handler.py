"""WeChat callbacks through the shared channel harness. Plain-mode requests are signed the way the
WeChat docs describe (computed here with wechatpy's helpers' algorithm); safe-mode bodies are encrypted
and signed by wechatpy, an independent implementation of the protocol."""

import hashlib
import time
from pathlib import Path

import pytest
from wechatpy.crypto import WeChatCrypto as ReferenceCrypto

from channels.harness import IncomingCase, Signed, run_incoming
from channels.wechat.handler import SUCCESS, WeChatChannel

TOKEN = "citygwToken2026"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"  # 43 characters, as the admin console gives
OTHER_KEY = "ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210zyxwvut"
APP_ID = "wx1234567890abcdef"
OPENID = "oKrmY5xJ0v1XbQ2d3Wc4Ea5Rf6Tg"
DATA = Path(__file__).with_name("testdata")
PATH = "/channels/wechat"


def payload(name: str) -> str:
    return (DATA / f"{name}.xml").read_text()


def _signature(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def plain(timestamp: int | None = None, token: str = TOKEN):
    def sign(_url, _body) -> Signed:
        ts, nonce = str(timestamp if timestamp is not None else int(time.time())), "1320562132"
        return Signed(query={"signature": _signature(token, ts, nonce), "timestamp": ts, "nonce": nonce})

    return sign


def safe(key: str = AES_KEY, timestamp: int | None = None, tamper: bool = False, app_id: str = APP_ID):
    """wechatpy encrypts and signs the body, as WeChat's servers do in safe mode."""

    def sign(_url, body) -> Signed:
        ts, nonce = str(timestamp if timestamp is not None else int(time.time())), "938275019"
        envelope = ReferenceCrypto(TOKEN, key, app_id).encrypt_message(body, nonce, ts)
        # wechatpy returns a reply envelope; a callback carries the same <Encrypt> and its msg_signature.
        encrypt = envelope.split("<Encrypt><![CDATA[")[1].split("]]>")[0]
        msg_signature = envelope.split("<MsgSignature><![CDATA[")[1].split("]]>")[0]
        if tamper:
            encrypt = encrypt[:-8] + ("A" * 8 if not encrypt.endswith("A" * 8) else "B" * 8)
        query = {
            "signature": _signature(TOKEN, ts, nonce),
            "timestamp": ts,
            "nonce": nonce,
            "openid": OPENID,
            "encrypt_type": "aes",
            "msg_signature": msg_signature if not tamper else _signature(TOKEN, ts, nonce, encrypt),
        }
        body_out = (
            f"<xml><ToUserName><![CDATA[gh_3f2e1d0c9b8a]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
        )
        return Signed(query=query, body=body_out)

    return sign


TEXT = {"channel": "wechat", "sender": OPENID, "external_id": "24612345678901234", "text": "5路车还有多久到？"}
XXE = '<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY x SYSTEM "file:///etc/passwd">]><xml><ToUserName>a</ToUserName><FromUserName>&x;</FromUserName><CreateTime>1</CreateTime><MsgType>text</MsgType><Content>x</Content><MsgId>1</MsgId></xml>'
LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;">'
    '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;">]><xml><Content>&lol3;</Content></xml>'
)

PLAIN_CASES = [
    IncomingCase("text", PATH, payload("text"), sign=plain(), response=SUCCESS, message=TEXT),
    IncomingCase("WeChat's three retries → one message", PATH, payload("text"), sign=plain(), repeat=4, accepted=1),
    IncomingCase(
        "subscribe",
        PATH,
        payload("event_subscribe"),
        sign=plain(),
        message={"text": "", "metadata": {"msg_type": "event", "account": "gh_3f2e1d0c9b8a", "event": "subscribe"}},
    ),
    IncomingCase(
        "menu click, deduplicated by sender, CreateTime and event",
        PATH,
        payload("event_click"),
        sign=plain(),
        message={
            "external_id": f"{OPENID}:1718000300:click:MENU_BUS_ARRIVAL",
            "metadata": {
                "msg_type": "event",
                "account": "gh_3f2e1d0c9b8a",
                "event": "click",
                "event_key": "MENU_BUS_ARRIVAL",
            },
        },
    ),
    IncomingCase("an image is a message without text", PATH, payload("image"), sign=plain(), message={"text": ""}),
    IncomingCase("unsigned", PATH, payload("text"), status=403),
    IncomingCase("signed with another token", PATH, payload("text"), sign=plain(token="guessed"), status=403),
    IncomingCase("replayed an hour later", PATH, payload("text"), sign=plain(int(time.time()) - 3600), status=403),
    IncomingCase("timestamp in milliseconds", PATH, payload("text"), sign=plain(int(time.time() * 1000)), status=403),
    IncomingCase("malformed XML", PATH, "<xml><ToUserName>", sign=plain(), status=400),
    IncomingCase("not XML at all", PATH, b"\xff\xfe\x00garbage", sign=plain(), status=400),
    IncomingCase("XXE", PATH, XXE, sign=plain(), status=400),
    IncomingCase("entity expansion", PATH, LAUGHS, sign=plain(), status=400),
    IncomingCase(
        "missing FromUserName", PATH, payload("text").replace("FromUserName", "Nobody"), sign=plain(), status=400
    ),
    IncomingCase("oversized body", PATH, payload("text").replace("5路车", "车" * 40000), sign=plain(), status=413),
    IncomingCase("safe-mode body sent to a plain-mode account", PATH, payload("text"), sign=safe(), status=400),
]

SAFE_CASES = [
    IncomingCase("encrypted text", PATH, payload("text"), sign=safe(), response=SUCCESS, message=TEXT),
    IncomingCase("encrypted, retried", PATH, payload("text"), sign=safe(), repeat=3, accepted=1),
    IncomingCase("encrypted with the wrong AES key", PATH, payload("text"), sign=safe(key=OTHER_KEY), status=400),
    IncomingCase(
        "encrypted for another app", PATH, payload("text"), sign=safe(app_id="wxffffffffffffffff"), status=400
    ),
    IncomingCase(
        "ciphertext changed, signature recomputed without the key",
        PATH,
        payload("text"),
        sign=safe(tamper=True),
        status=400,
    ),
    IncomingCase("plain text to a safe-mode account", PATH, payload("text"), sign=plain(), status=400),
    IncomingCase(
        "stale safe-mode timestamp", PATH, payload("text"), sign=safe(timestamp=int(time.time()) - 900), status=403
    ),
]

VERIFY_CASES = [
    IncomingCase(
        "verification echoes echostr",
        PATH,
        "",
        method="GET",
        query={"echostr": "4567812345"},
        sign=plain(),
        response="4567812345",
    ),
    IncomingCase(
        "verification with a wrong signature",
        PATH,
        "",
        method="GET",
        query={"echostr": "x"},
        sign=plain(token="no"),
        status=403,
    ),
    IncomingCase("verification without echostr", PATH, "", method="GET", sign=plain(), status=400),
]


def plain_channel(intake):
    return WeChatChannel(TOKEN, intake).routes()


def safe_channel(intake):
    return WeChatChannel(TOKEN, intake, APP_ID, AES_KEY).routes()


@pytest.mark.parametrize("case", PLAIN_CASES + VERIFY_CASES, ids=lambda c: c.name)
async def test_plain_mode(case, caplog):
    await run_incoming(case, plain_channel, caplog, [TOKEN, OPENID])


@pytest.mark.parametrize("case", SAFE_CASES, ids=lambda c: c.name)
async def test_safe_mode(case, caplog):
    await run_incoming(case, safe_channel, caplog, [TOKEN, AES_KEY, OPENID])
