"""What answers a message before the bot, in order: a provider event (a new follower, a menu click),
the handoff to a person (a handed-off conversation's messages go to its agent; "转人工"), phone binding ("绑定+手机号", where the channel binds phones), the channel's keywords (TD/订阅/帮助),
parents' school words ("绑定 学号 姓名", "收到"), and on channels with numbered menus "更多" and a menu
number. The first that answers wins; a menu number is not an answer but the button it names."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from channels.base import ChannelEvent, InboundMessage, Rendering, Reply, Wire
from channels.textmenu import choice, wants_more
from gateway.inbound.binding import Binding
from gateway.inbound.schools import Schools
from gateway.state import StateStore
from intents.menu import family_menu
from intents.runtime import pack

STOPPED = "您已退订本平台的通知短信，此后不再收到通知（紧急预警除外）。如需恢复，请回复“订阅”。"
RESTARTED = "您已恢复订阅本平台的通知短信。回复“TD”可随时退订。"
HELP = "{service}：直接发送您要办的事，如“12路到哪了”“预约市人民医院”。回复“TD”退订通知，“订阅”恢复。"
NO_MORE = "没有更多内容了。有其他问题请直接发送。"
WELCOME = "欢迎关注{service}！直接发送您要办的事，例如“12路到哪了”。发送“绑定+手机号”可关联手机。"
BIND_HOWTO = "发送“绑定+手机号”，例如“绑定13912345678”，我们会发短信验证码给您。"
BIND_BUTTON = "bind"  # the key of the WeChat menu's 绑定手机 button (gateway/cli_messaging.py)
MENU_TTL_S = 24 * 3600

OptOut = Callable[[str, bool], Awaitable[None]]  # (phone, opted_out)


@dataclass(frozen=True)
class Answered:
    message: InboundMessage  # as recorded: an event gets a bracketed name, a menu number its button's payload
    replies: list[Reply] | None  # None: the bot answers `message`
    continues: bool = False  # the rest of the last answer ("更多"): its menu numbers still stand


Responder = Callable[[InboundMessage, Wire], Awaitable[Answered | None]]


class MenuMemory:
    """The last numbered menu and the rest of a cut answer, per address: overwritten every turn, so "1"
    always means the latest menu and "更多" the latest answer."""

    def __init__(self, state: StateStore) -> None:
        self.state = state

    async def remember(self, message: InboundMessage, rendering: Rendering, continues: bool = False) -> None:
        if not continues:  # after "更多" the numbers shown are still those of the menu it continues
            await self.state.set_json(_key("menu", message), rendering.menu, MENU_TTL_S)
        await self.state.set_json(_key("more", message), rendering.rest, MENU_TTL_S)

    async def answer(self, message: InboundMessage, wire: Wire) -> Answered | None:
        if not wire.numbered_menus:
            return None
        if wants_more(message.text):
            rest = await self.state.get_json(_key("more", message))
            return Answered(message, [Reply(rest or NO_MORE)], continues=bool(rest))
        picked = choice(message.text, await self.state.get_json(_key("menu", message)) or [])
        if picked is not None:
            return Answered(dataclasses.replace(message, text=picked), None)
        return None


def responders(
    binding: Binding, schools: Schools, memory: MenuMemory, opt_out: OptOut, handoff: list[Responder]
) -> list[Responder]:
    """`handoff`: a handed-off conversation's messages go to its agent, and "转人工" opens one
    (gateway/handoff/responders.py): right after provider events, before anything else reads them."""

    async def phone_binding(message: InboundMessage, wire: Wire) -> Answered | None:
        if not wire.binds_phone:
            return None
        replies = await binding.answer(message)
        return None if replies is None else Answered(message, replies)

    async def keywords(message: InboundMessage, wire: Wire) -> Answered | None:
        word = wire.keyword(message.text)
        if word in ("stop", "start"):
            await opt_out(message.sender, word == "stop")
            return Answered(message, [Reply(STOPPED if word == "stop" else RESTARTED)])
        return Answered(message, [Reply(HELP.format(service=pack().city.sms_signature))]) if word == "help" else None

    async def school_words(message: InboundMessage, wire: Wire) -> Answered | None:
        # Before the menu: "1" right after a school notice acknowledges it (only while one awaits).
        replies = await schools.answer(message, wire)
        return None if replies is None else Answered(message, replies)

    return [provider_event, *handoff, phone_binding, keywords, school_words, memory.answer]


async def provider_event(message: InboundMessage, wire: Wire) -> Answered | None:
    """A new follower gets the welcome and the menu; a menu click is the button it names; the rest
    (unfollow, location, scan) is recorded with no answer."""
    event = wire.event(message)
    if event is None:
        return None
    return _event(message, event)


def _event(message: InboundMessage, event: ChannelEvent) -> Answered:
    if event.kind == "follow":
        menu = family_menu()
        welcome = WELCOME.format(service=pack().city.sms_signature)
        return Answered(_named(message, "subscribe"), [Reply(f"{welcome}\n{menu.text}", menu.buttons)])
    if event.kind == "button" and event.key == BIND_BUTTON:
        return Answered(_named(message, "click bind"), [Reply(BIND_HOWTO)])
    if event.kind == "button" and event.key.startswith("/"):  # the menu's keys are the catalogue's payloads
        return Answered(dataclasses.replace(message, text=event.key), None)
    return Answered(_named(message, event.key if event.kind == "other" else "click"), [])


def _named(message: InboundMessage, name: str) -> InboundMessage:
    return dataclasses.replace(message, text=f"[{name}]")


def _key(kind: str, message: InboundMessage) -> str:
    return f"{kind}:{message.channel}:{message.sender}"
