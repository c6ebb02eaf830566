"""The test harness every channel's tests share (after nyaruka/courier's handlertest).

A channel's tests are tables: incoming cases (a request, how it is signed → the response and what
the gateway was handed) and outgoing cases (how the provider behaves → what was sent and what the
dispatcher is told). The harness serves the channel's routes on 127.0.0.1, fails any attempt to
reach another host, and checks that no secret, phone number or openid reached the logs."""

from channels.harness.incoming import IncomingCase, RecordingIntake, Signed, run_incoming
from channels.harness.network import loopback_only
from channels.harness.outgoing import OutgoingCase, run_outgoing
from channels.harness.secrets import assert_no_leaks

__all__ = [
    "IncomingCase",
    "OutgoingCase",
    "RecordingIntake",
    "Signed",
    "assert_no_leaks",
    "loopback_only",
    "run_incoming",
    "run_outgoing",
]
