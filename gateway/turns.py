"""What happens to a queued inbound message from a webhook channel (SMS, WeChat):
channel words handled before the bot (TD/订阅/帮助; parents' "绑定 学号 姓名", "收到" after a school
notice, "通知发微信"; "更多", a menu number) → the pipeline's turn → the turn's rendered replies handed
to the dispatcher.

Running a message twice (a worker died after the turn but before acking it) is safe: the pipeline
answers a known message from the log, and the dispatcher skips replies that were already sent."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable

from channels.base import InboundMessage, Outgoing, Rendered, Reply
from channels.sms.keywords import keyword
from channels.sms.render import render_sms
from channels.textmenu import choice, numbered, wants_more
from gateway.binding import Binding
from gateway.config import Settings
from gateway.pipeline import MessagePipeline
from gateway.schools import Schools
from gateway.state import StateStore
from intents.menu import family_menu
from intents.runtime import pack

log = logging.getLogger(__name__)

STOPPED = "您已退订本平台的通知短信，此后不再收到通知（紧急预警除外）。如需恢复，请回复“订阅”。"
RESTARTED = "您已恢复订阅本平台的通知短信。回复“TD”可随时退订。"
HELP = "{service}：直接发送您要办的事，如“12路到哪了”“预约市人民医院”。回复“TD”退订通知，“订阅”恢复。"
NO_MORE = "没有更多内容了。有其他问题请直接发送。"
WELCOME = "欢迎关注{service}！直接发送您要办的事，例如“12路到哪了”。发送“绑定+手机号”可关联手机。"
BIND_HOWTO = "发送“绑定+手机号”，例如“绑定13912345678”，我们会发短信验证码给您。"
MENU_TTL_S = 24 * 3600
WECHAT_MAX_CHARS = 600  # WeChat customer-service text allows 2048 bytes; 600 CJK characters stay well inside

OptOut = Callable[[str, bool], Awaitable[None]]  # (phone, opted_out)
Enqueue = Callable[[Outgoing], Awaitable[None]]


class TurnWorker:
    def __init__(
        self,
        settings: Settings,
        pipeline: MessagePipeline,
        state: StateStore,
        enqueue: Enqueue,
        opt_out: OptOut,
        binding: Binding | None = None,
    ) -> None:
        self.settings, self.pipeline, self.state = settings, pipeline, state
        self.enqueue, self.opt_out, self.binding = enqueue, opt_out, binding
        # Guardian binding, notice acknowledgements and the notice channel, on the pipeline's database.
        self.schools = Schools(settings, pipeline.sessions, state, enqueue)

    # --- rendering, registered with the pipeline so replies are recorded as they will be sent -------

    async def render_sms(self, message: InboundMessage, replies: list[Reply]) -> list[Rendered]:
        sms = render_sms(replies, self.settings.sms_signature, self.settings.sms_max_segments)
        await self._remember(message, sms.payloads, sms.rest)
        buttons = [b for r in replies for b in r.buttons]
        return [Rendered(sms.text, buttons, sms.segments)]

    async def render_wechat(self, message: InboundMessage, replies: list[Reply]) -> list[Rendered]:
        menu = numbered(replies)
        text, rest = menu.text, ""
        if len(text) > WECHAT_MAX_CHARS:
            text, rest = text[:WECHAT_MAX_CHARS] + "…回复“更多”看下文", text[WECHAT_MAX_CHARS:]
        await self._remember(message, menu.payloads, rest)
        return [Rendered(text, [b for r in replies for b in r.buttons])]

    async def _remember(self, message: InboundMessage, payloads: list[str], rest: str) -> None:
        # Overwritten every turn: a "1" always means the latest menu, "更多" the latest answer.
        await self.state.set_json(_key("menu", message), payloads, MENU_TTL_S)
        await self.state.set_json(_key("more", message), rest, MENU_TTL_S)

    # --- one queued message -----------------------------------------------------------------------

    async def process(self, message: InboundMessage) -> None:
        message, local = await self._before_bot(message)
        result = await self.pipeline.handle(message, local)
        if result.refusal:
            if result.refusal_code != "rate_limited":  # say why (empty, too long); a flood gets nothing back
                await self.enqueue(self._notice(message, result.refusal))
            return
        for record in result.outbound:
            if record.status == "queued":
                await self.enqueue(
                    Outgoing(
                        channel=message.channel,
                        to=message.sender,
                        text=record.text,
                        ref=f"message:{record.message_id}",
                        segments=record.segments or 1,
                    )
                )

    async def _before_bot(self, message: InboundMessage) -> tuple[InboundMessage, list[Reply] | None]:
        event = message.metadata.get("event")
        if event is not None:
            return _event(message, event)
        if message.channel == "wechat" and self.binding is not None:
            bound = await self.binding.answer(message)
            if bound is not None:
                return message, bound
        if message.channel == "sms":
            word = keyword(message.text)
            if word == "stop":
                await self.opt_out(message.sender, True)
                return message, [Reply(STOPPED)]
            if word == "start":
                await self.opt_out(message.sender, False)
                return message, [Reply(RESTARTED)]
            if word == "help":
                return message, [Reply(HELP.format(service=pack().city.sms_signature))]
        # Before the menu: "1" right after a school notice acknowledges it (only while one awaits).
        school = await self.schools.answer(message)
        if school is not None:
            return message, school
        if wants_more(message.text):
            rest = await self.state.get_json(_key("more", message))
            return message, [Reply(rest or NO_MORE)]
        payloads = await self.state.get_json(_key("menu", message))
        picked = choice(message.text, payloads or [])
        if picked is not None:
            return dataclasses.replace(message, text=picked), None
        return message, None

    def _notice(self, message: InboundMessage, text: str) -> Outgoing:
        """A refusal: not part of the conversation log, so it is recorded nowhere but the dispatcher's."""
        if message.channel == "sms":
            text = f"{self.settings.sms_signature}{text}"
        return Outgoing(channel=message.channel, to=message.sender, text=text, ref=f"notice:{message.external_id}")


def _event(message: InboundMessage, event: str) -> tuple[InboundMessage, list[Reply] | None]:
    """WeChat events: a new follower gets the welcome and the menu; a menu click is the button it
    names; the rest (unsubscribe, location, scan) is recorded with no answer."""
    if event == "subscribe":
        menu = family_menu()
        welcome = WELCOME.format(service=pack().city.sms_signature)
        return dataclasses.replace(message, text="[subscribe]"), [Reply(f"{welcome}\n{menu.text}", menu.buttons)]
    if event == "click":
        key = message.metadata.get("event_key", "")
        if key == "bind":
            return dataclasses.replace(message, text="[click bind]"), [Reply(BIND_HOWTO)]
        if key.startswith("/"):  # the menu's keys are the bot payloads of the catalogue's buttons
            return dataclasses.replace(message, text=key), None
    return dataclasses.replace(message, text=f"[{event}]"), []


def _key(kind: str, message: InboundMessage) -> str:
    return f"{kind}:{message.channel}:{message.sender}"
