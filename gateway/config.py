"""Settings from the environment (prefix CITYGW_) with embedded defaults for a laptop."""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from intents.settings import DEFAULT_CITY_PACK, DEFAULT_DATABASE_URL

REPO_ROOT = Path(__file__).resolve().parent.parent
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def networks(spec: str) -> tuple[Network, ...]:
    """Networks from "10.0.0.1, 192.168.0.0/16, ::1"; ValueError on a bad entry."""
    return tuple(ipaddress.ip_network(part.strip(), strict=False) for part in spec.split(",") if part.strip())


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CITYGW_", env_file=".env", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8080
    # Embedded default: a SQLite file and in-process state; set both for a multi-process deployment.
    database_url: str = DEFAULT_DATABASE_URL  # the domain (intents.settings) reads the same variables
    redis_url: str | None = None

    rasa_url: str = "http://127.0.0.1:5005"
    rasa_timeout_s: float = 10.0
    rasa_retries: int = 2
    breaker_failures: int = 3
    breaker_reset_s: float = 15.0
    action_port: int = 5055

    city_pack: Path = DEFAULT_CITY_PACK
    max_text_chars: int = 1000
    rate_limit_per_minute: int = 30
    # Web chat messages per client network address (an IPv6 /64) in any minute, whatever the session:
    # new sessions cost nothing, so the address is what slows one client down.
    rate_limit_per_address_per_minute: int = 120
    dedupe_ttl_s: int = 7 * 24 * 3600
    history_limit: int = 50
    # A person when the bot is not enough (gateway/handoff): agents answer in these hours, Beijing time
    # (the city's official clock); outside them, or with no agent online, the citizen is told when.
    handoff_hours: str = "10:00-19:30"
    handoff_minutes_per_citizen: int = 4  # for the expected wait told to a citizen who asks for a person
    handoff_sla_s: tuple[int, int] = (120, 300)  # waiting this long turns the console's clock amber, then red
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"  # json: one object a line, with the trace id of the message handled
    # GET /metrics needs `Authorization: Bearer <this>`; unset, only loopback clients may scrape.
    metrics_token: str | None = None

    # Webhooks. Providers sign the URL they call; behind a proxy that is this base, not what we see.
    public_base_url: str | None = None
    # Reverse proxies (addresses or networks, comma-separated) whose X-Forwarded-For names the client
    # for staff sign-in limits, the audit log and web chat's per-address limit. Empty: the connection's
    # own address, so that nobody can pick their address by writing the header.
    forwarded_allow_ips: str = ""
    # Signs web chat session ids (16+ characters); gateways on several machines need the same one.
    # Unset: one made and kept in var/webchat-session.key.
    webchat_session_secret: str | None = None

    # SMS through Twilio. Without an account SID, `run` starts the local Twilio-compatible server.
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    twilio_from: str = "+8610690000123"
    twilio_api_base: str | None = None  # e.g. http://127.0.0.1:8181 for the local server
    sms_signature: str = "【克拉玛依市民服务】"
    sms_max_segments: int = 3
    sms_rate: float = 10.0  # per second, shared by all workers (0 lifts the limit)
    sms_rate_unit: str = "segments"  # or "messages"

    # WeChat Official Account. Without an app id, `run` starts the local WeChat API server.
    wechat_token: str | None = None
    wechat_app_id: str | None = None
    wechat_app_secret: str | None = None
    wechat_aes_key: str | None = None  # EncodingAESKey: safe mode when set
    wechat_api_base: str = "https://api.weixin.qq.com"
    wechat_template_id: str | None = None  # the notice template used outside the 48-hour window
    wechat_rate: float = 50.0

    # Web push (RFC 8030/8291/8292) to browsers subscribed from web chat: off without a VAPID key.
    # Without one, `run` generates and keeps a key under var/ and starts the local push service.
    webpush_vapid_private_key: str | None = None  # PEM, or the raw 32-byte key in base64url
    webpush_vapid_subject: str | None = None  # mailto: or https: contact the push services may use
    webpush_ttl_s: int = 24 * 3600  # how long a push service keeps a message for an offline browser
    webpush_rate: float = 100.0  # messages per second to the push services, shared by all workers
    # Push services whose endpoints are accepted (subdomains too), comma-separated; "*" accepts any https host.
    webpush_push_hosts: str = "fcm.googleapis.com,push.services.mozilla.com,notify.windows.com,push.apple.com"
    webpush_local_origin: str | None = None  # http://host:port of a local push service (providers/) also accepted

    # WeChat Pay API v3 (Native payments, refunds) for utility bills and cinema tickets: off without a merchant id, except that `run`
    # then starts the local WeChat Pay server with demo keys. A bill is paid only by its verified notification.
    wechatpay_mchid: str | None = None
    wechatpay_appid: str | None = None
    wechatpay_private_key: str | None = None  # PEM of the merchant's API key, or a path to the PEM file
    wechatpay_cert_serial_no: str | None = None  # serial number of the merchant's API certificate
    wechatpay_apiv3_key: str | None = None  # the 32-character APIv3 key
    wechatpay_api_base: str = "https://api.mch.weixin.qq.com"
    wechatpay_notify_url: str | None = None  # default: the public base URL + /payments/wechatpay/notify
    payment_ttl_min: int = 30  # how long a pay link can be paid (the domain reads the same variable)
    payment_sweep_s: float = 60.0  # how often unpaid orders past their time are closed (seats given back)

    # `run` starts local provider servers for providers without credentials (the demo).
    local_providers: bool = True
    local_twilio_port: int = 8181
    local_wechat_port: int = 8182
    local_webpush_port: int = 8183
    local_wechatpay_port: int = 8184

    # Broadcasts: ordinary notices wait out quiet hours (city local time); emergencies do not.
    quiet_hours: str = "22:00-07:00"
    sms_price_yuan: float = 0.045  # per segment, for the cost estimate in the preview
    broadcast_batch: int = 1000  # recipients written and queued per fan-out step

    # Every Redis key (state, streams, queues) lives under this prefix: one per deployment sharing a Redis.
    queue_prefix: str = "citygw"

    # Outbound dispatch: in-process workers by default; `citygw worker` runs more elsewhere.
    dispatch_in_process: bool = True
    dispatch_concurrency: int = 8
    dispatch_max_attempts: int = 6
    dispatch_visibility_s: float = 30.0

    cache_dir: Path = Field(default_factory=lambda: Path.home() / ".cache" / "citygw")
    python310: str | None = None
    fixed_now: str | None = None  # ISO local time, e.g. 2026-11-25T10:00:00; pins the clock for demos and tests

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _check_networks(cls, value: str) -> str:
        networks(value)  # a bad entry stops start-up with its name, not a request later
        return value

    @property
    def forwarded_proxies(self) -> tuple[Network, ...]:
        return networks(self.forwarded_allow_ips)

    @property
    def webpush_enabled(self) -> bool:
        return bool(self.webpush_vapid_private_key and self.webpush_vapid_subject)

    @property
    def webpush_hosts(self) -> tuple[str, ...] | None:
        """The accepted push service hosts; None when any https host is."""
        hosts = tuple(h.strip().lower() for h in self.webpush_push_hosts.split(",") if h.strip())
        return None if "*" in hosts else hosts

    @property
    def webpush_insecure_origins(self) -> tuple[str, ...]:
        return (self.webpush_local_origin.rstrip("/"),) if self.webpush_local_origin else ()


@lru_cache
def get_settings() -> Settings:
    return Settings()
