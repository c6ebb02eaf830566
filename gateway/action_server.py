"""The action server as the gateway runs it: rasa-sdk serving bot.actions, with the gateway's
implementations of the domain's ports (gateway.domain_ports) plugged in, and citizens' identifiers
masked in everything it logs (common/logfilter.py): rasa-sdk's error reply quotes the whole tracker and
its log prints the traceback.

    python -m gateway.action_server -p 5055     (rasa-sdk's own arguments; --actions defaults to bot.actions)
"""

from __future__ import annotations

import logging
import sys

from rasa_sdk.__main__ import main_from_args
from rasa_sdk.endpoint import create_argument_parser

from common.logfilter import MaskingFilter, install
from common.trace import JsonFormatter
from gateway.config import get_settings
from gateway.db.engine import async_engine, session_factory
from gateway.domain_ports import plug_into_domain

ACTIONS = "bot.actions"

# On import, not in main(): rasa-sdk serves from Sanic worker processes it spawns, and each imports this
# module afresh (as __mp_main__) before it runs an action, but never runs rasa-sdk's logging set-up or
# main(). Workers print through this handler (warnings and errors, as Python's last-resort handler did);
# in the parent rasa-sdk swaps it for its coloured one, which keeps the filter.
install()
logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)-8s %(name)s  - %(message)s")
for handler in logging.getLogger().handlers:
    handler.addFilter(MaskingFilter())
    if get_settings().log_format == "json":  # with the trace id the gateway put in the turn's metadata
        handler.setFormatter(JsonFormatter())
plug_into_domain(session_factory(async_engine(get_settings().database_url)), get_settings())


def main(argv: list[str] | None = None) -> None:
    args = create_argument_parser().parse_args(sys.argv[1:] if argv is None else argv)
    args.actions = args.actions or ACTIONS
    main_from_args(args)


if __name__ == "__main__":
    main()
