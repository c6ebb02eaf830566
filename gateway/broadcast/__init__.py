"""Staff broadcasts and school notices: emergencies, public notices and school notices sent to many
citizens by SMS or WeChat.

    service.py    what the staff API calls: preview, create, approve, cancel, retry, progress, …
    audience.py   audience JSON → validated Audience → SQL (channel choice per citizen)
    runner.py     BroadcastRunner: fan-out in batches, crash resume, completion
    render.py     the SMS text, the WeChat template message, the priority
    quiet.py      city time and quiet hours;  phones.py  uploaded phone lists;  lease.py  fan-out lease

Their delivery outcomes are the ledger's (gateway/outbound/ledger.py, recipients.py).
DESIGN.md explains fan-out, crash resume and why nobody is messaged twice."""
