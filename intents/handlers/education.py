"""The `school_notices` kind: a parent's school notices of the last 30 days, with whether each was
acknowledged. The citizen is the conversation's (the gateway links a bound WeChat or phone to the
guardian's citizen); the notices are the ones whoever sends them (the gateway's broadcasts) addressed to
that citizen, read through the domain's school notices port."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from common.clock import utcnow
from intents.ports import PORTS
from intents.runtime import Answer, Context, city_tz
from intents.services import Service

WINDOW_DAYS = 30
LIMIT = 10
HOW_TO_BIND = "如需接收孩子学校的通知，请用学校登记的家长手机发短信，或在微信公众号发送“绑定 学号 学生姓名”，例如：绑定 KS2026030215 王小明。"
NONE = "您最近{days}天没有收到学校通知。"
HOW_TO_ACK = "回复“收到”确认最近一条未确认的通知。"
UNAVAILABLE = "抱歉，学校通知暂时无法查询，请稍后再试，或直接联系孩子的班主任。"


def _day(moment: datetime) -> str:
    local = moment.replace(tzinfo=moment.tzinfo or UTC).astimezone(city_tz())
    return f"{local.month}月{local.day}日"


async def school_notices(service: Service, ctx: Context) -> Answer:
    if ctx.citizen_id is None:  # a conversation that did not come through the gateway
        return Answer(NONE.format(days=WINDOW_DAYS) + HOW_TO_BIND)
    board = PORTS.school_notices
    if board is None:  # run without anyone who sends school notices
        return Answer(UNAVAILABLE, refused=True)
    notices = await board.recent(ctx.citizen_id, utcnow() - timedelta(days=WINDOW_DAYS), LIMIT)
    if not notices:
        guardian = await board.is_guardian(ctx.citizen_id)
        return Answer(NONE.format(days=WINDOW_DAYS) + ("" if guardian else HOW_TO_BIND))
    lines = [f"最近{WINDOW_DAYS}天的学校通知："]
    for notice in notices:
        about = "，".join(x for x in (notice.school, notice.student) if x)
        state = "已确认" if notice.acknowledged else "未确认"
        lines.append(f"{_day(notice.sent_at)}《{notice.title}》{f'（{about}）' if about else ''}{state}")
    if not all(notice.acknowledged for notice in notices):
        lines.append(HOW_TO_ACK)
    return Answer("\n".join(lines))
