"""The demo's providers: without real Twilio, WeChat or WeChat Pay credentials, `run` starts the local
servers that speak their APIs (providers/), and points the gateway at them with demo credentials. Without a
VAPID key it makes one (kept in var/, so browsers' subscriptions outlive a restart) and starts the local
push service, whose plain-http endpoints the gateway then accepts next to the real push services'."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from gateway.config import REPO_ROOT, Settings
from gateway.outbound.push_subscriptions import ensure_vapid_key
from gateway.rasa_env import wait_http

TWILIO = {"twilio_account_sid": "AC" + "0" * 31 + "1", "twilio_auth_token": "demo-twilio-auth-token"}
WECHAT = {
    "wechat_app_id": "wx00000000demo0001",
    "wechat_app_secret": "demo-wechat-app-secret",
    "wechat_token": "demoWeChatToken",
    "wechat_aes_key": "DemoEncodingAESKey0123456789abcdefghijklmno",  # 43 characters, as WeChat issues
}
# The merchant's API key is made on first run (var/), like the VAPID key; the rest is public demo data.
WECHATPAY = {
    "wechatpay_mchid": "1900000001",
    "wechatpay_appid": WECHAT["wechat_app_id"],
    "wechatpay_cert_serial_no": "5E1A7B00C0FFEE00000000000000000000000001",
    "wechatpay_apiv3_key": "DemoApiV3Key0123456789abcdefghij",  # 32 characters, as WeChat Pay issues
}
WECHATPAY_KEY_FILE = REPO_ROOT / "var" / "wechatpay-merchant.pem"
VAPID_KEY_FILE = REPO_ROOT / "var" / "webpush-vapid.pem"
VAPID_SUBJECT = "mailto:citygw-demo@localhost"


def exposure_problem(settings: Settings) -> str | None:
    """Why the gateway must not listen where others can reach it with these settings, or None. The demo's
    provider secrets are public (this file), and without a public base URL a webhook's signature would be
    checked against whatever Host header the caller sent."""
    if ipaddress_is_loopback(settings.host):
        return None
    demo = {TWILIO["twilio_auth_token"], WECHAT["wechat_token"]}
    uses_demo = (
        (settings.local_providers and not (settings.twilio_auth_token and settings.wechat_token))
        or (settings.local_providers and not settings.wechatpay_mchid)
        or settings.twilio_auth_token in demo
        or settings.wechat_token in demo
        or settings.wechatpay_apiv3_key == WECHATPAY["wechatpay_apiv3_key"]
    )
    if uses_demo:
        return (
            f"refusing to listen on {settings.host}: the demo Twilio/WeChat/WeChat Pay secrets would be active. "
            "Set CITYGW_TWILIO_*, CITYGW_WECHAT_* and CITYGW_WECHATPAY_* to the real accounts, or listen on 127.0.0.1."
        )
    if not settings.public_base_url:
        return (
            f"refusing to listen on {settings.host} without CITYGW_PUBLIC_BASE_URL: providers sign the URL they "
            "call, and without it the signature would be checked against the caller's own Host header."
        )
    return None


def ipaddress_is_loopback(host: str) -> bool:
    import ipaddress

    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name other than localhost: assume reachable


def start_local_providers(settings: Settings, logs: Path) -> tuple[Settings, list[subprocess.Popen]]:
    """Settings pointing at local provider servers for each provider without credentials."""
    if not settings.local_providers:
        return settings, []
    logs.mkdir(parents=True, exist_ok=True)
    updates: dict[str, object] = {}
    children: list[subprocess.Popen] = []
    if not settings.twilio_account_sid:
        port = settings.local_twilio_port
        cmd = ["-m", "providers.twilio_api", "--port", str(port)]
        cmd += ["--account-sid", TWILIO["twilio_account_sid"], "--auth-token", TWILIO["twilio_auth_token"]]
        children.append(_start(cmd, logs / "twilio.log"))
        wait_http(f"http://127.0.0.1:{port}/_control/stats", 30, children[-1], logs / "twilio.log")
        updates.update(TWILIO, twilio_api_base=f"http://127.0.0.1:{port}")
    if not settings.wechat_app_id:
        port = settings.local_wechat_port
        cmd = ["-m", "providers.wechat_api", "--port", str(port)]
        cmd += ["--app-id", WECHAT["wechat_app_id"], "--secret", WECHAT["wechat_app_secret"]]
        children.append(_start(cmd, logs / "wechat.log"))
        wait_http(f"http://127.0.0.1:{port}/_control/state", 30, children[-1], logs / "wechat.log")
        updates.update(WECHAT, wechat_api_base=f"http://127.0.0.1:{port}")
    if not settings.wechatpay_mchid:
        port = settings.local_wechatpay_port
        children.append(start_local_wechatpay(port, WECHATPAY_KEY_FILE, logs / "wechatpay.log"))
        wait_http(f"http://127.0.0.1:{port}/_control/orders", 30, children[-1], logs / "wechatpay.log")
        updates.update(
            WECHATPAY,
            wechatpay_private_key=str(WECHATPAY_KEY_FILE),
            wechatpay_api_base=f"http://127.0.0.1:{port}",
        )
    if not settings.webpush_vapid_private_key:
        port = settings.local_webpush_port
        children.append(_start(["-m", "providers.webpush_api", "--port", str(port)], logs / "webpush.log"))
        wait_http(f"http://127.0.0.1:{port}/_control/stats", 30, children[-1], logs / "webpush.log")
        updates.update(
            webpush_vapid_private_key=ensure_vapid_key(VAPID_KEY_FILE),
            webpush_vapid_subject=settings.webpush_vapid_subject or VAPID_SUBJECT,
            webpush_local_origin=f"http://127.0.0.1:{port}",
        )
    return settings.model_copy(update=updates), children


def ensure_merchant_key(path: Path) -> Path:
    """The demo merchant's RSA key (PEM), made once; beside it the public half the local server checks
    signatures with (.pub.pem)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    public = path.with_suffix(".pub.pem")
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        path.touch(mode=0o600)
        path.write_bytes(pem)
    if not public.exists():
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
        public.write_bytes(
            loaded.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
    return public


def wechatpay_args(port: int, public_key: Path) -> list[str]:
    return [
        *("-m", "providers.wechatpay_api", "--port", str(port)),
        *("--mchid", WECHATPAY["wechatpay_mchid"], "--appid", WECHATPAY["wechatpay_appid"]),
        *("--apiv3-key", WECHATPAY["wechatpay_apiv3_key"], "--merchant-public-key", str(public_key)),
        *("--merchant-serial", WECHATPAY["wechatpay_cert_serial_no"]),
    ]


def start_local_wechatpay(port: int, key_file: Path, log: Path) -> subprocess.Popen:
    return _start(wechatpay_args(port, ensure_merchant_key(key_file)), log)


def payment_env(settings: Settings) -> dict[str, str]:
    """The WeChat Pay settings as environment variables, for the action server (it opens the orders)."""
    names = (*WECHATPAY, "wechatpay_private_key", "wechatpay_api_base")
    return {f"CITYGW_{name.upper()}": str(getattr(settings, name)) for name in names if getattr(settings, name)}


def _start(args: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=REPO_ROOT,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
