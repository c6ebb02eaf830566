"""Signatures and safe-mode crypto, checked against hashlib, raw AES and wechatpy (an independent implementation)."""

import base64
import hashlib
import random
import re

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from wechatpy.crypto import WeChatCrypto as TheirCrypto
from wechatpy.exceptions import InvalidAppIdException, InvalidSignatureException
from wechatpy.utils import check_signature as their_check_signature

from channels.wechat.crypto import (
    DecryptError,
    InvalidSignature,
    StaleTimestamp,
    WeChatCrypto,
    WeChatCryptoError,
    check_signature,
    check_timestamp,
    msg_signature,
)

TOKEN = "citygw-test-token"
AES_KEY = "5RZfnHapedhIbbscAHwgOxmmFvdvvqQn6+aPTzN7uz4"  # base64(sha256(b"citygw wechat test key")) without "="
APP_ID = "wx5c3b2a1908f7e6d4"
OTHER_KEY = base64.b64encode(bytes(range(32))).decode()[:-1]
TIMESTAMP, NONCE = "1718000700", "1320562132"
NOW = 1718000710.0
XML = (
    "<xml><ToUserName><![CDATA[gh_3f2e1d0c9b8a]]></ToUserName>"
    "<FromUserName><![CDATA[oKrmY5xJ0v1XbQ2d3Wc4Ea5Rf6Tg]]></FromUserName>"
    "<CreateTime>1718000700</CreateTime><MsgType><![CDATA[text]]></MsgType>"
    "<Content><![CDATA[提取住房公积金需要什么材料？]]></Content><MsgId>24612345678901236</MsgId></xml>"
)


@pytest.fixture
def ours() -> WeChatCrypto:
    return WeChatCrypto(TOKEN, AES_KEY, APP_ID)


@pytest.fixture
def theirs() -> TheirCrypto:
    return TheirCrypto(TOKEN, AES_KEY, APP_ID)


