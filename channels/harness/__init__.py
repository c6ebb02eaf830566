"""The test harness every channel's tests share (after nyaruka/courier's handlertest).

A channel's tests are tables: incoming cases (a request, how it is signed → the response and what
the gateway was handed) and outgoing cases (how the provider behaves → what was sent and what the
dispatcher is told). The harness serves the channel's routes, or sends through the channel's real
sender to a local provider server, on 127.0.0.1; it fails any attempt to reach another host, and
checks that no secret, phone number or openid reached the logs. README.md shows a channel's use."""

from channels.harness.incoming import IncomingCase, RecordingIntake, Signed, run_incoming
from channels.harness.network import loopback_only, unused_url
from channels.harness.outgoing import ANY, OutgoingCase, SenderFactory, run_outgoing
from channels.harness.secrets import assert_no_leaks

__all__ = [
    "ANY",
    "IncomingCase",
    "OutgoingCase",
    "RecordingIntake",
    "SenderFactory",
    "Signed",
    "assert_no_leaks",
    "loopback_only",
    "run_incoming",
    "run_outgoing",
    "unused_url",
]
