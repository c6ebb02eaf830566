"""Inbound WeChat XML: every recorded-style fixture, and every hostile or broken body refused as BadMessage."""

from datetime import UTC, datetime
from pathlib import Path

import pytest

from channels.wechat.crypto import WeChatCrypto
from channels.wechat.parse import MAX_BODY, MAX_FIELD_CHARS, BadMessage, WeChatMessage, parse_envelope, parse_message

TESTDATA = Path(__file__).parent / "testdata"
ACCOUNT = "gh_3f2e1d0c9b8a"
OPENID = "oKrmY5xJ0v1XbQ2d3Wc4Ea5Rf6Tg"
TICKET = "gQH47joAAAAAAAAAASxodHRwOi8vd2VpeGluLnFxLmNvbS9xL2F6MVRlc3RUaWNrZXQAAgSAAAAA"


def fixture(name: str) -> bytes:
    return (TESTDATA / name).read_bytes()


def body(*fields: str, root: str = "xml") -> str:
    return f"<{root}>{''.join(fields)}</{root}>"


HEAD = (
    f"<ToUserName><![CDATA[{ACCOUNT}]]></ToUserName>",
    f"<FromUserName><![CDATA[{OPENID}]]></FromUserName>",
    "<CreateTime>1718000000</CreateTime>",
)
TEXT = (*HEAD, "<MsgType><![CDATA[text]]></MsgType>", "<Content><![CDATA[你好]]></Content>", "<MsgId>1</MsgId>")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "text.xml",
            dict(msg_type="text", create_time=1718000000, msg_id="24612345678901234", content="5路车还有多久到？"),
        ),
        ("event_subscribe.xml", dict(msg_type="event", create_time=1718000100, event="subscribe", event_key=None)),
        (
            "event_subscribe_qrscene.xml",
            dict(msg_type="event", event="subscribe", event_key="qrscene_1001", extra={"Ticket": TICKET}),
        ),
        ("event_unsubscribe.xml", dict(msg_type="event", create_time=1718000200, event="unsubscribe", event_key=None)),
        ("event_click.xml", dict(msg_type="event", event="click", event_key="MENU_BUS_ARRIVAL", extra={})),
        ("event_scan.xml", dict(msg_type="event", event="scan", event_key="1001", extra={"Ticket": TICKET})),
        (
            "event_location.xml",
            dict(
                msg_type="event",
                event="location",
                msg_id=None,
                extra={"Latitude": "45.579889", "Longitude": "84.889207", "Precision": "30.000000"},
            ),
        ),
        (
            "image.xml",
            dict(
                msg_type="image",
                msg_id="24612345678901235",
                content=None,
                event=None,
                extra={
                    "PicUrl": "http://mmbiz.qpic.cn/mmbiz_jpg/test0123456789/0",
                    "MediaId": "Xy9_kT3mPq1RsV5wZ7bC2dE4fG6hJ8kL0mN2pQ4rS6tU8vW0xY2zA4bC6dE8fG0h",
                },
            ),
        ),
    ],
)
def test_fixtures_parse_to_the_expected_fields(name, expected):
    for raw in (fixture(name), fixture(name).decode("utf-8")):  # bytes from the request, or str after decrypt
        message = parse_message(raw)
        assert message.to_user == ACCOUNT and message.from_user == OPENID
        for attribute, value in expected.items():
            assert getattr(message, attribute) == value, attribute


def test_messages_dedupe_by_msg_id_and_events_by_sender_and_create_time():
    assert parse_message(fixture("text.xml")).dedupe_key == "24612345678901234"
    assert parse_message(fixture("image.xml")).dedupe_key == "24612345678901235"
    assert parse_message(fixture("event_subscribe.xml")).dedupe_key == f"{OPENID}:1718000100:subscribe:"
    assert parse_message(fixture("event_click.xml")).dedupe_key == f"{OPENID}:1718000300:click:MENU_BUS_ARRIVAL"


