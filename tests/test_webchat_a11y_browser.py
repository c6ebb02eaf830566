"""The web chat page for every citizen, in Debian's Chromium against the real gateway and Rasa: the
citizen's own words kept exactly, times on messages, what a screen reader hears, colour contrast
(WCAG 2.1 AA, measured on the rendered page), the phone's large text, and 长辈模式 (elder mode).

The tests share one page, as one citizen's visit, in file order; each still sets up what it needs
when run alone. Contrast ratios use the WCAG relative luminance formula on the colours the browser
computed (getComputedStyle), with translucent backgrounds composited as drawn.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio
from playwright.async_api import Page, WebSocketRoute, async_playwright, expect

from tests.browser import CHROMIUM, CHROMIUM_ARGS, VIEWPORT, require_chromium
from tests.test_webchat_browser import TURN_TIMEOUT_MS, ask, open_chat

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

TIMEZONE = "Asia/Urumqi"  # the citizen's clock (UTC+6), not the server's: times are shown in local time
TYPED = "你好，请问12路公交车到哪了？"  # full-width comma and question mark, as a phone's keyboard types them
PHONE = {"width": 360, "height": 640}
MENU = "你能做什么"  # answered with a button per family: more than 长辈模式 shows at once
MENU_REPLY = "我可以为您办理"

# Everything the contrast check needs, per visible element with text of its own: its text colour, the
# background colours from it up to the root (translucent ones included), opacity, and size.
TEXT_COLOURS = """() => {
  const layers = (el) => {
    const out = [];
    for (let e = el; e; e = e.parentElement) out.push(getComputedStyle(e).backgroundColor);
    return out;
  };
  const opacity = (el) => {
    let o = 1;
    for (let e = el; e; e = e.parentElement) o *= Number(getComputedStyle(e).opacity);
    return o;
  };
  const seen = [];
  for (const el of document.body.querySelectorAll('*')) {
    const own = [...el.childNodes].filter(n => n.nodeType === Node.TEXT_NODE && n.textContent.trim());
    const box = el.getBoundingClientRect();
    if (!own.length || box.width <= 1 || box.height <= 1 || !el.checkVisibility({visibilityProperty: true}))
      continue;
    const s = getComputedStyle(el);
    seen.push({what: el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + '.' + el.className,
               text: own.map(n => n.textContent.trim()).join(' ').slice(0, 30), color: s.color,
               layers: layers(el), opacity: opacity(el), size: parseFloat(s.fontSize),
               weight: Number(s.fontWeight)});
  }
  const input = document.getElementById('input');
  if (!input.value) seen.push({what: 'input::placeholder', text: input.placeholder,
      color: getComputedStyle(input, '::placeholder').color, layers: layers(input), opacity: 1,
      size: parseFloat(getComputedStyle(input).fontSize), weight: 400});
  return seen;
}"""

# A control must stand out from what is around it (WCAG 1.4.11): by its border or its fill.
CONTROL_COLOURS = """() => [...document.querySelectorAll('button, textarea')]
  .filter(el => el.checkVisibility({visibilityProperty: true}) && el.getBoundingClientRect().width > 1)
  .map(el => {
    const layers = [];
    for (let e = el.parentElement; e; e = e.parentElement) layers.push(getComputedStyle(e).backgroundColor);
    const s = getComputedStyle(el);
    return {what: el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + ' ' + el.textContent.trim().slice(0, 12),
            border: parseFloat(s.borderTopWidth) > 0 ? s.borderTopColor : null,
            fill: s.backgroundColor, around: layers};
  })"""

# The times shown on the latest message of the citizen and of the assistant.
LAST_TIMES = """() => ['user', 'bot'].map(kind => {
  const all = document.querySelectorAll(`#messages .msg.${kind}`);
  return all.length ? all[all.length - 1].querySelector('time')?.textContent ?? null : null;
})"""

FOCUSED = """(() => {
  const e = document.activeElement;
  if (!e || e === document.body) return null;
  const label = e.labels && e.labels.length ? e.labels[0].textContent : '';
  return {hook: e.id || e.className || e.tagName.toLowerCase(), visible: e.checkVisibility(),
          name: (e.getAttribute('aria-label') || label || e.textContent).trim()};
})()"""

STATUS_DOT = """state => {
  const status = document.getElementById('status');
  status.dataset.state = state;
  const layers = [];
  for (let e = status; e; e = e.parentElement) layers.push(getComputedStyle(e).backgroundColor);
  return {dot: getComputedStyle(status, '::before').backgroundColor, around: layers};
}"""

FONT_SIZES = """selectors => Object.fromEntries(selectors.map(sel => {
  const el = [...document.querySelectorAll(sel)].filter(e => e.checkVisibility()).pop();
  return [sel, el ? parseFloat(getComputedStyle(el).fontSize) : null];
}))"""

# Everything drawn lies within the screen's width (the message list hides sideways overflow rather
# than scrolling, so a too-wide element is cut off, not scrollable: each box is checked).
OVERFLOW = """() => {
  const width = document.documentElement.clientWidth;
  const out = [...document.body.querySelectorAll('*')]
    .filter(el => el.checkVisibility() && !el.closest('.visually-hidden'))
    .map(el => [el, el.getBoundingClientRect()])
    .filter(([, r]) => r.width > 0 && (r.left < -0.5 || r.right > width + 0.5))
    .map(([el, r]) => `${el.tagName.toLowerCase()}.${el.className} ${Math.round(r.left)}..${Math.round(r.right)}`);
  const scroller = document.getElementById('scroller');
  if (document.documentElement.scrollWidth > width) out.push(`page ${document.documentElement.scrollWidth}`);
  if (scroller.scrollWidth > scroller.clientWidth) out.push(`message list ${scroller.scrollWidth}`);
  return out;
}"""


# ---- WCAG 2.1 contrast -------------------------------------------------------------------------


def rgba(css: str) -> tuple[float, float, float, float]:
    numbers = [float(x) for x in re.findall(r"[\d.]+", css)]
    assert css.startswith("rgb") and len(numbers) in (3, 4), f"unexpected colour {css!r}"
    return (*numbers[:3], numbers[3] if len(numbers) == 4 else 1.0)  # type: ignore[return-value]


def over(top: tuple[float, ...], below: tuple[float, float, float]) -> tuple[float, float, float]:
    alpha = top[3]
    return tuple(alpha * t + (1 - alpha) * b for t, b in zip(top[:3], below, strict=True))  # type: ignore[return-value]


def backdrop(layers: list[str]) -> tuple[float, float, float]:
    """The colour drawn behind an element: its own background and its ancestors', from the canvas up."""
    colour = (255.0, 255.0, 255.0)
    for layer in reversed(layers):
        colour = over(rgba(layer), colour)
    return colour