def _sha1_hex(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def _raw_encrypt(plain: bytes, key_b64: str = AES_KEY) -> str:
    """AES-256-CBC with WeChat's key and IV, straight from `cryptography`: crafts malformed plaintexts."""
    key = base64.b64decode(key_b64 + "=")
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode()


def _pad(data: bytes) -> bytes:
    n = 32 - len(data) % 32
    return data + bytes([n]) * n


# --- plain-mode signature -----------------------------------------------------------------------


def test_signature_matches_a_recorded_value_and_hashlib():
    # Recorded once with hashlib: sha1 of "1320562132" + "1718000700" + "citygw-test-token" (sorted order).
    recorded = "c665d9eff3d1c86d78a1d3bd960b568f221b166c"
    assert _sha1_hex(TOKEN, TIMESTAMP, NONCE) == recorded
    assert check_signature(TOKEN, TIMESTAMP, NONCE, recorded)
    assert check_signature(TOKEN, NONCE, TIMESTAMP, recorded)  # the parts are sorted, so order is irrelevant


def test_signature_agrees_with_wechatpy():
    signature = _sha1_hex(TOKEN, TIMESTAMP, NONCE)
    their_check_signature(TOKEN, signature, TIMESTAMP, NONCE)  # raises if wechatpy disagrees
    assert check_signature(TOKEN, TIMESTAMP, NONCE, signature)


@pytest.mark.parametrize(
    "forged",
    [
        "",
        "0" * 40,
        _sha1_hex(TOKEN, TIMESTAMP, NONCE).upper(),
        _sha1_hex("wrong-token", TIMESTAMP, NONCE),
        _sha1_hex(TOKEN, "1718000701", NONCE),
        "签名" * 20,  # non-ASCII: must be False, not a TypeError from compare_digest
        "\ud800",  # a lone surrogate, as a badly decoded query string may carry
    ],
)
def test_forged_signatures_are_refused(forged):
    assert check_signature(TOKEN, TIMESTAMP, NONCE, forged) is False
    with pytest.raises(InvalidSignatureException):
        their_check_signature(TOKEN, forged, TIMESTAMP, NONCE)


# --- safe-mode msg_signature and envelope --------------------------------------------------------


def test_msg_signature_agrees_with_hashlib_and_wechatpy(theirs):
    envelope = theirs.encrypt_message(XML, nonce=NONCE, timestamp=TIMESTAMP)
    encrypt = re.search(r"<Encrypt><!\[CDATA\[(.*?)\]\]>", envelope).group(1)
    their_signature = re.search(r"<MsgSignature><!\[CDATA\[(.*?)\]\]>", envelope).group(1)
    assert msg_signature(TOKEN, TIMESTAMP, NONCE, encrypt) == _sha1_hex(TOKEN, TIMESTAMP, NONCE, encrypt)
    assert msg_signature(TOKEN, TIMESTAMP, NONCE, encrypt) == their_signature


def test_wechatpy_encrypts_and_we_decrypt(ours, theirs):
    envelope = theirs.encrypt_message(XML, nonce=NONCE, timestamp=TIMESTAMP)
    encrypt = re.search(r"<Encrypt><!\[CDATA\[(.*?)\]\]>", envelope).group(1)
    signature = re.search(r"<MsgSignature><!\[CDATA\[(.*?)\]\]>", envelope).group(1)
    ours.verify_envelope(TIMESTAMP, NONCE, signature, encrypt, now=NOW)
    assert ours.decrypt(encrypt) == XML


def test_we_encrypt_and_wechatpy_decrypts(ours, theirs):
    encrypt = ours.encrypt(XML)
    signature = msg_signature(TOKEN, TIMESTAMP, NONCE, encrypt)
    assert theirs.decrypt_message({"Encrypt": encrypt}, signature, TIMESTAMP, NONCE) == XML
    assert ours.decrypt(encrypt) == XML


@pytest.mark.parametrize("size", [0, 1, 25, 26, 27, 57, 58, 59, 300])
def test_round_trip_across_padding_boundaries(ours, theirs, size):
    # 16 random + 4 length + message + 18-byte appid: sizes 26 and 58 land on 64 and 96 bytes (a full pad block).
    message = "x" * size
    encrypt = ours.encrypt(message)
    assert ours.decrypt(encrypt) == message
    signature = msg_signature(TOKEN, TIMESTAMP, NONCE, encrypt)
    assert theirs.decrypt_message({"Encrypt": encrypt}, signature, TIMESTAMP, NONCE) == message


def test_injected_random_prefix_makes_encryption_deterministic(ours):
    prefix = b"0123456789abcdef"
    assert ours.encrypt(XML, random_prefix=prefix) == ours.encrypt(XML, random_prefix=prefix)
    assert ours.encrypt(XML) != ours.encrypt(XML)  # fresh random bytes otherwise
    with pytest.raises(ValueError):
        ours.encrypt(XML, random_prefix=b"short")


def test_forged_msg_signature_is_refused(ours):
    encrypt = ours.encrypt(XML)
    with pytest.raises(InvalidSignature):
        ours.verify_envelope(TIMESTAMP, NONCE, "0" * 40, encrypt, now=NOW)
    with pytest.raises(InvalidSignature):  # signed for another Encrypt
        ours.verify_envelope(TIMESTAMP, NONCE, msg_signature(TOKEN, TIMESTAMP, NONCE, "x"), encrypt, now=NOW)
    with pytest.raises(InvalidSignature):  # signed with another token
        ours.verify_envelope(TIMESTAMP, NONCE, msg_signature("other", TIMESTAMP, NONCE, encrypt), encrypt, now=NOW)


@pytest.mark.parametrize("offset_s", [-301, 301, -86400, 86400 * 365])
def test_stale_or_future_timestamps_are_refused(ours, offset_s):
    timestamp = str(int(NOW) + offset_s)
    encrypt = ours.encrypt(XML)
    signature = msg_signature(TOKEN, timestamp, NONCE, encrypt)  # correctly signed, just old or early
    with pytest.raises(StaleTimestamp):
        ours.verify_envelope(timestamp, NONCE, signature, encrypt, now=NOW)


@pytest.mark.parametrize("offset_s", [-300, 0, 300])
def test_timestamps_inside_the_window_pass(ours, offset_s):
    timestamp = str(int(NOW) + offset_s)
    encrypt = ours.encrypt(XML)
    ours.verify_envelope(timestamp, NONCE, msg_signature(TOKEN, timestamp, NONCE, encrypt), encrypt, now=NOW)


@pytest.mark.parametrize("timestamp", ["", "abc", "-5", "+1718000700", "1718000700.5", "1718000700000", "١٧١٨"])
def test_timestamps_must_be_whole_seconds(timestamp):
    # 13 digits is milliseconds (the courier bug), and non-ASCII digits are not digits here.
    with pytest.raises(StaleTimestamp):
        check_timestamp(timestamp, now=NOW)


def test_window_is_configurable():
    assert check_timestamp("1718000000", now=1718000590.0, window_s=600) == 1718000000
    with pytest.raises(StaleTimestamp):
        check_timestamp("1718000000", now=1718000590.0, window_s=60)


# --- decryption failures: always DecryptError ------------------------------------------------------


def test_wrong_aes_key_is_a_decrypt_error(theirs):
    encrypt = re.search(r"<Encrypt><!\[CDATA\[(.*?)\]\]>", theirs.encrypt_message(XML, NONCE, TIMESTAMP)).group(1)
    with pytest.raises(DecryptError):
        WeChatCrypto(TOKEN, OTHER_KEY, APP_ID).decrypt(encrypt)


def test_wrong_app_id_is_a_decrypt_error(ours):
    foreign = TheirCrypto(TOKEN, AES_KEY, "wx0000000000000000")
    encrypt = re.search(r"<Encrypt><!\[CDATA\[(.*?)\]\]>", foreign.encrypt_message(XML, NONCE, TIMESTAMP)).group(1)
    with pytest.raises(DecryptError, match="AppID"):
        ours.decrypt(encrypt)
    # wechatpy agrees that the appid does not match
    signature = msg_signature(TOKEN, TIMESTAMP, NONCE, encrypt)
    with pytest.raises(InvalidAppIdException):
        TheirCrypto(TOKEN, AES_KEY, APP_ID).decrypt_message({"Encrypt": encrypt}, signature, TIMESTAMP, NONCE)


def test_tampering_with_the_last_block_is_a_decrypt_error(ours):
    data = bytearray(base64.b64decode(ours.encrypt(XML, random_prefix=bytes(16))))
    for index in range(len(data) - 16, len(data)):
        tampered = data.copy()
        tampered[index] ^= 0x01
        with pytest.raises(DecryptError):
            ours.decrypt(base64.b64encode(tampered).decode())


def test_cbc_is_malleable_so_msg_signature_must_be_checked_first(ours):
    # CBC has no MAC: flipping a bit in the first ciphertext block flips the same bit of the message's
    # first bytes and only garbles the random prefix, so decrypt succeeds with a different message.
    # msg_signature is the protocol's only integrity check; verify_envelope catches the tamper.
    encrypt = ours.encrypt(XML, random_prefix=bytes(16))
    signature = msg_signature(TOKEN, TIMESTAMP, NONCE, encrypt)
    data = bytearray(base64.b64decode(encrypt))
    data[4] ^= 0x01  # plaintext byte 20: the message's first character
    forged = base64.b64encode(data).decode()
    assert ours.decrypt(forged) == "=" + XML[1:]
    with pytest.raises(InvalidSignature):
        ours.verify_envelope(TIMESTAMP, NONCE, signature, forged, now=NOW)


@pytest.mark.parametrize("flip", [0x01, 0x80])
def test_any_single_byte_tamper_is_caught_and_never_crashes_decrypt(ours, flip):
    encrypt = ours.encrypt(XML, random_prefix=bytes(16))
    signature = msg_signature(TOKEN, TIMESTAMP, NONCE, encrypt)
    data = bytearray(base64.b64decode(encrypt))
    for index in range(len(data)):
        tampered = data.copy()
        tampered[index] ^= flip
        forged = base64.b64encode(tampered).decode()
        with pytest.raises(InvalidSignature):
            ours.verify_envelope(TIMESTAMP, NONCE, signature, forged, now=NOW)
        try:
            assert ours.decrypt(forged) != XML
        except DecryptError:
            pass  # the only exception type allowed


def test_random_garbage_is_always_a_decrypt_error(ours):
    rng = random.Random(4)
    for _ in range(300):
        blob = rng.randbytes(rng.choice([0, 1, 15, 16, 17, 31, 32, 48, 64, 96, 200]))
        with pytest.raises(DecryptError):
            ours.decrypt(base64.b64encode(blob).decode())


@pytest.mark.parametrize(
    ("encrypt", "reason"),
    [
        ("", "whole number of AES blocks"),
        ("not base64 at all!", "base64"),
        ("QUJD", "whole number of AES blocks"),  # 3 bytes
        ("密文", "base64"),
    ],
)
def test_malformed_base64_or_length_is_a_decrypt_error(ours, encrypt, reason):
    with pytest.raises(DecryptError, match=reason):
        ours.decrypt(encrypt)


def _plain(message: bytes, app_id: bytes = APP_ID.encode(), length: int | None = None) -> bytes:
    length = len(message) if length is None else length
    return bytes(16) + length.to_bytes(4, "big") + message + app_id


@pytest.mark.parametrize(
    ("plain", "reason"),
    [
        # plaintext = 16 + 4 + message + 18-byte appid (+ padding); 9- and 8-byte messages align these to 16
        (_plain(b"<xml/>" + b"a" * 4), "padding"),  # no padding at all: the last byte is the appid's "4"
        (_plain(b"<xml/>" + b"a" * 3) + b"\x00", "padding"),  # pad byte 0
        (_plain(b"<xml/>" + b"a" * 3) + bytes([33]) * 33, "padding"),  # pad byte above the 32-byte block
        (_plain(b"<xml/>" + b"a" * 2) + b"\x01\x02", "padding"),  # inconsistent pad bytes
        (_pad(_plain(b"<xml/>", length=10_000)), "length field"),
        (_pad(_plain(b"<xml/>", length=2**32 - 1)), "length field"),
        (_pad(bytes(16) + b"\x00\x00"), "too short"),
        (_pad(_plain(b"\xff\xfe<xml/>")), "UTF-8"),
        (_pad(_plain(b"<xml/>", app_id=b"")), "AppID"),
        (_pad(_plain(b"<xml/>", app_id=APP_ID.encode() + b"x")), "AppID"),
    ],
)
def test_malformed_plaintexts_are_decrypt_errors(ours, plain, reason):
    assert len(plain) % 16 == 0
    with pytest.raises(DecryptError, match=reason):
        ours.decrypt(_raw_encrypt(plain))


def test_errors_share_one_base_and_say_why_without_secrets(ours):
    for error in (DecryptError, InvalidSignature, StaleTimestamp):
        assert issubclass(error, WeChatCryptoError)
    with pytest.raises(WeChatCryptoError) as caught:
        ours.decrypt(_raw_encrypt(_pad(_plain(b"<xml/>", app_id=b"wx-other"))))
    assert caught.value.reason == "message was encrypted for a different AppID"
    assert AES_KEY not in repr(ours) and TOKEN not in repr(ours)


@pytest.mark.parametrize("bad_key", ["", "short", AES_KEY[:-1], AES_KEY + "A", AES_KEY[:-1] + "!", "密" * 43])
def test_a_bad_encoding_aes_key_is_refused_at_construction(bad_key):
    with pytest.raises(ValueError, match="EncodingAESKey") as caught:
        WeChatCrypto(TOKEN, bad_key, APP_ID)
    assert not bad_key or bad_key not in str(caught.value)
