"""Small pieces of HTTP that several channels share: what their senders read from providers' answers, and
the access log their webhooks are served with."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse


def retry_after_s(value: str | None) -> float | None:
    """A Retry-After header in seconds (RFC 9110: delay seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None


class PrivateAccessLogger(AbstractAccessLogger):
    """aiohttp's access log without query strings: WeChat puts the citizen's openid in the callback
    URL, and signatures and tokens travel there too."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        if self.logger.isEnabledFor(logging.INFO):
            self.logger.info(
                '%s "%s %s" %s %s %.1fms',
                request.remote,
                request.method,
                request.path,
                response.status,
                response.body_length,
                time * 1000,
            )