def test_create_time_is_seconds():
    message = parse_message(fixture("text.xml"))
    assert message.create_time == 1718000000
    assert message.created_at == datetime(2024, 6, 10, 6, 13, 20, tzinfo=UTC)


def test_messages_are_frozen_and_hashable():
    message = parse_message(fixture("event_location.xml"))
    with pytest.raises(AttributeError):
        message.from_user = "someone else"  # type: ignore[misc]
    with pytest.raises(TypeError):
        message.extra["Latitude"] = "0"  # type: ignore[index]
    assert hash(message) == hash(parse_message(fixture("event_location.xml")))
    assert isinstance(message, WeChatMessage)


def test_text_content_is_kept_as_sent_and_may_be_empty():
    spaced = parse_message(body(*TEXT[:4], "<Content><![CDATA[  查公交1路 \n]]></Content>"))
    assert spaced.content == "  查公交1路 \n"
    assert parse_message(body(*TEXT[:4], "<Content></Content>")).content == ""  # the pipeline refuses it politely


def test_nested_fields_are_ignored_and_unknown_fields_kept():
    message = parse_message(
        body(
            *HEAD,
            "<MsgType>event</MsgType><Event>scancode_push</Event><EventKey>scan1</EventKey>",
            "<ScanCodeInfo><ScanType>qrcode</ScanType><ScanResult>1</ScanResult></ScanCodeInfo>",
            "<Future>x</Future>",
        )
    )
    assert message.event == "scancode_push" and message.extra == {"Future": "x"}


def test_safe_mode_envelope_fixture_verifies_decrypts_and_parses():
    # Recorded with wechatpy 1.8 for this fixture: the query string WeChat sends alongside the body.
    timestamp, nonce, signature = "1718000700", "1320562132", "cdece2976e287ea3af6f47d9d30afe1ef6528b07"
    crypto = WeChatCrypto("citygw-test-token", "5RZfnHapedhIbbscAHwgOxmmFvdvvqQn6+aPTzN7uz4", "wx5c3b2a1908f7e6d4")
    envelope = parse_envelope(fixture("safe_mode_envelope.xml"))
    assert envelope.to_user == ACCOUNT
    crypto.verify_envelope(timestamp, nonce, signature, envelope.encrypt, now=1718000705)
    message = parse_message(crypto.decrypt(envelope.encrypt))
    assert (message.from_user, message.msg_type, message.msg_id) == (OPENID, "text", "24612345678901236")
    assert message.content == "提取住房公积金需要什么材料？" and message.create_time == 1718000700


def test_envelope_without_to_user_is_accepted():
    assert parse_envelope("<xml><Encrypt><![CDATA[QUJD]]></Encrypt></xml>").to_user is None


@pytest.mark.parametrize(
    "raw",
    [
        "<xml><ToUserName>gh_1</ToUserName></xml>",
        "<xml><Encrypt></Encrypt></xml>",
        "<xml><Encrypt>QUJD</Encrypt><Encrypt>REVG</Encrypt></xml>",
        "<xml><Encrypt><b>QUJD</b></Encrypt></xml>",
        '<!DOCTYPE xml SYSTEM "file:///etc/passwd"><xml><Encrypt>QUJD</Encrypt></xml>',
        b"\x00\x01 not xml",
    ],
)
def test_bad_envelopes_are_refused(raw):
    with pytest.raises(BadMessage):
        parse_envelope(raw)


