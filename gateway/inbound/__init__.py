"""The one path every citizen's message takes, whatever its channel:

receive (a channel's handler) → dedupe once (Inbound) → webhooks only: the inbox stream and a
TurnRunner → pre-bot responders (responders.py) → the turn (turn.py: refusals, conversation, the
bot) → render for the channel → record → deliver (the request's own answer, or the dispatcher).
"""