def luminance(rgb: tuple[float, float, float]) -> float:
    def channel(c: float) -> float:
        c /= 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: tuple[float, float, float], b: tuple[float, float, float]) -> float:
    light, dark = sorted((luminance(a), luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


async def test_contrast_formula_matches_wcag_examples() -> None:
    assert contrast((255, 255, 255), (0, 0, 0)) == pytest.approx(21)
    assert contrast((255, 255, 255), (0x07, 0xC1, 0x60)) == pytest.approx(2.38, abs=0.01)  # the old green
    assert contrast((0x76, 0x76, 0x76), (255, 255, 255)) == pytest.approx(4.54, abs=0.01)
    assert backdrop(["rgba(0, 0, 0, 0.5)", "rgb(255, 255, 255)"]) == pytest.approx((127.5,) * 3)


def text_failures(items: list[dict]) -> Iterator[str]:
    for item in items:
        behind = backdrop(item["layers"])
        colour = rgba(item["color"])
        drawn = over((*colour[:3], colour[3] * item["opacity"]), behind)
        large = item["size"] >= 24 or (item["size"] >= 18.66 and item["weight"] >= 700)
        needed = 3.0 if large else 4.5
        ratio = contrast(drawn, behind)
        if ratio < needed:
            yield f"{item['what']} “{item['text']}”: {ratio:.2f} < {needed} ({item['color']} on {behind})"


def control_failures(items: list[dict]) -> Iterator[str]:
    for item in items:
        around = backdrop(item["around"])
        fill = over(rgba(item["fill"]), around)
        edges = [fill] + ([over(rgba(item["border"]), fill)] if item["border"] else [])
        best = max(contrast(edge, around) for edge in edges)
        if best < 3:
            yield f"{item['what']}: border/fill {best:.2f} < 3 against {around}"


async def contrast_failures(page: Page) -> list[str]:
    """Every text and control on the page as it is, and the status dot in each connection state."""
    texts = await page.evaluate(TEXT_COLOURS)
    assert len(texts) >= 8, f"too few text elements measured: {texts}"
    failures = [*text_failures(texts), *control_failures(await page.evaluate(CONTROL_COLOURS))]
    shown = await page.evaluate("document.getElementById('status').dataset.state")
    for state in ("connecting", "closed", "open"):
        dot = await page.evaluate(STATUS_DOT, state)
        behind = backdrop(dot["around"])
        ratio = contrast(over(rgba(dot["dot"]), behind), behind)
        if ratio < 3:
            failures.append(f"status dot when {state}, {dot['dot']}: {ratio:.2f} < 3")
    await page.evaluate(STATUS_DOT, shown)
    return failures


# ---- the page ------------------------------------------------------------------------------------


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def page():
    require_chromium()
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        context = await browser.new_context(viewport=VIEWPORT, locale="zh-CN", timezone_id=TIMEZONE)
        page = await context.new_page()
        page.set_default_timeout(TURN_TIMEOUT_MS)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        yield page
        await browser.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


async def menu_reply(page: Page) -> None:
    """The latest reply is the menu (a button per family), asked for if it is not."""
    latest = page.locator("#messages .msg.bot").last
    if await page.locator("#messages .msg.bot").count():
        text = await latest.locator(".text").text_content()
        if MENU_REPLY in (text or "") and await latest.locator(".quick-replies button:not([disabled])").count():
            return
    await ask(page, MENU)


async def reload(page: Page) -> None:
    await page.reload()
    await expect(page.locator("#status")).to_have_text("已连接", timeout=TURN_TIMEOUT_MS)


def local_now() -> datetime:
    return datetime.now(ZoneInfo(TIMEZONE))


def clock_times(start: datetime, end: datetime) -> set[str]:
    """Every HH:MM a clock showed from start to end."""
    minutes = int((end - start).total_seconds() // 60) + 2
    return {(start + timedelta(minutes=m)).strftime("%H:%M") for m in range(minutes)}


async def test_own_words_kept_exactly_with_times(page: Page, gateway_url: str) -> None:
    await open_chat(page, gateway_url)
    before = local_now()
    await ask(page, TYPED)
    during = clock_times(before, local_now())
    user = page.locator("#messages .msg.user").last
    assert await user.locator(".text").evaluate("e => e.textContent") == TYPED, "the page changed what was typed"
    live_times = await page.evaluate(LAST_TIMES)

    await reload(page)
    shown = await page.locator("#messages .msg.user .text").evaluate_all("els => els.map(e => e.textContent)")
    assert TYPED in shown, f"after a reload the history shows {shown}, not {TYPED!r} as typed"
    assert all(t in during for t in live_times), f"{live_times}: not the local HH:MM of the messages"
    user = page.locator("#messages .msg.user", has_text=TYPED).last
    assert await user.locator("time").inner_text() in during, "the history has no local time"
    times = await page.locator("#messages .msg time").all_inner_texts()
    assert times and all(re.fullmatch(r"\d\d:\d\d", t) for t in times), times
    today = f"{before.month}月{before.day}日"
    await expect(page.locator("#messages .day").first).to_contain_text(today)


async def test_screen_reader_hears_who_speaks_and_new_replies(page: Page, gateway_url: str) -> None:
    await open_chat(page, gateway_url)
    if await page.locator("#messages .msg.user").count() == 0:
        await ask(page, TYPED)
    log = page.get_by_role("log")
    await expect(log).to_have_attribute("aria-live", "polite")
    for kind, label in (("user", "我说"), ("bot", "市民服务助手说")):
        messages = page.locator(f"#messages .msg.{kind}")
        speakers = messages.locator(".speaker")
        assert await speakers.count() == await messages.count() > 0, f"a {kind} message has no speaker label"
        assert set(await speakers.all_text_contents()) == {label}
        box = await speakers.first.bounding_box()
        assert box is not None and box["width"] <= 1, "the speaker label is meant for the ear, not the eye"
    # What assistive technology is given (hidden text stays in the accessibility tree).
    tree = await log.aria_snapshot()
    assert "我说" in tree and "市民服务助手说" in tree and TYPED in tree, tree

    # Named controls, a labelled input, and focus in reading order: header, replies, input, send.
    await expect(page.get_by_label("输入您的问题")).to_have_id("input")
    await expect(page.get_by_role("button", name="发送")).to_be_visible()
    await expect(page.get_by_role("button", name="长辈模式")).to_have_attribute("aria-pressed", "false")
    await expect(page.get_by_role("button", name="接收城市通知")).to_be_visible()
    await page.evaluate("document.activeElement.blur()")
    order: list[dict] = []
    for _ in range(60):
        await page.keyboard.press("Tab")
        focused = await page.evaluate(FOCUSED)
        if focused is None or (order and focused == order[0]):
            break  # past the last control, or round to the first again
        order.append(focused)
    hooks = [f["hook"] for f in order]
    assert hooks[:2] == ["elder", "notify"] and hooks[-2:] == ["input", "send"], hooks
    assert [f for f in order if not f["visible"]] == [], "focus lands on something hidden"
    assert [f for f in order if not f["name"]] == [], "a control without a name"


async def test_colours_meet_wcag_aa(page: Page, gateway_url: str) -> None:
    await open_chat(page, gateway_url)
    await menu_reply(page)
    # A chosen reply and spent ones, as a conversation leaves them.
    bots = await page.locator("#messages .msg.bot").count()
    await page.locator(".quick-replies button:not([disabled])").first.click()
    await page.wait_for_function(
        "n => document.querySelectorAll('#messages .msg.bot').length > n && document.getElementById('typing').hidden",
        arg=bots,
    )
    await menu_reply(page)
    # The same conversation in a second tab whose socket passes through a route that can add a frame.
    view = await page.context.new_page()
    try:
        await show_every_state(view, gateway_url)
        failures = await contrast_failures(view)
        assert not failures, "contrast below WCAG 2.1 AA:\n" + "\n".join(failures)
        toggle = view.get_by_role("button", name="长辈模式")
        await toggle.click()
        await expect(view.locator(".more-options").last).to_be_visible()
        await expect(view.locator(".msg.bot .expand:visible").first).to_be_visible()  # the bus's long answer
        failures = await contrast_failures(view)
        await toggle.click()  # off again (remembered for every tab)
        assert not failures, "contrast below WCAG 2.1 AA in 长辈模式:\n" + "\n".join(failures)
    finally:
        await view.close()


async def show_every_state(page: Page, gateway_url: str) -> None:
    """The states a visit passes through, drawn by the page's own CSS: a notice from the server (an
    error frame added to the real socket's), the typing indicator, a notification error; spent and
    chosen replies are in the conversation already, and contrast_failures sets each connection state."""
    sockets: list[WebSocketRoute] = []

    def route(ws: WebSocketRoute) -> None:
        ws.connect_to_server()  # everything passes both ways
        sockets.append(ws)

    await page.route_web_socket(re.compile(r"/ws/webchat"), route)
    await open_chat(page, gateway_url)
    notice = "这是一条系统提示。"
    sockets[-1].send(json.dumps({"type": "error", "error": notice, "in_reply_to": None}, ensure_ascii=False))
    await expect(page.locator("#messages .msg.system .text").last).to_have_text(notice)
    await page.evaluate(
        """() => {
      document.getElementById('typing').hidden = false;
      const s = document.getElementById('notify-status');
      s.hidden = false; s.dataset.kind = 'error'; s.textContent = '开启通知失败，请稍后再试。';
    }"""
    )


async def test_large_system_text_grows_without_sideways_scrolling(page: Page, gateway_url: str) -> None:
    await open_chat(page, gateway_url)
    await menu_reply(page)
    await page.set_viewport_size(PHONE)
    sampled = [
        "h1",
        "#status",
        "#notify",
        "#elder",
        ".welcome",
        "#messages .msg.bot .text",
        "#messages .msg time",
        ".quick-replies button",
        "#input",
        "#send",
    ]
    try:
        normal = await page.evaluate(FONT_SIZES, sampled)
        await page.evaluate("document.documentElement.style.fontSize = '200%'")
        large = await page.evaluate(FONT_SIZES, sampled)
        grown = {sel: large[sel] / normal[sel] for sel in sampled if normal[sel]}
        assert all(ratio >= 1.9 for ratio in grown.values()), f"text that ignores the phone's text size: {grown}"
        assert set(grown) == set(sampled), f"not all sampled elements are on the page: {normal}"
        assert await page.evaluate(OVERFLOW) == [], "sideways overflow at 200% text on a 360px screen"
        await page.locator("#messages .msg.bot").last.scroll_into_view_if_needed()
        box = await page.locator("#send").bounding_box()
        assert box and box["x"] + box["width"] <= PHONE["width"] and box["y"] + box["height"] <= PHONE["height"]
    finally:
        await page.evaluate("document.documentElement.style.fontSize = ''")
        await page.set_viewport_size(VIEWPORT)


async def test_elder_mode(page: Page, gateway_url: str) -> None:
    await open_chat(page, gateway_url)
    await menu_reply(page)
    toggle = page.get_by_role("button", name="长辈模式")
    if await toggle.get_attribute("aria-pressed") == "true":
        await toggle.click()
    reply = page.locator("#messages .msg.bot").last
    text = reply.locator(".text")
    size = await text.evaluate("e => parseFloat(getComputedStyle(e).fontSize)")
    await expect(reply.get_by_role("button", name="更多选项")).to_be_hidden()
    choices = await reply.locator(".quick-replies button").count()
    assert choices > 4, f"the menu has {choices} buttons: too few to show 更多选项"
    assert await reply.locator(".quick-replies button:visible").count() == choices

    await toggle.click()
    await expect(toggle).to_have_attribute("aria-pressed", "true")
    larger = await text.evaluate("e => parseFloat(getComputedStyle(e).fontSize)")
    assert larger >= 1.25 * size, f"长辈模式 text is {larger}px, was {size}px"

    # At most four buttons at a time, "更多选项" among them, which shows the rest.
    more = reply.get_by_role("button", name="更多选项")
    shown = reply.locator(".quick-replies button:visible")
    await expect(more).to_be_visible()
    assert await shown.count() + 1 <= 4, f"{await shown.count()} choices and 更多选项"
    targets = [*await shown.all(), more, page.locator("#send"), page.locator("#input"), toggle]
    for target in targets:
        box = await target.bounding_box()
        assert box and box["height"] >= 48 and box["width"] >= 48, f"touch target too small: {box}"
    await more.click()
    await expect(shown).to_have_count(choices)
    await expect(more).to_be_hidden()
    assert await page.evaluate("document.activeElement.closest('.quick-replies') !== null"), "focus was lost"

    # A long reply (the bus's: every vehicle of the line) shows its first lines and “展开全文”.
    await ask(page, TYPED)
    reply = page.locator("#messages .msg.bot").last
    text = reply.locator(".text")
    expand = reply.get_by_role("button", name="展开全文")
    await expect(expand).to_be_visible()
    folded = await text.evaluate("e => [e.clientHeight, e.scrollHeight]")
    assert folded[0] < folded[1], f"the long reply is not folded: {folded}"
    await expect(expand).to_have_attribute("aria-expanded", "false")
    await expand.click()
    await expect(reply.get_by_role("button", name="收起")).to_have_attribute("aria-expanded", "true")
    unfolded = await text.evaluate("e => [e.clientHeight, e.scrollHeight]")
    assert unfolded[0] >= unfolded[1] and unfolded[0] > folded[0], f"展开全文 shows {unfolded}, was {folded}"
    # Only replies that do not fit are folded: a control shows exactly where text is hidden.
    for folded_reply in await page.locator("#messages .msg.bot:not(.expanded)").all():
        hides = await folded_reply.locator(".text").evaluate("e => e.scrollHeight > e.clientHeight + 1")
        assert await folded_reply.locator(".expand").is_visible() == hides

    # Remembered across a reload, and switched off again.
    await reload(page)
    await expect(toggle).to_have_attribute("aria-pressed", "true")
    text = page.locator("#messages .msg.bot .text").last
    assert await text.evaluate("e => parseFloat(getComputedStyle(e).fontSize)") == larger
    await expect(page.locator("#messages .msg.bot").last.get_by_role("button", name="展开全文")).to_be_visible()
    await toggle.click()
    await expect(toggle).to_have_attribute("aria-pressed", "false")
    await reload(page)
    await expect(toggle).to_have_attribute("aria-pressed", "false")
    assert await text.evaluate("e => parseFloat(getComputedStyle(e).fontSize)") == size
