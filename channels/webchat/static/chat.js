// 克拉玛依市民服务助手 — web chat client. Plain ES2020, no build step.
// Protocol: JSON text frames over /ws/webchat (see the gateway's webchat channel).
"use strict";

(() => {
  const SESSION_KEY = "citygw.session";
  const REPLY_TIMEOUT_MS = 30000; // no "done" by then: re-send once with the same id
  const BACKOFF_MAX_MS = 15000;
  // Read before each message by screen readers (visually hidden): who is speaking.
  const SPEAKER = { user: "我说", bot: "市民服务助手说", system: "系统提示" };
  const ELDER_CHOICES = 4; // 长辈模式: at most this many buttons at a time, "更多选项" included
  const WEEKDAYS = "日一二三四五六";

  const $ = (sel) => document.querySelector(sel);
  const messagesEl = $("#messages");
  const scroller = $("#scroller");
  const typingEl = $("#typing");
  const statusEl = $("#status");
  const form = $("#composer");
  const input = $("#input");

  let ws = null;
  let ready = false; // socket open and the session frame received
  let everConnected = false;
  let backoff = 1000;
  let reconnectTimer = null;
  let serverTyping = false;
  // Messages sent (or queued) that have not had their "done" yet, in send order.
  // id -> {frame, sent, retried, timer}
  const pending = new Map();
  const sentIds = new Set(); // every id this tab sent
  const doneIds = new Set(); // ids whose turn is over: a re-send's replayed replies are not shown twice
  let shownSession = null; // the session whose history is on screen
  let shownDay = null; // the day of the last message shown: a new day gets a date line
  let messageCount = 0; // for the ids that controls point at (aria-controls)

  // ---- small helpers -------------------------------------------------------

  function storage(key, value) {
    try {
      if (value === undefined) return localStorage.getItem(key);
      localStorage.setItem(key, value);
    } catch {
      return null; // storage disabled (private mode): the session lasts as long as the page
    }
    return null;
  }

  function newId() {
    if (crypto.randomUUID) return crypto.randomUUID();
    // crypto.randomUUID needs a secure context (https or localhost); build a v4 uuid by hand.
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  function setSession(id) {
    if (!id) return;
    storage(SESSION_KEY, id);
    document.body.dataset.session = id;
  }

  function setStatus(state) {
    const text = { open: "已连接", connecting: "连接中…", closed: "连接已断开，正在重连…" }[state];
    statusEl.textContent = text;
    statusEl.dataset.state = state;
  }

  function nearBottom() {
    return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 80;
  }

  function scrollToBottom() {
    scroller.scrollTop = scroller.scrollHeight;
  }

  function updateTyping() {
    const waiting = serverTyping || [...pending.values()].some((m) => m.sent);
    const stick = nearBottom();
    typingEl.hidden = !waiting;
    if (stick) scrollToBottom();
  }

  function elder() {
    return document.documentElement.classList.contains("elder");
  }

  // ---- rendering (text always via textContent, never innerHTML) ------------

  function element(tag, className, text) {
    const el = document.createElement(tag);
    el.className = className;
    if (text) el.textContent = text;
    return el;
  }

  const two = (n) => String(n).padStart(2, "0");

  // Times are the citizen's local time: HH:MM on each message, a date line when the day changes.
  function addDayLine(at) {
    const day = at.toDateString();
    if (day === shownDay) return;
    shownDay = day;
    const year = at.getFullYear() === new Date().getFullYear() ? "" : `${at.getFullYear()}年`;
    const date = `${year}${at.getMonth() + 1}月${at.getDate()}日 星期${WEEKDAYS[at.getDay()]}`;
    messagesEl.append(element("p", "day", date));
  }

  function when(iso) {
    const at = iso ? new Date(iso) : new Date();
    return Number.isNaN(at.getTime()) ? new Date() : at;
  }

  function addMessage(kind, text, at = new Date()) {
    addDayLine(at);
    const msg = element("div", `msg ${kind}`);
    msg.append(element("span", "speaker visually-hidden", SPEAKER[kind]));
    if (text) {
      const body = element("div", "text", text);
      body.id = `message-${++messageCount}`;
      msg.append(body);
      if (kind === "bot") msg.append(expandControl(msg, body));
    }
    const time = element("time", "time", `${two(at.getHours())}:${two(at.getMinutes())}`);
    time.dateTime = at.toISOString();
    msg.append(time);
    messagesEl.append(msg);
    return msg;
  }

  // 长辈模式 folds a long reply to its first lines (chat.css) with this control to read the rest.
  // The whole text stays in the page for screen readers.
  function expandControl(msg, body) {
    const button = element("button", "expand", "展开全文");
    button.type = "button";
    button.setAttribute("aria-expanded", "false");
    button.setAttribute("aria-controls", body.id);
    button.addEventListener("click", () => {
      const open = msg.classList.toggle("expanded");
      button.setAttribute("aria-expanded", String(open));
      button.textContent = open ? "收起" : "展开全文";
      if (!open) fold(msg);
    });
    return button;
  }

  // Whether the folded text hides anything is measured, not guessed: it depends on the screen's
  // width and the phone's text size.
  function fold(msg) {
    if (!elder() || msg.classList.contains("expanded")) return;
    const body = msg.querySelector(":scope > .text");
    if (body) msg.classList.toggle("long", body.scrollHeight > body.clientHeight + 1);
  }

  function foldAll() {
    const stick = nearBottom();
    for (const msg of messagesEl.querySelectorAll(".msg.bot")) fold(msg);
    if (stick) scrollToBottom();
  }

  function enabledChips() {
    return [...messagesEl.querySelectorAll(".quick-replies button:not(:disabled)")];
  }

  // A citizen message ends every earlier reply's quick replies.
  function disableChips() {
    for (const b of enabledChips()) b.disabled = true;
    for (const b of messagesEl.querySelectorAll(".more-options:not(:disabled)")) b.disabled = true;
  }

  function addUser(text, at) {
    disableChips();
    addMessage("user", text, at);
    scrollToBottom();
  }

  // The buttons past the first three are "extra": 长辈模式 shows them only after "更多选项".
  function addChoices(msg, buttons) {
    const row = element("div", "quick-replies");
    row.id = `choices-${++messageCount}`;
    row.setAttribute("role", "group");
    row.setAttribute("aria-label", "可选的回复");
    const folded = buttons.length > ELDER_CHOICES;
    buttons.forEach(({ title, payload }, i) => {
      const b = element("button", folded && i >= ELDER_CHOICES - 1 ? "extra" : "", title || payload);
      b.type = "button";
      b.dataset.payload = payload ?? title;
      b.addEventListener("click", (ev) => {
        b.classList.add("chosen");
        send(b.dataset.payload, b.textContent);
        if (ev.detail === 0) input.focus(); // chosen from the keyboard: focus is not lost with the button
      });
      row.append(b);
    });
    msg.append(row);
    if (!folded) return;
    const more = element("button", "more-options", "更多选项");
    more.type = "button";
    more.setAttribute("aria-expanded", "false");
    more.setAttribute("aria-controls", row.id);
    more.addEventListener("click", () => {
      row.classList.add("open");
      row.querySelector(".extra")?.focus();
      more.setAttribute("aria-expanded", "true"); // hides it (chat.css): nothing more to show
    });
    msg.append(more);
  }

  function addBot(text, buttons, at) {
    const stick = nearBottom();
    const msg = addMessage("bot", text, at);
    if (Array.isArray(buttons) && buttons.length) addChoices(msg, buttons);
    fold(msg);
    if (stick) scrollToBottom();
  }

  function addNotice(text) {
    const stick = nearBottom();
    addMessage("system", text);
    if (stick) scrollToBottom();
  }

  // A citizen message known only by its text (history, another tab's echo) may be a button
  // payload: show the button's title, as the tab that clicked it did.
  function displayFor(text) {
    const chip = enabledChips().find((b) => b.dataset.payload === text);
    if (!chip) return text;
    chip.classList.add("chosen");
    return chip.textContent;
  }

  function renderHistory(history) {
    // Busy while the log is rebuilt: screen readers are not read the whole history again.
    messagesEl.setAttribute("aria-busy", "true");
    messagesEl.replaceChildren();
    shownDay = null;
    for (const item of history || []) {
      if (item.direction === "in") addUser(item.display || displayFor(item.text), when(item.at));
      else addBot(item.text, item.buttons, when(item.at));
    }
    // Messages not answered yet (typed while offline) stay on screen; they are sent next.
    for (const m of pending.values()) addUser(m.frame.display || m.frame.text);
    messagesEl.removeAttribute("aria-busy");
    scrollToBottom();
  }

  // The history replaces what is shown on a page's first connection, and on a reconnection
  // while nothing is in flight (it then brings what other tabs said meanwhile). While a sent
  // message awaits its answer the screen is kept: the history cannot tell which of its
  // entries that message is, and re-sending it (same id) makes the server replay its replies.
  function onSession(f) {
    setSession(f.session);
    const inFlight = [...pending.values()].some((m) => m.sent);
    if (shownSession !== f.session || !inFlight) renderHistory(f.history);
    shownSession = f.session;
    // The session this browser kept was refused (not ours, or idle too long): say why the history is gone.
    if (f.notice) addNotice(f.notice);
  }

  // ---- sending -------------------------------------------------------------

  // Send now if connected (else it stays queued for the next session frame); the answer
  // deadline starts with the first send.
  function transmit(m) {
    if (!ready) return;
    ws.send(JSON.stringify(m.frame));
    m.sent = true;
    if (!m.timer) m.timer = setTimeout(() => onTimeout(m), REPLY_TIMEOUT_MS);
  }

  function onTimeout(m) {
    m.timer = null;
    if (!pending.has(m.frame.id)) return;
    if (!m.retried) {
      m.retried = true;
      transmit(m);
      return;
    }
    finish(m.frame.id, false);
    addNotice("助手暂时没有回应，请稍后再试。");
    updateTyping();
  }

  // The turn of message `id` is over; `answered` unless the client gave up waiting (a late
  // answer is then still shown).
  function finish(id, answered = true) {
    if (id && answered) doneIds.add(id);
    const m = pending.get(id);
    if (m) {
      clearTimeout(m.timer);
      pending.delete(id);
    }
  }

  function send(text, display) {
    if (!text || !text.trim()) return;
    const frame = { type: "message", id: newId(), text };
    if (display) frame.display = display;
    const m = { frame, sent: false, retried: false, timer: null };
    pending.set(frame.id, m);
    sentIds.add(frame.id);
    addUser(display || text);
    transmit(m);
    updateTyping();
  }

  // ---- the socket ----------------------------------------------------------

  function connect() {
    reconnectTimer = null;
    const session = storage(SESSION_KEY) || document.body.dataset.session;
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    let url = `${proto}//${location.host}/ws/webchat`;
    if (session) url += `?session=${encodeURIComponent(session)}`;
    setStatus(everConnected ? "closed" : "connecting");

    const sock = new WebSocket(url);
    ws = sock;
    sock.addEventListener("message", (ev) => {
      let frame;
      try {
        frame = JSON.parse(ev.data);
      } catch {
        return;
      }
      onFrame(frame);
    });
    sock.addEventListener("close", () => {
      if (ws !== sock) return;
      ready = false;
      serverTyping = false;
      // Answer deadlines keep running: a message that keeps breaking the connection is given up
      // after its second 30 s instead of being re-sent on every reconnection.
      setStatus(everConnected ? "closed" : "connecting");
      updateTyping();
      reconnectTimer = setTimeout(connect, backoff);
      backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
    });
  }

  function onFrame(f) {
    switch (f.type) {
      case "session":
        onSession(f);
        ready = true;
        everConnected = true;
        backoff = 1000;
        setStatus("open");
        // Queued and unanswered messages go (again) with their original ids: the server dedupes.
        for (const m of pending.values()) transmit(m);
        updateTyping();
        break;
      case "typing":
        serverTyping = true;
        updateTyping();
        break;
      case "reply":
        if (doneIds.has(f.in_reply_to)) break; // a re-send's replay of replies already shown
        addBot(f.text, f.buttons);
        updateTyping();
        break;
      case "echo":
        if (!(f.id && sentIds.has(f.id))) addUser(f.display || displayFor(f.text));
        updateTyping();
        break;
      case "done":
        finish(f.in_reply_to);
        serverTyping = false;
        updateTyping();
        break;
      case "error":
        addNotice(f.error || "出错了，请稍后再试。");
        if (f.in_reply_to) {
          finish(f.in_reply_to);
          serverTyping = false;
        }
        updateTyping();
        break;
      default:
        break; // unknown frame types are ignored
    }
  }

  // ---- input ---------------------------------------------------------------

  // Grows with the text; chat.css caps it (max-height, in rem like every size on the page).
  function autosize() {
    input.style.height = "auto";
    input.style.height = `${input.scrollHeight + input.offsetHeight - input.clientHeight}px`;
  }

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const text = input.value;
    if (!text.trim()) return;
    input.value = "";
    autosize();
    send(text.trim());
    input.focus();
  });

  input.addEventListener("keydown", (ev) => {
    // Enter sends; Shift+Enter is a new line; Enter that confirms an IME candidate never sends.
    if (ev.key !== "Enter" || ev.shiftKey || ev.isComposing || ev.keyCode === 229) return;
    ev.preventDefault();
    form.requestSubmit();
  });
  input.addEventListener("input", autosize);

  // Come back quickly when the phone regains its network instead of waiting out the backoff.
  window.addEventListener("online", () => {
    if (reconnectTimer) {
      clearTimeout(reconnectTimer);
      backoff = 1000;
      connect();
    }
  });

  document.addEventListener("citygw:elder", foldAll);
  let foldQueued = false;
  window.addEventListener("resize", () => {
    if (foldQueued) return;
    foldQueued = true;
    requestAnimationFrame(() => {
      foldQueued = false;
      foldAll();
    });
  });

  const saved = storage(SESSION_KEY);
  if (saved) document.body.dataset.session = saved;
  connect();
})();
