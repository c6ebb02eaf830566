"""Charts drawn on the server as SVG: no charting library, no CDN, nothing for the browser to run. Each
chart names itself for screen readers (role="img", <title>, <desc>), and every bar carries a <title>
with its exact figure; the same figures are in the table under the chart and its CSV."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date
from xml.sax.saxutils import escape, quoteattr

from gateway.staff.dashboard import Delivery

# Okabe–Ito: told apart with any colour vision.
COLOURS = {"sms": "#0072B2", "wechat": "#009E73", "webchat": "#E69F00", "webpush": "#CC79A7"}
OTHER = "#7f7f7f"
# Drawn small and scaled up: on a phone the chart is shown about 350 pixels wide, and 14-unit text
# must stay readable there.
FONT = 'font-family="sans-serif" font-size="14" fill="#333"'
WIDTH, HEIGHT = 480, 280
LEFT, RIGHT, TOP, BOTTOM = 44, 12, 44, 32


def _ceiling(value: int) -> int:
    """The axis top: four equal whole steps (counts are whole) of 1, 2, 3 or 5 times a power of ten."""
    quarter = max(1.0, value / 4)
    power = 10 ** math.floor(math.log10(quarter))
    step = next(n * power for n in (1, 2, 3, 5, 10) if n * power >= quarter)
    return 4 * step


def _svg(title: str, desc: str, body: list[str], height: int = HEIGHT) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" '
        f'role="img" aria-label={quoteattr(title)}>'
        f"<title>{escape(title)}</title><desc>{escape(desc)}</desc>"
        f'<rect width="{WIDTH}" height="{height}" fill="#fff"/>' + "".join(body) + "</svg>"
    )


def _legend(channels: Sequence[str], names: dict[str, str]) -> list[str]:
    parts, x = [], LEFT
    for channel in channels:
        parts.append(f'<rect x="{x}" y="12" width="14" height="14" fill="{COLOURS.get(channel, OTHER)}"/>')
        label = names.get(channel, channel)
        parts.append(f'<text x="{x + 18}" y="24" {FONT}>{escape(label)}</text>')
        x += 34 + 15 * len(label)
    return parts


def daily_bars(title: str, days: list[date], series: dict[str, list[int]], names: dict[str, str]) -> str:
    """Stacked bars: one a day, a segment per channel."""
    totals = [sum(values[i] for values in series.values()) for i in range(len(days))]
    top = _ceiling(max(totals, default=0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(1, len(days))
    bar = max(1.0, slot * 0.7)
    body = _legend(list(series), names)
    for tick in range(5):  # the value axis: 0, ¼, ½, ¾ and the top
        value = top * tick / 4
        y = TOP + plot_h - plot_h * tick / 4
        body.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" stroke="#e5e5e5"/>')
        label = f"{round(value)}"  # whole: the top is four whole steps
        body.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" {FONT}>{label}</text>')
    every = max(1, math.ceil(len(days) / 6))  # at most six dates under the axis
    for i, day in enumerate(days):
        x = LEFT + slot * i + (slot - bar) / 2
        y = TOP + plot_h
        for channel, values in series.items():
            if not values[i]:
                continue
            h = plot_h * values[i] / top
            y -= h
            tip = f"{day:%m-%d} {names.get(channel, channel)} {values[i]}"
            body.append(
                f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                f'fill="{COLOURS.get(channel, OTHER)}"><title>{escape(tip)}</title></rect>'
            )
        if i % every == 0:
            cx = LEFT + slot * i + slot / 2
            body.append(f'<text x="{cx:.1f}" y="{HEIGHT - 14}" text-anchor="middle" {FONT}>{day:%m-%d}</text>')
    body.append(f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - RIGHT}" y2="{TOP + plot_h}" stroke="#999"/>')
    if not any(totals):
        body.append(f'<text x="{WIDTH / 2}" y="{TOP + plot_h / 2}" text-anchor="middle" {FONT}>该时段没有消息</text>')
    desc = f"{days[0]:%Y-%m-%d} 至 {days[-1]:%Y-%m-%d}，共 {sum(totals)} 条" if days else ""
    return _svg(title, desc, body)


def rate_bars(title: str, rows: list[Delivery], names: dict[str, str]) -> str:
    """A horizontal bar per channel: the share of what left the gateway that was reported delivered."""
    row_h, label_w = 40, 72
    height = TOP + row_h * max(1, len(rows)) + 16
    track = WIDTH - 16 - label_w - RIGHT - 120
    body: list[str] = []
    for i, d in enumerate(rows):
        y = TOP + row_h * i
        name = names.get(d.channel, d.channel)
        body.append(f'<text x="16" y="{y + 21}" {FONT}>{escape(name)}</text>')
        x = 16 + label_w
        body.append(f'<rect x="{x}" y="{y + 6}" width="{track}" height="20" fill="#f0f0f0"/>')
        share = d.rate or 0.0
        figure = "无发送" if d.rate is None else f"{share:.1%}（{d.delivered}/{d.sent}）"
        body.append(
            f'<rect class="bar" x="{x}" y="{y + 6}" width="{track * share:.1f}" height="20" '
            f'fill="{COLOURS.get(d.channel, OTHER)}"><title>{escape(f"{name} 送达率 {figure}")}</title></rect>'
        )
        body.append(f'<text x="{x + track + 8}" y="{y + 21}" {FONT}>{escape(figure)}</text>')
    if not rows:
        body.append(f'<text x="{WIDTH / 2}" y="{TOP + 20}" text-anchor="middle" {FONT}>该时段没有发出的消息</text>')
    body.insert(0, f'<text x="16" y="24" {FONT}>送达率 = 已送达 ÷ 已发出（含失败与尚无回报的）</text>')
    return _svg(
        title, "；".join(f"{names.get(d.channel, d.channel)} {d.delivered}/{d.sent}" for d in rows), body, height
    )
