"""Conversation-level evaluation (issue 12): residents' whole exchanges, each scored pass/fail on what
the replies must (and must not) say, over web chat, SMS and WeChat through the local providers, at the
pinned clock. The conversations (tests/conversations/*.yaml) were written by someone who saw only the
services' names and descriptions, never the training examples or the replies.

A conversation passes when every turn's reply (text and buttons) contains all of `expect_all`, at least
one of `expect_any` and none of `expect_not`. Pass rates per family, kind and channel are printed."""

from __future__ import annotations

import asyncio
import os
import time
import unicodedata
from collections import Counter
from pathlib import Path

import yaml

from tests.conftest import Chat
from tests.test_sms_wechat import Phone, WeChatUser

CONVERSATIONS = Path(__file__).with_name("conversations")
MIN_PASS_RATE = 0.80  # measured 126/150 = 84.0 % on 2026-12-07 (README, "Conversations")
QUIET_S = 0.8  # a turn's replies are complete when nothing more arrived for this long


def load() -> list[dict]:
    """Every conversation, or (while working on some) those whose id, kind or family is named in
    CITYGW_CONVERSATIONS ("mid-form,cancel"); the floor applies to the whole set only."""
    conversations = []
    for path in sorted(CONVERSATIONS.glob("*.yaml")):
        conversations += yaml.safe_load(path.read_text(encoding="utf-8"))["conversations"]
    wanted = {w for w in os.environ.get("CITYGW_CONVERSATIONS", "").split(",") if w}
    if wanted:
        conversations = [c for c in conversations if wanted & {c["id"], c.get("kind"), c.get("family")}]
    return conversations


def _norm(text: str) -> str:
    return unicodedata.normalize("NFKC", text).replace(" ", "")


def judge(turn: dict, reply: str) -> str | None:
    """None when the reply meets the turn's expectations, else what is wrong."""
    said = _norm(reply)
    missing = [w for w in turn.get("expect_all") or [] if _norm(w) not in said]
    if missing:
        return f"missing {missing}"
    any_of = turn.get("expect_any") or []
    if any_of and not any(_norm(w) in said for w in any_of):
        return f"none of {any_of}"
    unwanted = [w for w in turn.get("expect_not") or [] if _norm(w) in said]
    return f"unwanted {unwanted}" if unwanted else None


class Web:
    def __init__(self, http, stack) -> None:
        self.chat = Chat(http, stack)

    async def say(self, text: str) -> str:
        replies = await self.chat.say(text)
        return "\n".join([r["text"] for r in replies] + [b["title"] for r in replies for b in r["buttons"]])


class Provider:
    """SMS or WeChat: the turn's answer is every message delivered until the line goes quiet."""

    def __init__(self, client: Phone | WeChatUser, field: str) -> None:
        self.client, self.field = client, field

    async def say(self, text: str) -> str:
        before = len(await self.client.inbox())
        if isinstance(self.client, Phone):
            await self.client.send(text)
        else:
            await self.client.post(self.client.text(text))
        messages = await self.client.wait_for(before + 1)
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < QUIET_S:
            await asyncio.sleep(0.2)
            latest = await self.client.inbox()
            if len(latest) > len(messages):
                messages, quiet_since = latest, time.monotonic()
        return "\n".join(m[self.field] for m in messages[before:])


def client_for(channel: str, http, stack):
    if channel == "sms":
        return Provider(Phone(http, stack), "body")
    if channel == "wechat":
        return Provider(WeChatUser(http, stack), "text")
    return Web(http, stack)


async def run(conversation: dict, http, stack) -> tuple[bool, str]:
    client = client_for(conversation.get("channel", "web"), http, stack)
    for number, turn in enumerate(conversation["turns"], 1):
        reply = await client.say(str(turn["say"]))
        problem = judge(turn, reply)
        if problem:
            return False, f"turn {number} {turn['say']!r}: {problem}\n    reply: {reply[:300]!r}"
    return True, ""


def table(results: list[tuple[dict, bool]], key: str) -> list[str]:
    total, passed = Counter(), Counter()
    for conversation, ok in results:
        total[conversation.get(key, "?")] += 1
        passed[conversation.get(key, "?")] += ok
    return [f"  {k:<16}{passed[k]:>4}/{total[k]:<4}{passed[k] / total[k]:>7.0%}" for k in sorted(total)]


async def test_residents_conversations_succeed(http, stacks):
    stack = stacks["sqlite"]
    conversations = load()
    assert conversations, "no conversations in tests/conversations/"
    limit = asyncio.Semaphore(4)

    async def one(conversation: dict) -> tuple[bool, str]:
        async with limit:
            return await run(conversation, http, stack)

    outcomes = await asyncio.gather(*(one(c) for c in conversations))
    results = [(c, ok) for c, (ok, _why) in zip(conversations, outcomes, strict=True)]
    rate = sum(ok for _c, ok in results) / len(results)
    lines = [f"conversations passed: {sum(ok for _c, ok in results)}/{len(results)} ({rate:.1%})"]
    for key in ("family", "kind", "channel"):
        lines += [f"by {key}:", *table(results, key)]
    lines += ["failures:"] + [
        f"  {c['id']} ({c.get('channel', 'web')}): {why}"
        for c, (ok, why) in zip(conversations, outcomes, strict=True)
        if not ok
    ]
    print("\n" + "\n".join(lines))
    if os.environ.get("CITYGW_CONVERSATIONS"):
        return  # a subset, while working: the table above is the result
    assert rate >= MIN_PASS_RATE, "\n".join(lines)
