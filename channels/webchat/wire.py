"""Web chat as the gateway sees it: the answer goes back on the citizen's own socket or request, with
real buttons; a session proves a phone by an SMS code."""

from __future__ import annotations

from channels.base import PlainWire

CHANNEL = "webchat"


class WebChatWire(PlainWire):
    name = CHANNEL
    label = "网页聊天"
    answers_in_request = True
    binds_phone = True
    # A browser is easily shared or left signed in: personal records ask for a fresh code after a week.
    phone_proof_days = 7
