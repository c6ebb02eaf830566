"""WeChat Official Account inbound XML: plain messages and events, and safe-mode envelopes.

Bodies are parsed with defusedxml and any DTD is refused, so external entities (XXE) and entity
expansion ("billion laughs") never reach the parser's resolver. WeChat never sends a DTD. Anything we
cannot trust — malformed XML, a missing or duplicated required field, a CreateTime that is not whole
seconds, an oversized body or field — raises BadMessage with a plain-English reason, which callers
answer with HTTP 400. CreateTime is in SECONDS (courier read it as milliseconds)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType

import defusedxml.ElementTree as DET
from defusedxml import DefusedXmlException

MAX_BODY = 64 * 1024  # bytes (characters for str input); a safe-mode envelope of a long text fits
MAX_FIELD_CHARS = 8192  # well above the pipeline's own text limit, so it can refuse politely
_SECONDS = re.compile(r"[0-9]{1,10}")  # ASCII digits only; 13 digits would be milliseconds
_REQUIRED = ("ToUserName", "FromUserName", "CreateTime", "MsgType")
_MAPPED = frozenset({*_REQUIRED, "MsgId", "Content", "Event", "EventKey"})


class BadMessage(Exception):
    """The body is not a WeChat message we can trust; callers answer HTTP 400."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class WeChatMessage:
    to_user: str  # the Official Account's original id (gh_...)
    from_user: str  # the citizen's openid for this account
    create_time: int  # seconds since 1970
    msg_type: str  # lowercased: text | image | voice | video | location | link | event | ...
    msg_id: str | None = None  # absent on events
    content: str | None = None  # text messages only, as sent (not stripped)
    event: str | None = None  # lowercased: subscribe | unsubscribe | click | view | scan | location | ...
    event_key: str | None = None  # CLICK menu key, SCAN scene id, "qrscene_..." on subscribe by QR code
    # Other top-level fields as sent (PicUrl, MediaId, Latitude, Ticket, ...); nested ones are dropped.
    extra: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), hash=False)

    @property
    def dedupe_key(self) -> str:
        """WeChat retries unanswered callbacks: dedupe by MsgId, events by FromUserName + CreateTime as
        WeChat documents, plus the event and its key: a follow and a menu click in the same second are
        two events, while a retry repeats all four fields."""
        if self.msg_id:
            return self.msg_id
        return f"{self.from_user}:{self.create_time}:{self.event or ''}:{self.event_key or ''}"

    @property
    def created_at(self) -> datetime:
        return datetime.fromtimestamp(self.create_time, UTC)


@dataclass(frozen=True)
class Envelope:
    """A safe-mode POST body. Only `encrypt` is covered by msg_signature; the decrypted message's own
    ToUserName is the trustworthy one."""

    encrypt: str
    to_user: str | None = None


def _root(xml: bytes | str) -> ET.Element:
    if not isinstance(xml, bytes | str):
        raise BadMessage("body must be bytes or str")
    if len(xml) > MAX_BODY:
        raise BadMessage(f"body is larger than {MAX_BODY} bytes")
    try:
        root = DET.fromstring(xml, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException:
        raise BadMessage("XML with a DTD or entities is refused") from None
    except ET.ParseError as exc:
        raise BadMessage(f"not well-formed XML ({exc})") from None
    except (ValueError, LookupError):  # unknown encoding, lone surrogates in str input
        raise BadMessage("XML text cannot be decoded") from None
    if root.tag != "xml":
        raise BadMessage(f"root element is <{root.tag}>, expected <xml>")
    return root


def _leaves(root: ET.Element) -> dict[str, str]:
    """Top-level text fields. A repeated field is refused: which copy would another parser pick?"""
    fields: dict[str, str] = {}
    seen: set[str] = set()
    for child in root:
        if child.tag in seen:
            raise BadMessage(f"{child.tag} appears more than once")
        seen.add(child.tag)
        if len(child):
            continue  # nested structures (ScanCodeInfo, SendPicsInfo) are not used here
        text = child.text or ""
        if len(text) > MAX_FIELD_CHARS:
            raise BadMessage(f"{child.tag} is longer than {MAX_FIELD_CHARS} characters")
        fields[child.tag] = text
    return fields


def _required(fields: dict[str, str], name: str) -> str:
    value = fields.get(name, "").strip()
    if not value:
        raise BadMessage(f"{name} is missing or empty")
    return value


def parse_message(xml: bytes | str) -> WeChatMessage:
    """A plain (or decrypted) WeChat message or event. Raises BadMessage."""
    fields = _leaves(_root(xml))
    to_user, from_user, create_time, msg_type = (_required(fields, name) for name in _REQUIRED)
    if not _SECONDS.fullmatch(create_time):
        raise BadMessage("CreateTime is not a whole number of seconds")
    msg_type = msg_type.lower()
    content = fields.get("Content")
    if msg_type == "text" and content is None:
        raise BadMessage("text message has no Content")
    event = _required(fields, "Event").lower() if msg_type == "event" else None
    return WeChatMessage(
        to_user=to_user,
        from_user=from_user,
        create_time=int(create_time),
        msg_type=msg_type,
        msg_id=fields.get("MsgId", "").strip() or None,
        content=content,
        event=event,
        event_key=fields.get("EventKey") or None,  # plain subscribe sends an empty EventKey
        extra=MappingProxyType({k: v for k, v in fields.items() if k not in _MAPPED}),
    )


def parse_envelope(xml: bytes | str) -> Envelope:
    """The <Encrypt> text (and ToUserName, if present) of a safe-mode POST body. Raises BadMessage.

    Encrypt is limited only by MAX_BODY, not MAX_FIELD_CHARS: base64 ciphertext is longer than the
    message inside it."""
    fields = _envelope_fields(_root(xml))
    encrypt = fields.get("Encrypt", "").strip()
    if not encrypt:
        raise BadMessage("safe-mode body has no Encrypt")
    return Envelope(encrypt=encrypt, to_user=fields.get("ToUserName", "").strip() or None)


def _envelope_fields(root: ET.Element) -> dict[str, str]:
    fields: dict[str, str] = {}
    for name in ("Encrypt", "ToUserName"):
        found = root.findall(name)
        if len(found) > 1:
            raise BadMessage(f"{name} appears more than once")
        if found and not len(found[0]):
            fields[name] = found[0].text or ""
    return fields