XXE = f"""<?xml version="1.0"?>
<!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
{body(*TEXT[:4], "<Content>&xxe;</Content>")}"""
XXE_EXTERNAL_DTD = f"""<?xml version="1.0"?>
<!DOCTYPE xml SYSTEM "file:///etc/passwd">
{body(*TEXT)}"""
XXE_PARAMETER = f"""<?xml version="1.0"?>
<!DOCTYPE xml [<!ENTITY % remote SYSTEM "http://127.0.0.1:9/evil.dtd"> %remote;]>
{body(*TEXT)}"""
BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY lol "lol">'
    + "".join(f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, 10))
    + "]>"
    + body(*TEXT[:4], "<Content>&lol9;</Content>")
)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (XXE, "DTD"),
        (XXE_EXTERNAL_DTD, "DTD"),
        (XXE_PARAMETER, "DTD"),
        (BILLION_LAUGHS, "DTD"),
        (fixture("text.xml")[:-20], "well-formed"),  # truncated
        (b"", "well-formed"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "well-formed"),  # non-XML bytes
        ("success", "well-formed"),
        ('{"ToUserName": "gh_1"}', "well-formed"),
        (body(*TEXT[:4], "<Content>\xff</Content>").encode("latin-1"), "well-formed"),  # not UTF-8
        (b'<?xml version="1.0" encoding="no-such"?><xml/>', "decoded"),
        (body(*TEXT, "<MsgId>2</MsgId>"), "more than once"),
        (body(*TEXT, root="message"), "root element"),
        (body(TEXT[0], *TEXT[2:]), "FromUserName is missing"),
        (body(TEXT[0], "<FromUserName>  </FromUserName>", *TEXT[2:]), "FromUserName is missing"),
        (body(TEXT[0], "<FromUserName><x>o1</x></FromUserName>", *TEXT[2:]), "FromUserName is missing"),
        (body(*TEXT[1:]), "ToUserName is missing"),
        (body(*TEXT[:2], *TEXT[3:]), "CreateTime is missing"),
        (body(*TEXT[:3], *TEXT[4:]), "MsgType is missing"),
        (body(*TEXT[:4]), "no Content"),
        (body(*HEAD, "<MsgType>event</MsgType><EventKey>k</EventKey>"), "Event is missing"),
    ],
)
def test_hostile_or_broken_bodies_are_bad_messages(raw, reason):
    with pytest.raises(BadMessage, match=reason):
        parse_message(raw)


@pytest.mark.parametrize("create_time", ["abc", "", "-1", "+1718000000", "1718000000.5", "1718000000000", "١٧١٨"])
def test_create_time_must_be_whole_seconds(create_time):
    # 13 digits is milliseconds: the courier bug this project must not repeat. Non-ASCII digits are refused.
    with pytest.raises(BadMessage, match="CreateTime"):
        parse_message(body(*TEXT[:2], f"<CreateTime>{create_time}</CreateTime>", *TEXT[3:]))


def test_oversized_bodies_and_fields_are_bad_messages():
    one_megabyte = body(*TEXT[:4], f"<Content>{'字' * (1024 * 1024)}</Content>")
    for raw in (one_megabyte, one_megabyte.encode("utf-8")):
        with pytest.raises(BadMessage, match="larger than"):
            parse_message(raw)
    too_long = body(*TEXT[:4], f"<Content>{'a' * (MAX_FIELD_CHARS + 1)}</Content>")
    assert len(too_long) < MAX_BODY
    with pytest.raises(BadMessage, match="longer than"):
        parse_message(too_long)
    fits = body(*TEXT[:4], f"<Content>{'a' * MAX_FIELD_CHARS}</Content>")
    assert parse_message(fits).content == "a" * MAX_FIELD_CHARS


def test_bad_message_carries_a_plain_reason():
    with pytest.raises(BadMessage) as caught:
        parse_message(body(*TEXT[:2], "<CreateTime>abc</CreateTime>", *TEXT[3:]))
    assert caught.value.reason == "CreateTime is not a whole number of seconds"


def test_a_long_wechat_answer_continues_at_a_line_break():
    from channels.base import Reply
    from channels.wechat.wire import CONTINUED, MAX_CHARS, WeChatWire

    lines = [f"第{i}行：" + "内容" * 20 for i in range(20)]  # ~45 characters a line, 900 in all
    rendering = WeChatWire().render([Reply("\n".join(lines))])
    shown = rendering.messages[0].text.removesuffix(CONTINUED)
    assert len(shown) <= MAX_CHARS and shown.endswith("\n")
    assert rendering.rest.startswith("第") and shown + rendering.rest == "\n".join(lines)
