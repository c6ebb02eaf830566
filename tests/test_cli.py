import json
import subprocess
import sys

from gateway.config import REPO_ROOT


def citygw(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_services_json_lists_every_catalogue_service():
    result = citygw("services", "--json")
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)
    ids = {s["id"] for s in services}
    assert {"bus_arrival", "hospital_appointment", "movie_ticket_booking", "bill_payment", "bank_queue_ticket"} <= ids
    for service in services:
        assert set(service) >= {"id", "name", "category", "intent"}
        assert service["name"] and service["category"]


def test_db_init_migrates_and_seeds_a_fresh_sqlite_file(tmp_path):
    import os

    env = {**os.environ, "CITYGW_DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.db'}"}
    first = citygw("db", "init", env=env)
    assert first.returncode == 0, first.stderr
    assert "new rows" in first.stdout and " 0 new rows" not in first.stdout
    again = citygw("db", "init", env=env)
    assert " 0 new rows" in again.stdout


def test_chat_talks_to_the_running_system(stacks):
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "chat", "--url", stacks["sqlite"].url],
        cwd=REPO_ROOT,
        input="你能做什么\n/quit\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "助手：我可以为您办理" in result.stdout
    assert "[1] " in result.stdout  # buttons are listed with what to type


def test_the_demo_phone_texts_the_gateway_as_a_citizen_on_each_channel(stacks):
    # `citygw phone` signs (and for WeChat encrypts) the webhook as the provider would, then prints what
    # the local provider was asked to deliver back to that phone
    stack = stacks["sqlite"]
    env = {
        **stack.env(),
        "CITYGW_LOCAL_TWILIO_PORT": str(stack.twilio_port),
        "CITYGW_LOCAL_WECHAT_PORT": str(stack.wechat_port),
    }
    sms = citygw("phone", "sms", "你能做什么", "--sender", "+8613900007777", "--url", stack.url, env=env)
    assert sms.returncode == 0, sms.stderr
    assert "短信（" in sms.stdout and "【克拉玛依市民服务】我可以为您办理" in sms.stdout
    wechat = citygw("phone", "wechat", "你能做什么", "--url", stack.url, env=env)
    assert wechat.returncode == 0, wechat.stderr
    assert "微信：" in wechat.stdout and "我可以为您办理" in wechat.stdout


def test_run_refuses_to_listen_publicly_with_demo_secrets_or_without_a_public_url():
    from gateway.config import Settings
    from gateway.demo import TWILIO, exposure_problem

    real = {
        "twilio_account_sid": "AC1",
        "twilio_auth_token": "real-token",
        "wechat_token": "real-wechat-token",
        "wechatpay_mchid": "1900000009",
    }
    assert exposure_problem(Settings(host="127.0.0.1")) is None  # the demo on one's own machine
    assert "demo" in exposure_problem(Settings(host="0.0.0.0"))
    assert "demo" in exposure_problem(Settings(host="0.0.0.0", **{**real, **TWILIO}))
    assert "demo" in exposure_problem(Settings(host="0.0.0.0", **{**real, "wechatpay_mchid": None}))  # demo payments
    assert "CITYGW_PUBLIC_BASE_URL" in exposure_problem(Settings(host="10.0.0.5", **real))
    assert exposure_problem(Settings(host="10.0.0.5", public_base_url="https://city.example", **real)) is None
