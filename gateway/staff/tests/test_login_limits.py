"""Sign-in under attack: one password tried across many usernames from one address, the address that
counts behind a reverse proxy, and argon2 kept off the event loop a few hashes at a time."""

from __future__ import annotations

import asyncio
import json
import threading

from aiohttp.test_utils import make_mocked_request

from gateway.config import networks
from gateway.staff import passwords
from gateway.staff.auth import ADDRESS_FAILURES, ADDRESS_WINDOW_S, client_address
from gateway.staff.tests.conftest import ACCOUNTS, PASSWORD, StaffGateway, running

SPRAYED = "Spring2026!city"  # the one password an attacker tries on every account


def from_address(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": address}


async def login(gw: StaffGateway, username: str, password: str, address: str):
    client = gw.client()
    return await client.post(
        "/api/staff/login", {"username": username, "password": password}, headers=from_address(address)
    )


async def test_one_password_across_fifty_usernames_is_stopped_for_that_address_only(city_template, tmp_path) -> None:
    attacker, office = "203.0.113.7", "198.51.100.20"
    usernames = [*ACCOUNTS, *(f"clerk{i:02d}" for i in range(50 - len(ACCOUNTS)))]
    async with running(city_template, tmp_path, forwarded_allow_ips="127.0.0.1") as gw:
        statuses = [(await login(gw, name, SPRAYED, attacker)).status for name in usernames[: ADDRESS_FAILURES - 1]]
        assert statuses == [401] * (ADDRESS_FAILURES - 1)
        # A sign-in that succeeds is not a failure: staff sharing the address are not pushed over.
        assert (await login(gw, "viewer", PASSWORD, attacker)).status == 200
        assert (await login(gw, usernames[ADDRESS_FAILURES - 1], SPRAYED, attacker)).status == 401

        refused = [await login(gw, name, SPRAYED, attacker) for name in usernames[ADDRESS_FAILURES:]]
        assert {r.status for r in refused} == {429}
        assert len(refused) == 50 - ADDRESS_FAILURES
        reply = refused[-1]
        assert reply.body["code"] == "throttled" and "分钟后再试" in reply.body["error"]
        assert 0 < int(reply.headers["Retry-After"]) <= ADDRESS_WINDOW_S
        # Now even the right password from that address waits; from anywhere else it works.
        assert (await login(gw, "admin", PASSWORD, attacker)).status == 429
        assert (await login(gw, "admin", PASSWORD, office)).status == 200

        throttled = [e for e in gw.audit("login_failed") if '"address_throttled"' in e["detail"]]
        assert len(throttled) == len(refused) + 1
        assert {e["ip"] for e in throttled} == {attacker}
        assert throttled[0]["target"] == usernames[ADDRESS_FAILURES]
        assert gw.audit("login")[-1]["ip"] == office


async def test_per_account_limit_still_applies_below_the_address_limit(fresh_gw: StaffGateway) -> None:
    gw = fresh_gw
    client = gw.client()
    replies = [await client.login("approver", "wrong password") for _ in range(11)]
    assert [r.status for r in replies] == [401] * 10 + [429]
    assert "address_throttled" not in replies[-1].body["error"]
    assert json.loads(gw.audit("login_failed")[-1]["detail"]) == {"reason": "throttled"}


async def test_forwarded_for_is_ignored_unless_the_proxy_is_configured(fresh_gw: StaffGateway) -> None:
    gw = fresh_gw  # no CITYGW_FORWARDED_ALLOW_IPS: the header is the client's own writing
    reply = await login(gw, "nobody-here", SPRAYED, "192.0.2.99")
    assert reply.status == 401
    assert gw.audit("login_failed")[-1]["ip"] == "127.0.0.1"


def test_client_address_believes_only_the_configured_proxies() -> None:
    def seen(peer: str, forwarded: str | None, proxies: str) -> str | None:
        headers = {"X-Forwarded-For": forwarded} if forwarded is not None else {}
        request = make_mocked_request("POST", "/api/staff/login", headers=headers).clone(remote=peer)
        return client_address(request, networks(proxies))

    assert seen("203.0.113.7", "10.1.1.1", "") == "203.0.113.7"
    # A client that reaches the gateway directly cannot pick its address.
    assert seen("203.0.113.7", "10.1.1.1", "10.0.0.0/8") == "203.0.113.7"
    assert seen("10.0.0.2", "198.51.100.4", "10.0.0.0/8") == "198.51.100.4"
    # The proxy appends what it saw; anything further left the client wrote itself.
    assert seen("10.0.0.2", "1.2.3.4, 198.51.100.4", "10.0.0.0/8") == "198.51.100.4"
    # Two proxies of ours in a row: the client is the first address that is not one of them.
    assert seen("10.0.0.2", "1.2.3.4, 198.51.100.4, 10.0.0.9", "10.0.0.0/8") == "198.51.100.4"
    assert seen("10.0.0.2", "garbage, 198.51.100.4", "10.0.0.0/8") == "198.51.100.4"
    assert seen("10.0.0.2", "198.51.100.4, garbage", "10.0.0.0/8") == "10.0.0.2"
    assert seen("10.0.0.2", None, "10.0.0.0/8") == "10.0.0.2"
    assert seen("::ffff:10.0.0.2", "2001:db8::5", "10.0.0.0/8") == "2001:db8::5"


async def test_passwords_are_hashed_off_the_event_loop_a_few_at_a_time(fresh_gw: StaffGateway, monkeypatch) -> None:
    gw = fresh_gw
    loop = asyncio.get_running_loop()
    loop_thread = threading.get_ident()
    lock = threading.Lock()
    threads: list[str] = []
    busy = peak = 0

    def spying(real):
        def spy(*args):
            nonlocal busy, peak
            with lock:
                busy += 1
                peak = max(peak, busy)
                threads.append(threading.current_thread().name)
            try:
                assert threading.get_ident() != loop_thread
                # Mid-hash, the event loop must still run other work: if the hash held it, this
                # would wait forever (and time out) instead of returning at once.
                asyncio.run_coroutine_threadsafe(asyncio.sleep(0), loop).result(timeout=30)
                return real(*args)
            finally:
                with lock:
                    busy -= 1

        return spy

    monkeypatch.setattr(passwords, "verify_password", spying(passwords.verify_password))
    monkeypatch.setattr(passwords, "hash_password", spying(passwords.hash_password))

    admin = await gw.signed_in("admin")
    names = [*ACCOUNTS, *(f"ghost{i}" for i in range(6))]
    replies = await asyncio.gather(*(gw.client().login(name, SPRAYED) for name in names))
    assert {r.status for r in replies} == {401}
    created = await admin.post(
        "/api/staff/users", {"username": "newclerk", "password": "a fresh long one 7", "role": "viewer"}
    )
    assert created.status == 201, created.body
    assert (await gw.client().login("newclerk", "a fresh long one 7")).status == 200

    assert len(threads) == 1 + len(names) + 2  # admin's sign-in, the sprayed ones, creation, newclerk's
    assert all(name.startswith("argon2") for name in threads)
    assert 1 <= peak <= passwords.HASH_THREADS
