"""WeChat Official Account request signatures and safe-mode (安全模式) message encryption.

Plain mode signs each callback with `signature` = sha1 of the sorted token, timestamp and nonce.
Safe mode adds `msg_signature` = sha1 of the sorted token, timestamp, nonce and the <Encrypt> text,
and carries the message AES-256-CBC encrypted. The cipher layout is WeChat's protocol, not a design
choice of ours, and we must match it byte for byte:

- key = base64decode(EncodingAESKey + "="): the 43-character key from the admin console, 32 bytes;
- IV = key[:16]: a fixed IV derived from the key. That is weak practice (equal plaintext prefixes give
  equal ciphertext prefixes), which is why WeChat puts 16 random bytes first in every plaintext;
- plaintext = 16 random bytes + 4-byte big-endian message length + message (UTF-8) + app id,
  PKCS#7-padded to a multiple of 32 bytes (not AES's 16);
- the ciphertext has no MAC. Its only integrity check is msg_signature, so callers must verify the
  envelope (`WeChatCrypto.verify_envelope`) BEFORE decrypting, or the decrypt errors become an oracle.

Every failure raises a subclass of WeChatCryptoError carrying a plain-English `reason` that never
contains the token, the key or the plaintext."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

BLOCK = 32  # WeChat pads to 32-byte blocks
RANDOM_LEN = 16
TIMESTAMP_WINDOW_S = 300
_SECONDS = re.compile(r"[0-9]{1,10}")  # ASCII digits only; 13 digits would be milliseconds


class WeChatCryptoError(Exception):
    """Base of every signature and crypto failure; callers turn it into an HTTP 4xx."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InvalidSignature(WeChatCryptoError):
    """signature or msg_signature does not match: not from WeChat, or tampered with."""


class StaleTimestamp(WeChatCryptoError):
    """The signed timestamp is outside the accepted window (a replay, or a badly wrong clock)."""


class DecryptError(WeChatCryptoError):
    """The <Encrypt> text does not decrypt to a well-formed message for this account."""


def _sha1_sorted(*parts: str) -> str:
    # surrogatepass: query strings may decode to lone surrogates; they must fail the check, not raise.
    return hashlib.sha1("".join(sorted(parts)).encode("utf-8", "surrogatepass")).hexdigest()


def _same(expected: str, given: str) -> bool:
    # Compare bytes: compare_digest refuses non-ASCII str with TypeError, and a forged signature
    # may contain anything.
    return hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8", "surrogatepass"))


def check_signature(token: str, timestamp: str, nonce: str, signature: str) -> bool:
    """The plain-mode `signature` query parameter (GET verification and every POST)."""
    return _same(_sha1_sorted(token, timestamp, nonce), signature)


def msg_signature(token: str, timestamp: str, nonce: str, encrypt: str) -> str:
    """The safe-mode `msg_signature`: sha1 of the sorted token, timestamp, nonce and <Encrypt> text."""
    return _sha1_sorted(token, timestamp, nonce, encrypt)


def check_timestamp(timestamp: str, now: float, window_s: float = TIMESTAMP_WINDOW_S) -> int:
    """Return the timestamp (seconds) if it is within window_s of now, else raise StaleTimestamp.

    Both directions count: a timestamp far in the future is as suspicious as an old one."""
    if not _SECONDS.fullmatch(timestamp):
        raise StaleTimestamp("timestamp is not a whole number of seconds")
    seconds = int(timestamp)
    if abs(now - seconds) > window_s:
        raise StaleTimestamp(f"timestamp is {now - seconds:.0f} s away from now (window {window_s:.0f} s)")
    return seconds


class WeChatCrypto:
    """Safe-mode crypto for one Official Account (token, EncodingAESKey, AppID)."""

    def __init__(self, token: str, encoding_aes_key: str, app_id: str) -> None:
        try:
            key = base64.b64decode(encoding_aes_key + "=", validate=True)
        except ValueError:  # binascii.Error (bad base64) is a ValueError, as is non-ASCII input
            key = b""
        if len(key) != 32:
            # Never echo the key itself: error messages end up in logs.
            raise ValueError("EncodingAESKey must be the 43-character base64 key from the WeChat console (32 bytes)")
        if not app_id:
            raise ValueError("app_id must not be empty")
        self._token = token
        self._key = key
        self._app_id = app_id.encode("utf-8")

    def __repr__(self) -> str:
        return f"WeChatCrypto(app_id={self._app_id.decode()!r})"

    def _cipher(self) -> Cipher:
        return Cipher(algorithms.AES(self._key), modes.CBC(self._key[:16]))  # IV = key[:16]: WeChat's protocol

    def verify_envelope(
        self,
        timestamp: str,
        nonce: str,
        msg_signature: str,
        encrypt: str,
        now: float,
        window_s: float = TIMESTAMP_WINDOW_S,
    ) -> None:
        """Check a safe-mode POST's msg_signature over its <Encrypt> text, then its timestamp.

        Raises InvalidSignature or StaleTimestamp. Call this before `decrypt`."""
        expected = _sha1_sorted(self._token, timestamp, nonce, encrypt)
        if not _same(expected, msg_signature):
            raise InvalidSignature("msg_signature does not match the token, timestamp, nonce and Encrypt")
        check_timestamp(timestamp, now, window_s)

    def decrypt(self, encrypt_b64: str) -> str:
        """The XML message inside a verified <Encrypt> text. Raises DecryptError, never anything else."""
        try:
            data = base64.b64decode(encrypt_b64.strip(), validate=True)
        except ValueError:  # binascii.Error or non-ASCII input
            raise DecryptError("Encrypt is not valid base64") from None
        if not data or len(data) % 16:
            raise DecryptError("ciphertext length is not a whole number of AES blocks")
        decryptor = self._cipher().decryptor()
        plain = decryptor.update(data) + decryptor.finalize()

        pad = plain[-1]
        if not 1 <= pad <= BLOCK or pad > len(plain) or plain[-pad:] != bytes([pad]) * pad:
            raise DecryptError("bad padding (wrong EncodingAESKey, or a corrupted message)")
        body = plain[RANDOM_LEN:-pad]
        if len(body) < 4:
            raise DecryptError("plaintext too short to hold a length field")
        length = int.from_bytes(body[:4], "big")
        if length > len(body) - 4:
            raise DecryptError("length field is larger than the plaintext")
        message, app_id = body[4 : 4 + length], body[4 + length :]
        if not hmac.compare_digest(app_id, self._app_id):
            raise DecryptError("message was encrypted for a different AppID")
        try:
            return message.decode("utf-8")
        except UnicodeDecodeError:
            raise DecryptError("message is not valid UTF-8") from None

    def encrypt(self, xml: str, random_prefix: bytes | None = None) -> str:
        """Encrypt a message the way WeChat does; random_prefix (16 bytes) is injectable for tests."""
        if random_prefix is None:
            random_prefix = secrets.token_bytes(RANDOM_LEN)
        if len(random_prefix) != RANDOM_LEN:
            raise ValueError(f"random_prefix must be {RANDOM_LEN} bytes")
        message = xml.encode("utf-8")
        plain = random_prefix + len(message).to_bytes(4, "big") + message + self._app_id
        pad = BLOCK - len(plain) % BLOCK  # 1..32: a full block of padding when already aligned
        plain += bytes([pad]) * pad
        encryptor = self._cipher().encryptor()
        return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode("ascii")
