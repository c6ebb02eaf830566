"""The application server's VAPID key (RFC 8292): a P-256 key pair. The private key signs a short-lived
token on every push; the public key is the `applicationServerKey` browsers subscribe with, so a push
service only accepts messages for that subscription from the holder of the private key."""

from __future__ import annotations

import re

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from channels.webpush.subscription import b64url_decode, b64url_encode

_SUBJECT = re.compile(r"^(mailto:[^@\s]+@[^@\s]+|https://[^\s/]+(/\S*)?)\Z")


class VapidKeyError(ValueError):
    pass


def load_private_key(text: str) -> ec.EllipticCurvePrivateKey:
    """A PEM private key (PKCS#8 or SEC 1), or the 32-byte raw key in base64url that web-push tools print."""
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_private_key(text.encode(), password=None)
        else:
            raw = b64url_decode(text.replace("\n", ""))
            if len(raw) != 32:
                raise VapidKeyError("a raw VAPID private key is 32 bytes in base64url")
            key = ec.derive_private_key(int.from_bytes(raw, "big"), ec.SECP256R1())
    except (ValueError, TypeError) as exc:
        if isinstance(exc, VapidKeyError):
            raise
        raise VapidKeyError("the VAPID private key is neither PEM nor base64url raw") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise VapidKeyError("the VAPID key must be an EC key on P-256 (prime256v1)")
    return key


def generate_private_key_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return pem.decode("ascii")


def public_key_b64(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> str:
    """The uncompressed public point in base64url: the browser's `applicationServerKey`, VAPID's `k`."""
    public = key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey) else key
    point = public.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return b64url_encode(point)


def check_subject(subject: str) -> str:
    """VAPID's `sub` claim: a contact for the push service's operators, mailto: or https: (RFC 8292 §2.1)."""
    if not _SUBJECT.match(subject or ""):
        raise VapidKeyError("the VAPID subject must be a mailto: address or an https: URL")
    return subject
