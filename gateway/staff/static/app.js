// 市民服务消息平台 — staff console. Plain ES2020, no build step, no framework.
// Talks to the staff JSON API under /api/staff/ (cookie session + X-CSRF-Token on every non-GET).
// All text goes into the page through textContent, never innerHTML.
"use strict";

(() => {
  const API = "/api/staff";
  const PAGE_SIZE = 50;
  const BODY_MAX = 500;
  const TITLE_MAX = 64;

  // ---- labels --------------------------------------------------------------

  const ROLE = { admin: "管理员", broadcaster: "广播员", approver: "审批员", school: "学校", viewer: "只读", agent: "人工客服" };
  const KIND = { emergency: "预警", notice: "通知", school: "学校通知" };
  const STATUS = {
    draft: "草稿",
    pending_approval: "待审批",
    scheduled: "待发送",
    sending: "发送中",
    completed: "已完成",
    cancelled: "已取消",
  };
  const RSTATUS = {
    queued: "排队中",
    sent: "已发送",
    delivered: "已送达",
    undelivered: "未送达",
    failed: "失败",
    skipped: "已跳过",
  };
  const CHANNEL = { sms: "短信", wechat: "微信", webpush: "网页推送" };
  const AUDIT_ACTION = {
    login: "登录",
    login_failed: "登录失败",
    logout: "退出登录",
    user_create: "新建账号",
    user_disable: "停用账号",
    broadcast_create: "新建广播",
    broadcast_approve: "审批广播",
    broadcast_cancel: "取消广播",
    broadcast_retry: "重试失败",
    notice_create: "新建学校通知",
    notice_remind: "提醒未确认",
    unanswered_assign: "归类未解答问题",
    unanswered_export: "导出候选训练样例",
    handoff_feed: "打开人工服务",
    handoff_view: "查看人工对话",
    handoff_claim: "接单",
    handoff_reply: "回复居民",
    handoff_note: "内部备注",
    handoff_transfer: "转交工单",
    handoff_close: "结束人工服务",
    handoff_reveal: "查看联系方式",
  };
  const OUTCOME = { declined: "婉拒", not_understood: "没听懂", suggested: "只给了猜测" };
  const CHAT_CHANNEL = { ...CHANNEL, webchat: "网页聊天" };
  const CN_NUM = ["零", "一", "二", "三", "四", "五", "六", "七", "八", "九", "十", "十一", "十二"];

  // ---- what each role may do (the server decides; this only hides what would be refused) ----

  const CAN = {
    readBroadcasts: (me) => ["admin", "broadcaster", "approver", "viewer"].includes(me.role),
    compose: (me) => ["admin", "broadcaster"].includes(me.role),
    approve: (me) => ["admin", "approver"].includes(me.role),
    cancel: (me) => ["admin", "broadcaster"].includes(me.role),
    retry: (me) => ["admin", "broadcaster"].includes(me.role),
    notices: (me) => ["admin", "school"].includes(me.role),
    // an admin writes for any school (picked on the page); school staff for their own
    composeNotice: (me) => me.role === "admin" || (me.role === "school" && Boolean(me.school_id)),
    remind: (me) => ["admin", "school"].includes(me.role),
    admin: (me) => me.role === "admin",
    unanswered: (me) => ["admin", "viewer"].includes(me.role),
    handoffs: (me) => ["admin", "agent"].includes(me.role),
  };

  const state = {
    me: null,
    csrf: null,
    areas: null, // {districts: [...], topics: [...]}, loaded once
    gen: 0, // bumps on every route change: timers of an older view stop themselves
  };

  // ---- small helpers -------------------------------------------------------

  const $ = (sel, root = document) => root.querySelector(sel);

  // el("p", {class: "x", onclick: fn, hidden: true}, "text", child, [children…])
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
      else if (key === "class") node.className = value;
      else if (key === "for") node.htmlFor = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else if (key === "value") node.value = value;
      else if (key === "checked" || key === "disabled" || key === "hidden" || key === "selected") node[key] = true;
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    append(node, children);
    return node;
  }

  function append(node, children) {
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  // Like node.replaceChildren, but null/false children are skipped (the DOM would print "null").
  function fill(node, ...children) {
    node.replaceChildren();
    return append(node, children);
  }

  function newId() {
    if (crypto.randomUUID) return crypto.randomUUID();
    // crypto.randomUUID needs a secure context (https or localhost): a v4 uuid by hand.
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  let uid = 0;
  const fieldId = (name) => `${name}-${++uid}`;

  // Server times are UTC; a time without an offset (SQLite) is UTC too.
  function parseTime(value) {
    if (!value) return null;
    const text = String(value);
    const zoned = /[zZ]|[+-]\d\d:?\d\d$/.test(text) ? text : `${text}Z`;
    const date = new Date(zoned);
    return Number.isNaN(date.getTime()) ? null : date;
  }

  function fmtTime(value) {
    const d = parseTime(value);
    if (!d) return "—";
    const p = (n) => String(n).padStart(2, "0");
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}`;
  }

  function fmtShort(value) {
    const d = parseTime(value);
    if (!d) return "—";
    const p = (n) => String(n).padStart(2, "0");
    return `${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}`;
  }

  // Sent at a chosen later time (an immediate one carries its creation time as scheduled_at).
  function deferred(b) {
    const at = parseTime(b?.scheduled_at);
    const created = parseTime(b?.created_at);
    return Boolean(at && (!created || at.getTime() - created.getTime() > 60_000));
  }

  const num = (n) => (Number.isFinite(Number(n)) ? Number(n) : 0);
  const gradeLabel = (g) => `${CN_NUM[g] ?? g}年级`;

  // UCS-2 code units (what SMS counts): two for a character beyond U+FFFF.
  function smsUnits(text) {
    let n = 0;
    for (const ch of text) n += ch.codePointAt(0) > 0xffff ? 2 : 1;
    return n;
  }

  function smsSegments(units) {
    if (units <= 70) return 1;
    return Math.ceil(units / 67);
  }

  // The list endpoints may answer a bare array or {items: [...]}-like objects.
  function listOf(data, ...keys) {
    if (Array.isArray(data)) return data;
    for (const key of [...keys, "items", "results", "data"]) if (data && Array.isArray(data[key])) return data[key];
    return [];
  }

  // ---- messages to the user -----------------------------------------------

  let flashTimer = null;

  function flash(text) {
    const box = $("#flash");
    box.textContent = text;
    box.hidden = false;
    clearTimeout(flashTimer);
    flashTimer = setTimeout(() => {
      box.hidden = true;
    }, 6000);
  }

  function showError(err, box = $("#error")) {
    const text = typeof err === "string" ? err : err?.message || "操作失败，请稍后重试";
    box.textContent = text;
    box.hidden = false;
    box.scrollIntoView?.({ block: "nearest" });
  }

  function clearError(box = $("#error")) {
    box.textContent = "";
    box.hidden = true;
  }

  function errorBox(id) {
    return el("p", { id, class: "error", role: "alert", hidden: true });
  }

  // ---- the API -------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  const FALLBACK = {
    400: "请求内容有误，请检查后重试",
    401: "登录已过期，请重新登录",
    403: "您没有权限执行此操作",
    404: "未找到相应内容",
    409: "操作与当前状态冲突，请刷新后重试",
    413: "内容过大",
    429: "操作过于频繁，请稍后再试",
  };

  async function api(method, path, body, opts = {}) {
    const headers = { Accept: "application/json" };
    let payload;
    if (body !== undefined) {
      if (typeof body === "string") {
        headers["Content-Type"] = opts.type || "text/plain; charset=utf-8";
        payload = body;
      } else {
        headers["Content-Type"] = "application/json";
        payload = JSON.stringify(body);
      }
    }
    if (method !== "GET" && state.csrf) headers["X-CSRF-Token"] = state.csrf;
    let response;
    try {
      response = await fetch(API + path, { method, headers, body: payload, credentials: "same-origin", cache: "no-store" });
    } catch {
      throw new ApiError(0, "network", "无法连接服务器，请检查网络后重试");
    }
    let data = null;
    const text = response.status === 204 ? "" : await response.text();
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = null;
      }
    }
    if (response.ok) return data;
    const status = response.status;
    const error = new ApiError(
      status,
      data?.code || "",
      data?.error || FALLBACK[status] || (status >= 500 ? "服务器出错，请稍后重试" : `请求失败（${status}）`),
    );
    if (status === 403 && error.code === "csrf" && !opts.retried) {
      // The session's token changed (another tab logged in again): fetch it and try once more.
      if (await loadMe()) return api(method, path, body, { ...opts, retried: true });
    }
    if (status === 401 && !opts.noRedirect) {
      state.me = null;
      state.csrf = null;
      renderChrome();
      sessionStorage.setItem("citygw.staff.notice", error.message);
      if (location.hash && location.hash !== "#/login") sessionStorage.setItem("citygw.staff.next", location.hash);
      go("#/login");
    }
    throw error;
  }

  async function loadMe() {
    try {
      const me = await api("GET", "/me", undefined, { noRedirect: true });
      state.me = me;
      state.csrf = me?.csrf_token || null;
      return true;
    } catch {
      state.me = null;
      state.csrf = null;
      return false;
    }
  }

  async function loadAreas() {
    if (!state.areas) {
      const data = await api("GET", "/areas");
      state.areas = { districts: listOf(data?.districts), topics: listOf(data?.topics) };
    }
    return state.areas;
  }

  // A topic may come as "air_quality" or {id, name}.
  const topicId = (t) => (typeof t === "string" ? t : t.id);
  const topicName = (t) => (typeof t === "string" ? t : t.name || t.id);

  // ---- page chrome: who is signed in, navigation -------------------------------------------

  function navLinks(me) {
    const links = [];
    if (CAN.readBroadcasts(me)) links.push(["#/broadcasts", "广播列表"]);
    if (CAN.compose(me)) links.push(["#/broadcasts/new", "新建广播"]);
    if (CAN.notices(me)) links.push(["#/notices", "学校通知"]);
    if (CAN.composeNotice(me)) links.push(["#/notices/new", "新建通知"]);
    if (CAN.readBroadcasts(me)) links.push(["#/dashboard", "数据看板"]);
    if (CAN.unanswered(me)) links.push(["#/unanswered", "未解答问题"]);
    if (CAN.handoffs(me)) links.push(["#/handoffs", "人工服务"]);
    if (CAN.admin(me)) links.push(["#/users", "用户管理"], ["#/audit", "审计日志"]);
    return links;
  }

  function renderChrome() {
    const nav = $("#nav");
    const who = $("#who");
    const me = state.me;
    nav.replaceChildren();
    if (!me) {
      nav.hidden = true;
      who.hidden = true;
      document.body.dataset.role = "";
      return;
    }
    document.body.dataset.role = me.role;
    $("#who-name").textContent = me.display_name || me.username;
    $("#who-role").textContent = ROLE[me.role] || me.role;
    who.hidden = false;
    for (const [href, text] of navLinks(me)) nav.append(el("a", { href }, text));
    nav.hidden = false;
    markNav();
  }

  function markNav() {
    const hash = location.hash || "";
    let best = null;
    for (const a of document.querySelectorAll("#nav a")) {
      a.removeAttribute("aria-current");
      const href = a.getAttribute("href");
      if (hash === href || (hash.startsWith(`${href}/`) && !/\/new$/.test(hash))) {
        if (!best || href.length > best.getAttribute("href").length) best = a;
      }
    }
    best?.setAttribute("aria-current", "page");
  }

  function home(me) {
    if (!me) return "#/login";
    if (CAN.readBroadcasts(me)) return "#/broadcasts";
    if (CAN.notices(me)) return "#/notices";
    if (CAN.handoffs(me)) return "#/handoffs";
    return "#/login";
  }

  // ---- router --------------------------------------------------------------

  const ROUTES = [
    [/^#\/login$/, viewLogin, null],
    [/^#\/broadcasts$/, viewBroadcasts, "readBroadcasts"],
    [/^#\/broadcasts\/new$/, viewCompose, "compose"],
    [/^#\/broadcasts\/(\d+)$/, viewBroadcast, "readBroadcasts"],
    [/^#\/notices$/, viewNotices, "notices"],
    [/^#\/notices\/new$/, viewNoticeCompose, "composeNotice"],
    [/^#\/notices\/(\d+)$/, viewNotice, "notices"],
    [/^#\/users$/, viewUsers, "admin"],
    [/^#\/audit$/, viewAudit, "admin"],
    [/^#\/unanswered$/, viewUnanswered, "unanswered"],
    [/^#\/dashboard$/, viewDashboard, "readBroadcasts"],
    [/^#\/handoffs$/, viewHandoffs, "handoffs"],
    [/^#\/handoffs\/(\d+)$/, viewHandoff, "handoffs"],
  ];

  function go(hash) {
    if (location.hash === hash) route();
    else location.hash = hash;
  }

  async function route() {
    const gen = ++state.gen;
    const hash = location.hash || "";
    clearError();
    const match = ROUTES.map(([re, view, need]) => [hash.match(re), view, need]).find(([m]) => m);
    if (!state.me && (!match || match[1] !== viewLogin)) {
      if (hash && hash !== "#/login") sessionStorage.setItem("citygw.staff.next", hash);
      location.replace("#/login");
      return;
    }
    if (state.me && (!match || match[1] === viewLogin || (match[2] && !CAN[match[2]](state.me)))) {
      location.replace(home(state.me));
      return;
    }
    markNav();
    const view = $("#view");
    fill(view, el("p", { class: "loading" }, "加载中…"));
    view.setAttribute("aria-busy", "true");
    try {
      await match[1](view, gen, ...match[0].slice(1));
    } catch (err) {
      if (gen === state.gen) {
        view.replaceChildren();
        showError(err);
      }
    } finally {
      if (gen === state.gen) view.removeAttribute("aria-busy");
    }
  }

  // A view's content replaces the loading text, unless the user has moved on.
  function mount(view, gen, ...children) {
    if (gen !== state.gen) return false;
    fill(view, ...children.flat());
    return true;
  }

  // Calls fn every `every(…)` ms while the view that started it is on screen.
  function poll(gen, fn, every) {
    const tick = async () => {
      if (gen !== state.gen) return;
      let next = null;
      try {
        next = await fn();
      } catch (err) {
        if (gen === state.gen && err?.status !== 401) showError(err);
        next = 5000;
      }
      if (gen === state.gen && next) setTimeout(tick, next);
    };
    const first = every();
    if (first) setTimeout(tick, first);
  }

  // ---- shared widgets ------------------------------------------------------

  function badge(kind, text, extra = "") {
    return el("span", { class: `badge badge-${kind} ${extra}`.trim() }, text);
  }

  const kindBadge = (k) => badge(k, KIND[k] || k, "kind");
  const statusBadge = (s) => el("span", { class: `status status-${s}`, dataset: { status: s } }, STATUS[s] || s);
  const rstatusBadge = (s) => el("span", { class: `rstatus rstatus-${s}`, dataset: { status: s } }, RSTATUS[s] || s);

  // A table that turns into labelled cards on a phone (td::before shows data-label).
  // compact: stays a table on a phone (few narrow columns), scrolling inside its own box if need be.
  function table(caption, columns, rows, { empty = "暂无数据", id, compact = false } = {}) {
    const thead = el("thead", {}, el("tr", {}, columns.map(([label]) => el("th", { scope: "col" }, label))));
    const tbody = el("tbody");
    for (const row of rows) {
      tbody.append(
        el(
          "tr",
          {},
          columns.map(([label, cell]) => el("td", { "data-label": label }, cell(row) ?? "—")),
        ),
      );
    }
    if (!rows.length) tbody.append(el("tr", { class: "empty" }, el("td", { colspan: columns.length }, empty)));
    return el(
      "div",
      { class: "table-wrap" },
      el(
        "table",
        { class: compact ? "data compact" : "data", id },
        el("caption", { class: "visually-hidden" }, caption),
        thead,
        tbody,
      ),
    );
  }

  function field(label, control, hint) {
    const id = control.id || fieldId("f");
    control.id = id;
    const hintEl = hint ? el("p", { class: "hint", id: `${id}-hint` }, hint) : null;
    if (hintEl) control.setAttribute("aria-describedby", hintEl.id);
    return el("div", { class: "field" }, el("label", { for: id }, label), control, hintEl);
  }

  function choice(type, name, value, label, checked, attrs = {}) {
    const id = fieldId(`${name}-${value}`);
    return el(
      "label",
      { class: "choice", for: id },
      el("input", { type, name, value, id, checked, ...attrs }),
      el("span", {}, label),
    );
  }

  function checkedValues(root, name) {
    return [...root.querySelectorAll(`input[name="${name}"]:checked`)].map((i) => i.value);
  }

  // Body textarea with a live count of characters and SMS segments.
  function bodyField(overhead) {
    const textarea = el("textarea", { id: "body", name: "body", rows: 5, maxlength: BODY_MAX, required: true });
    const counter = el("p", { id: "body-count", class: "hint counter" });
    const update = () => {
      const chars = [...textarea.value].length;
      const units = smsUnits(textarea.value) + overhead();
      const segs = smsSegments(units);
      counter.textContent = `${chars}/${BODY_MAX} 字 · 短信约 ${segs} 段`;
      counter.dataset.chars = String(chars);
      counter.dataset.segments = String(segs);
      counter.classList.toggle("warn", segs > 1);
    };
    textarea.addEventListener("input", update);
    update();
    textarea.setAttribute("aria-describedby", "body-count body-hint");
    const box = el(
      "div",
      { class: "field" },
      el("label", { for: "body" }, "内容"),
      textarea,
      counter,
      el("p", { class: "hint", id: "body-hint" }, "短信按“【签名】【标题】内容”计字：每段 70 字，超过按每段 67 字拆分计费。"),
    );
    return { box, textarea, update };
  }

  function progressBars(progress, { acked = false } = {}) {
    const total = num(progress?.total);
    const rows = [
      ["queued", "排队中"],
      ["sent", "已发送"],
      ["delivered", "已送达"],
      ["failed", "失败"],
    ];
    if (num(progress?.skipped)) rows.push(["skipped", "已跳过"]);
    if (acked) rows.push(["acked", "已确认"]);
    const done = num(progress?.sent) + num(progress?.delivered) + num(progress?.failed) + num(progress?.skipped);
    const pct = total ? Math.round((done / total) * 100) : 0;
    const box = el(
      "div",
      { class: "progress", id: "progress", dataset: { total: String(total) } },
      el("p", { class: "progress-total" }, `收件人共 ${total} 人 · 已处理 ${pct}%`),
    );
    for (const [key, label] of rows) {
      const count = num(progress?.[key]);
      const fill = el("span", { class: `bar-fill bar-${key}` });
      fill.style.width = `${total ? Math.min(100, (count / total) * 100) : 0}%`;
      box.append(
        el(
          "div",
          { class: "bar-row", dataset: { key, count: String(count) } },
          el("span", { class: "bar-label", id: `bar-${key}-label` }, label),
          el(
            "span",
            {
              class: "bar",
              role: "progressbar",
              "aria-labelledby": `bar-${key}-label`,
              "aria-valuemin": 0,
              "aria-valuemax": total,
              "aria-valuenow": count,
            },
            fill,
          ),
          el("span", { class: "bar-count", id: `count-${key}` }, String(count)),
        ),
      );
    }
    return box;
  }

  function describeAudience(audience, extra = {}) {
    const a = audience || {};
    const areas = state.areas;
    const districtName = (id) => areas?.districts.find((d) => d.id === id)?.name || id;
    const communityName = (id) => {
      for (const d of areas?.districts || []) {
        const c = (d.communities || []).find((x) => x.id === id);
        if (c) return c.name;
      }
      return id;
    };
    const topicLabel = (id) => topicName(areas?.topics.find((t) => topicId(t) === id) || id);
    switch (a.type) {
      case "all":
        return "全市";
      case "districts":
        return `区：${(a.ids || []).map(districtName).join("、")}`;
      case "communities":
        return `社区：${(a.ids || []).map(communityName).join("、")}`;
      case "topics":
        return `订阅主题：${(a.ids || []).map(topicLabel).join("、")}`;
      case "list":
        return `上传号码 ${(a.phones || []).length} 个`;
      case "school":
        return "全校";
      case "grade":
        return `年级：${(a.grades || []).map(gradeLabel).join("、")}`;
      case "classes": {
        const names = extra.classes ? (a.ids || []).map((id) => extra.classes.get(id) || id) : a.ids || [];
        return `班级：${names.join("、")}`;
      }
      default:
        return "—";
    }
  }

  // ---- 登录 ----------------------------------------------------------------

  async function viewLogin(view, gen) {
    const error = errorBox("login-error");
    const notice = sessionStorage.getItem("citygw.staff.notice");
    sessionStorage.removeItem("citygw.staff.notice");
    const username = el("input", { id: "username", name: "username", autocomplete: "username", required: true });
    const password = el("input", {
      id: "password",
      name: "password",
      type: "password",
      autocomplete: "current-password",
      required: true,
    });
    const submit = el("button", { type: "submit", id: "login-submit", class: "primary" }, "登录");
    const form = el(
      "form",
      { id: "login-form", class: "card narrow", novalidate: true, "aria-labelledby": "login-title" },
      el("h1", { id: "login-title" }, "工作人员登录"),
      field("用户名", username),
      field("密码", password),
      error,
      submit,
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      clearError(error);
      if (!username.value.trim() || !password.value) {
        showError("请输入用户名和密码", error);
        return;
      }
      submit.disabled = true;
      submit.textContent = "登录中…";
      try {
        const data = await api(
          "POST",
          "/login",
          { username: username.value.trim(), password: password.value },
          { noRedirect: true },
        );
        state.csrf = data?.csrf_token || null;
        state.me = data?.staff ? { ...data.staff, csrf_token: state.csrf } : null;
        if (!state.me?.role) await loadMe();
        if (!state.me) throw new ApiError(0, "", "登录失败，请重试");
        renderChrome();
        const next = sessionStorage.getItem("citygw.staff.next");
        sessionStorage.removeItem("citygw.staff.next");
        go(next || home(state.me));
      } catch (err) {
        password.value = "";
        showError(err, error);
        password.focus();
      } finally {
        submit.disabled = false;
        submit.textContent = "登录";
      }
    });
    if (!mount(view, gen, form)) return;
    if (notice) showError(notice, error);
    username.focus();
  }

  // ---- 广播列表 --------------------------------------------------------------

  async function viewBroadcasts(view, gen) {
    const me = state.me;
    const kindSelect = el(
      "select",
      { id: "kind-filter" },
      el("option", { value: "" }, "全部"),
      el("option", { value: "emergency" }, "预警"),
      el("option", { value: "notice" }, "通知"),
    );
    const holder = el("div", { id: "broadcast-list" });
    const header = el(
      "div",
      { class: "view-head" },
      el("h1", {}, "广播列表"),
      CAN.compose(me) ? el("a", { class: "button primary", href: "#/broadcasts/new", id: "new-broadcast" }, "新建广播") : null,
    );
    const filters = el("div", { class: "filters" }, field("类型", kindSelect));
    await loadAreas().catch(() => null);
    let active = false;

    let loads = 0;
    const load = async () => {
      const mine = ++loads;
      const query = kindSelect.value ? `?kind=${encodeURIComponent(kindSelect.value)}` : "";
      const items = listOf(await api("GET", `/broadcasts${query}`), "broadcasts");
      if (gen !== state.gen || mine !== loads) return;
      active = items.some((b) => ["sending", "scheduled", "pending_approval"].includes(b.status));
      fill(holder,
        table(
          "广播",
          [
            ["编号", (b) => `#${b.id}`],
            ["标题", (b) => el("a", { href: `#/broadcasts/${b.id}`, class: "title-link" }, b.title)],
            ["类型", (b) => kindBadge(b.kind)],
            ["状态", (b) => statusBadge(b.status)],
            ["对象", (b) => describeAudience(b.audience)],
            ["收件人", (b) => countsText(b)],
            ["创建时间", (b) => fmtTime(b.created_at)],
          ],
          items,
          { empty: "还没有广播", id: "broadcasts-table" },
        ),
      );
    };
    kindSelect.addEventListener("change", () => load().catch((err) => showError(err)));
    await load();
    if (!mount(view, gen, header, filters, holder)) return;
    poll(gen, async () => {
      await load();
      return active ? 3000 : 10000;
    }, () => 3000);
  }

  // "送达 x / 共 N" from whatever counts a list item carries.
  function countsText(item) {
    const p = item.progress;
    if (p && num(p.total)) {
      const parts = [`共 ${num(p.total)}`, `送达 ${num(p.delivered)}`];
      if (num(p.failed)) parts.push(`失败 ${num(p.failed)}`);
      if (p.acked !== undefined && item.kind === "school") parts.push(`确认 ${num(p.acked)}`);
      return parts.join(" · ");
    }
    if (num(item.recipient_total)) return `共 ${num(item.recipient_total)}`;
    return "—";
  }

  // ---- 新建广播 --------------------------------------------------------------

  async function viewCompose(view, gen) {
    const areas = await loadAreas();
    const idempotencyKey = newId(); // one per compose: a double click or a retry is one broadcast
    let signatureUnits = 0; // the 【签名】 the rendered SMS adds, learned from the preview
    let previewed = null; // JSON of the {kind, body, audience} the preview answered for
    let checkedPhones = null; // {text, valid, errors} of the last upload check

    const error = errorBox("compose-error");
    const kinds = el(
      "fieldset",
      { class: "group" },
      el("legend", {}, "类型"),
      choice("radio", "kind", "emergency", "预警（需审批后发送）", true),
      choice("radio", "kind", "notice", "通知"),
    );
    const title = el("input", { id: "title", name: "title", maxlength: TITLE_MAX, required: true });
    // The SMS goes out as 【签名】【标题】正文: the live count includes the title, and the signature once known.
    const titleUnits = () => (title.value.trim() ? smsUnits(`【${title.value.trim()}】`) : 0);
    const body = bodyField(() => signatureUnits + titleUnits());
    title.addEventListener("input", () => body.update());

    // audience
    const audTypes = [
      ["all", "全市"],
      ["districts", "区"],
      ["communities", "社区"],
      ["topics", "订阅主题"],
      ["list", "上传号码"],
    ];
    const audRadios = el(
      "div",
      { class: "choices", role: "radiogroup", "aria-label": "发送对象类型" },
      audTypes.map(([v, l], i) => choice("radio", "aud", v, l, i === 0)),
    );
    const panels = {};
    panels.all = el("p", { class: "hint" }, "发送给全市所有可联系的居民。");
    panels.districts = el(
      "fieldset",
      { class: "group", id: "aud-districts" },
      el("legend", {}, "选择区"),
      el("div", { class: "choices" }, areas.districts.map((d) => choice("checkbox", "district", d.id, d.name))),
    );
    panels.communities = el(
      "fieldset",
      { class: "group", id: "aud-communities" },
      el("legend", {}, "选择社区"),
      areas.districts.map((d) => {
        const count = el("span", { class: "picked" });
        const box = el(
          "details",
          { class: "district-group" },
          el("summary", {}, d.name, " ", count),
          el(
            "div",
            { class: "choices" },
            (d.communities || []).map((c) => choice("checkbox", "community", c.id, c.name)),
          ),
        );
        box.addEventListener("change", () => {
          const n = box.querySelectorAll("input:checked").length;
          count.textContent = n ? `（已选 ${n}）` : "";
        });
        return box;
      }),
    );
    panels.topics = el(
      "fieldset",
      { class: "group", id: "aud-topics" },
      el("legend", {}, "选择订阅主题"),
      areas.topics.length
        ? el("div", { class: "choices" }, areas.topics.map((t) => choice("checkbox", "topic", topicId(t), topicName(t))))
        : el("p", { class: "hint" }, "暂无可选主题"),
    );
    const phones = el("textarea", { id: "phones", name: "phones", rows: 6, placeholder: "每行一个手机号码，例如 13912345678" });
    const phonesFile = el("input", { id: "phones-file", type: "file", accept: ".txt,.csv,text/plain,text/csv" });
    const checkButton = el("button", { type: "button", id: "check-phones" }, "检查号码");
    const phonesResult = el("div", { id: "phones-result", "aria-live": "polite" });
    panels.list = el(
      "div",
      { class: "group", id: "aud-list" },
      field("手机号码", phones, "每行一个号码，可从 Excel 复制一列；或选择 .txt / .csv 文件。"),
      field("或上传文件", phonesFile),
      el("div", { class: "actions" }, checkButton),
      phonesResult,
    );
    const audPanels = el(
      "div",
      { class: "aud-panels" },
      Object.entries(panels).map(([k, p]) => {
        p.dataset.aud = k;
        return p;
      }),
    );
    const audience = el("fieldset", { class: "group" }, el("legend", {}, "发送对象"), audRadios, audPanels);

    // schedule
    const when = el(
      "fieldset",
      { class: "group" },
      el("legend", {}, "发送时间"),
      el(
        "div",
        { class: "choices" },
        choice("radio", "when", "now", "立即（审批通过后）", true),
        choice("radio", "when", "later", "定时发送"),
      ),
    );
    const scheduledAt = el("input", { id: "scheduled-at", type: "datetime-local" });
    const scheduleField = field("定时时间", scheduledAt, "按本市时间；免打扰时段内的通知将顺延到时段结束后。");
    when.append(scheduleField);

    const previewButton = el("button", { type: "button", id: "preview", class: "secondary" }, "预览");
    const previewBox = el("section", { id: "preview-result", class: "preview", "aria-live": "polite", hidden: true });
    const submitButton = el("button", { type: "submit", id: "submit", class: "primary", disabled: true }, "提交");
    const submitHint = el("p", { class: "hint", id: "submit-hint" }, "请先预览，确认收件人数和费用后再提交。");
    submitButton.setAttribute("aria-describedby", "submit-hint");

    const form = el(
      "form",
      { id: "compose", class: "card", novalidate: true },
      kinds,
      field("标题", title, `不超过 ${TITLE_MAX} 字`),
      body.box,
      audience,
      when,
      el("div", { class: "actions" }, previewButton),
      previewBox,
      error,
      el("div", { class: "actions" }, submitButton),
      submitHint,
    );

    const kindValue = () => form.querySelector('input[name="kind"]:checked')?.value || "emergency";
    const audValue = () => form.querySelector('input[name="aud"]:checked')?.value || "all";

    const showPanels = () => {
      for (const [k, p] of Object.entries(panels)) p.hidden = k !== audValue();
      scheduleField.hidden = form.querySelector('input[name="when"]:checked')?.value !== "later";
      const emergency = kindValue() === "emergency";
      form.querySelector('input[name="when"][value="now"]').nextElementSibling.textContent = emergency
        ? "立即（审批通过后）"
        : "立即";
    };

    async function checkPhones() {
      const text = phones.value;
      if (!text.trim()) throw new ApiError(0, "", "请填写或上传手机号码");
      if (checkedPhones?.text === text) return checkedPhones;
      const isCsv = /\.csv$/i.test(phonesFile.files?.[0]?.name || "");
      const data = await api("POST", "/broadcasts/upload", text, {
        type: isCsv ? "text/csv; charset=utf-8" : "text/plain; charset=utf-8",
      });
      checkedPhones = { text, valid: listOf(data?.valid), errors: listOf(data?.errors) };
      renderPhoneCheck();
      return checkedPhones;
    }

    function renderPhoneCheck() {
      const { valid, errors } = checkedPhones;
      fill(phonesResult,
        el("p", { id: "phones-summary", class: errors.length ? "warn" : "ok" }, `有效号码 ${valid.length} 个`, errors.length ? `，有问题的行 ${errors.length} 行（将不发送）` : ""),
        errors.length
          ? table(
              "有问题的号码",
              [
                ["行号", (e) => String(e.line)],
                ["内容", (e) => e.value],
                ["原因", (e) => e.reason],
              ],
              errors.slice(0, 200),
              { id: "bad-lines" },
            )
          : null,
        errors.length > 200 ? el("p", { class: "hint" }, `仅显示前 200 行，共 ${errors.length} 行`) : null,
      );
    }

    async function audienceValue() {
      const type = audValue();
      const need = (values, what) => {
        if (!values.length) throw new ApiError(0, "", `请至少选择一个${what}`);
        return values;
      };
      switch (type) {
        case "all":
          return { type: "all" };
        case "districts":
          return { type, ids: need(checkedValues(form, "district"), "区") };
        case "communities":
          return { type, ids: need(checkedValues(form, "community"), "社区") };
        case "topics":
          return { type, ids: need(checkedValues(form, "topic"), "订阅主题") };
        case "list": {
          const { valid } = await checkPhones();
          if (!valid.length) throw new ApiError(0, "", "没有有效的手机号码");
          return { type, phones: valid };
        }
        default:
          throw new ApiError(0, "", "请选择发送对象");
      }
    }

    async function previewRequest() {
      const text = body.textarea.value.trim();
      if (!text) throw new ApiError(0, "", "请填写内容");
      const request = { kind: kindValue(), body: body.textarea.value, audience: await audienceValue() };
      if (title.value.trim()) request.title = title.value.trim(); // counted in the SMS as it will go out
      return request;
    }

    function invalidate() {
      if (previewed === null) return;
      previewed = null;
      submitButton.disabled = true;
      submitHint.hidden = false;
      previewBox.classList.add("stale");
      const note = $("#preview-stale", previewBox);
      if (note) note.hidden = false;
    }

    function renderPreview(p, request) {
      const r = p.recipients || {};
      const x = p.excluded || {};
      const quiet = Boolean(p.quiet_hours);
      const emergency = request.kind === "emergency";
      const cost = Number(p.cost_yuan ?? 0);
      previewBox.classList.remove("stale");
      fill(previewBox,
        el("h2", {}, "预览"),
        el("p", { id: "preview-stale", class: "warn", hidden: true }, "内容或对象已修改，请重新预览。"),
        el(
          "dl",
          { class: "facts" },
          el("dt", {}, "收件人"),
          el("dd", { id: "pv-total", dataset: { value: String(num(r.total)) } }, `${num(r.total)} 人`),
          el("dt", {}, "短信"),
          el("dd", { id: "pv-sms", dataset: { value: String(num(r.sms)) } }, `${num(r.sms)} 人`),
          el("dt", {}, "微信"),
          el("dd", { id: "pv-wechat", dataset: { value: String(num(r.wechat)) } }, `${num(r.wechat)} 人`),
          el("dt", {}, "网页推送"),
          el("dd", { id: "pv-webpush", dataset: { value: String(num(r.webpush)) } }, `${num(r.webpush)} 人`),
          el("dt", {}, "不发送"),
          el("dd", { id: "pv-excluded" }, `已退订 ${num(x.opted_out)} 人 · 无联系方式 ${num(x.no_channel)} 人`),
          el("dt", {}, "每条短信"),
          el("dd", { id: "pv-segments", dataset: { value: String(num(p.segments)) } }, `${num(p.segments)} 段`),
          el("dt", {}, "预计费用"),
          el("dd", { id: "pv-cost", dataset: { value: String(cost) } }, `¥${cost.toFixed(2)}`),
        ),
        quiet
          ? el(
              "p",
              { id: "pv-quiet", class: "warn" },
              emergency
                ? "当前处于免打扰时段：预警不受限制，审批后将立即发送。"
                : "当前处于免打扰时段：通知将在免打扰时段结束后发送。",
            )
          : null,
        num(r.total) === 0 ? el("p", { class: "warn" }, "没有可发送的收件人。") : null,
        p.sms_text ? el("p", { class: "hint" }, "短信内容：") : null,
        p.sms_text ? el("pre", { class: "sms-text", id: "pv-text" }, p.sms_text) : null,
      );
      previewBox.hidden = false;
    }

    previewButton.addEventListener("click", async () => {
      clearError(error);
      previewButton.disabled = true;
      previewButton.textContent = "预览中…";
      try {
        const request = await previewRequest();
        const p = await api("POST", "/broadcasts/preview", request);
        if (p?.sms_text) {
          const known = smsUnits(request.body) + (request.title ? smsUnits(`【${request.title}】`) : 0);
          signatureUnits = Math.max(0, smsUnits(p.sms_text) - known);
        }
        body.update();
        renderPreview(p || {}, request);
        previewed = JSON.stringify(request);
        submitButton.disabled = false;
        submitHint.hidden = true;
      } catch (err) {
        showError(err, error);
      } finally {
        previewButton.disabled = false;
        previewButton.textContent = "预览";
      }
    });

    let submitting = false;
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (submitting) return; // the same key would make it one broadcast anyway
      clearError(error);
      const titleText = title.value.trim();
      if (!titleText) {
        showError("请填写标题", error);
        title.focus();
        return;
      }
      submitting = true;
      submitButton.disabled = true;
      submitButton.textContent = "提交中…";
      try {
        const request = await previewRequest();
        if (JSON.stringify(request) !== previewed) throw new ApiError(0, "", "内容或对象已修改，请重新预览后再提交");
        const { kind, body: text, audience } = request;
        const payload = { kind, title: titleText, body: text, audience, idempotency_key: idempotencyKey };
        if (form.querySelector('input[name="when"]:checked')?.value === "later") {
          if (!scheduledAt.value) throw new ApiError(0, "", "请选择定时发送的时间");
          if (Number.isNaN(new Date(scheduledAt.value).getTime())) throw new ApiError(0, "", "定时发送的时间无效");
          payload.scheduled_at = scheduledAt.value; // no offset: the server reads it as city time
        }
        const data = await api("POST", "/broadcasts", payload);
        const b = data?.broadcast || data;
        flash(
          b.status === "pending_approval" ? "已提交，等待审批员审批后发送" : "已提交，将按时发送",
        );
        go(`#/broadcasts/${b.id}`);
      } catch (err) {
        showError(err, error);
        submitButton.disabled = previewed === null;
      } finally {
        submitting = false;
        submitButton.textContent = "提交";
      }
    });

    form.addEventListener("change", (event) => {
      showPanels();
      if (event.target === phonesFile) return;
      if (["kind", "aud", "district", "community", "topic"].includes(event.target.name)) invalidate();
    });
    form.addEventListener("input", (event) => {
      if (event.target === body.textarea || event.target === phones || event.target === title) invalidate();
    });
    phonesFile.addEventListener("change", async () => {
      const file = phonesFile.files?.[0];
      if (!file) return;
      clearError(error);
      if (file.size > 2 * 1024 * 1024) {
        showError("文件过大（不超过 2 MB）", error);
        return;
      }
      phones.value = await file.text();
      invalidate();
      try {
        await checkPhones();
      } catch (err) {
        showError(err, error);
      }
    });
    checkButton.addEventListener("click", async () => {
      clearError(error);
      checkButton.disabled = true;
      try {
        await checkPhones();
      } catch (err) {
        showError(err, error);
      } finally {
        checkButton.disabled = false;
      }
    });

    showPanels();
    if (!mount(view, gen, el("div", { class: "view-head" }, el("h1", {}, "新建广播")), form)) return;
    title.focus();
  }

  // ---- 广播详情 --------------------------------------------------------------

  async function viewBroadcast(view, gen, id) {
    const me = state.me;
    await loadAreas().catch(() => null);
    const error = errorBox("detail-error");
    const head = el("div", { class: "view-head" });
    const meta = el("div", { class: "card" });
    const actions = el("div", { class: "actions", id: "broadcast-actions" });
    const progressHolder = el("section", { class: "card", "aria-labelledby": "progress-title" });
    const liveStatus = el("p", { id: "live-status", class: "live", role: "status", "aria-live": "polite" });
    let filter = "";
    let offset = 0;
    let lastKey = "";
    let last = null;
    let settledPolls = 0;

    const statusFilter = el(
      "select",
      { id: "recipient-filter" },
      el("option", { value: "" }, "全部"),
      [
        ["queued", "排队中"],
        ["sent", "已发送"],
        ["delivered", "已送达"],
        ["failed", "失败/未送达"],
        ["skipped", "已跳过"],
      ].map(([v, l]) => el("option", { value: v }, l)),
    );
    const recipientsHolder = el("div", { id: "recipients" });
    const prev = el("button", { type: "button", id: "page-prev" }, "上一页");
    const next = el("button", { type: "button", id: "page-next" }, "下一页");
    const pageInfo = el("span", { id: "page-info", class: "hint" });
    const recipientsSection = el(
      "section",
      { class: "card", "aria-labelledby": "recipients-title" },
      el("h2", { id: "recipients-title" }, "收件人"),
      el("div", { class: "filters" }, field("状态", statusFilter)),
      recipientsHolder,
      el("div", { class: "pager" }, prev, pageInfo, next),
    );

    let loads = 0; // a slower, older answer (another filter or page) must not overwrite a newer one
    async function loadRecipients() {
      const mine = ++loads;
      const q = new URLSearchParams({ offset: String(offset), limit: String(PAGE_SIZE) });
      if (filter) q.set("status", filter);
      const data = await api("GET", `/broadcasts/${id}/recipients?${q}`);
      if (gen !== state.gen || mine !== loads) return;
      const rows = listOf(data, "recipients");
      const total = data && !Array.isArray(data) && Number.isFinite(data.total) ? data.total : null;
      fill(recipientsHolder,
        table(
          "收件人",
          [
            ["号码", (r) => r.address || "—"],
            ["渠道", (r) => CHANNEL[r.channel] || r.channel],
            [
              "状态",
              (r) => [
                rstatusBadge(r.status),
                num(r.attempts) > 1 ? el("span", { class: "hint" }, ` 第${num(r.attempts)}次`) : null,
                r.error ? el("span", { class: "cell-note" }, r.error) : null,
              ],
            ],
            ["更新", (r) => fmtShort(r.updated_at)],
          ],
          rows,
          { empty: filter ? "没有此状态的收件人" : "暂无收件人", id: "recipients-table", compact: true },
        ),
      );
      const page = Math.floor(offset / PAGE_SIZE) + 1;
      const knownTotal = total ?? (filter ? num(last?.progress?.[filter]) : num(last?.progress?.total));
      const pages = Math.max(1, Math.ceil(knownTotal / PAGE_SIZE));
      pageInfo.textContent = knownTotal ? `第 ${page} / ${pages} 页` : `第 ${page} 页`;
      prev.disabled = offset === 0;
      next.disabled = rows.length < PAGE_SIZE || (knownTotal > 0 && offset + PAGE_SIZE >= knownTotal);
    }

    let names = {};  // staff id → display name, sent with the broadcast
    const staffName = (staffId) => {
      if (!staffId) return "—";
      if (staffId === me.id) return `${me.display_name || me.username}（本人）`;
      return names[staffId] || `工作人员 #${staffId}`;
    };

    function renderHead(b) {
      fill(head,
        el("h1", { id: "broadcast-title" }, b.title),
        el("div", { class: "badges" }, kindBadge(b.kind), statusBadge(b.status)),
      );
    }

    function renderMeta(b) {
      const facts = [
        ["编号", `#${b.id}`],
        ["发送对象", describeAudience(b.audience)],
        ["创建人", staffName(b.created_by)],
        ["创建时间", fmtTime(b.created_at)],
      ];
      if (b.approved_by || b.approved_at)
        facts.push(["审批人", staffName(b.approved_by)], ["审批时间", fmtTime(b.approved_at)]);
      if (deferred(b)) facts.push(["定时", fmtTime(b.scheduled_at)]);
      if (b.started_at) facts.push(["开始发送", fmtTime(b.started_at)]);
      if (b.finished_at) facts.push(["完成时间", fmtTime(b.finished_at)]);
      if (b.cancelled_at) facts.push(["取消时间", fmtTime(b.cancelled_at)]);
      fill(meta,
        el("dl", { class: "facts" }, facts.map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)])),
        el("h2", {}, "内容"),
        el("p", { class: "body-text", id: "broadcast-body" }, b.body),
      );
    }

    function renderActions(b, p) {
      const buttons = [];
      const mine = me.id !== undefined && b.created_by === me.id;
      if (CAN.approve(me) && b.status === "pending_approval") {
        if (mine) buttons.push(el("p", { class: "hint", id: "approve-hint" }, "本广播由您创建，需由另一位审批员审批。"));
        else buttons.push(el("button", { type: "button", id: "approve", class: "primary", onclick: () => act("approve") }, "审批"));
      }
      if (CAN.cancel(me) && ["draft", "pending_approval", "scheduled", "sending"].includes(b.status))
        buttons.push(el("button", { type: "button", id: "cancel", class: "danger", onclick: () => act("cancel") }, "取消"));
      if (CAN.retry(me) && num(p?.failed) > 0 && b.status !== "cancelled")
        buttons.push(
          el("button", { type: "button", id: "retry", onclick: () => act("retry-failed") }, `重试失败（${num(p.failed)}）`),
        );
      fill(actions, ...buttons);
    }

    async function act(action) {
      clearError(error);
      if (action === "cancel" && !window.confirm("确定取消这条广播吗？尚未发出的消息将不再发送。")) return;
      for (const b of actions.querySelectorAll("button")) b.disabled = true;
      try {
        const data = await api("POST", `/broadcasts/${id}/${action}`);
        if (action === "approve") flash("已审批，广播将开始发送");
        else if (action === "cancel") flash("广播已取消");
        else flash(`已重新发送 ${num(data?.count ?? data?.retried ?? data)} 条失败消息`);
        lastKey = "";
        settledPolls = 0;
        await refresh();
        if (gen === state.gen) startPolling();
      } catch (err) {
        showError(err, error);
        for (const b of actions.querySelectorAll("button")) b.disabled = false;
      }
    }

    function announce(b, p) {
      const text =
        {
          pending_approval: "等待审批",
          scheduled: deferred(b) ? `已排期，将于 ${fmtTime(b.scheduled_at)} 发送` : "即将开始发送",
          sending: "正在发送…",
          completed: num(p?.queued) ? "发送完成，等待回执" : "发送完成",
          cancelled: "已取消",
        }[b.status] || STATUS[b.status] || "";
      if (liveStatus.textContent !== text) liveStatus.textContent = text;
      liveStatus.dataset.status = b.status;
    }

    let refreshes = 0;
    async function refresh() {
      const mine = ++refreshes;
      const data = await api("GET", `/broadcasts/${id}`);
      if (gen !== state.gen || mine !== refreshes) return;
      const b = data?.broadcast || data;
      const p = data?.progress || {};
      names = data?.staff || names;
      last = { broadcast: b, progress: p };
      const key = JSON.stringify([b.status, p]);
      renderHead(b);
      renderMeta(b);
      renderActions(b, p);
      announce(b, p);
      const started = num(p.total) > 0 || ["sending", "completed"].includes(b.status);
      fill(
        progressHolder,
        el("h2", { id: "progress-title" }, "发送进度"),
        liveStatus,
        started ? progressBars(p) : el("p", { class: "hint" }, "尚未开始发送，收件人名单在开始发送时生成。"),
      );
      if (key !== lastKey) {
        lastKey = key;
        settledPolls = 0;
        await loadRecipients();
      } else {
        settledPolls += 1;
      }
    }

    // Every second while sending; slower while waiting for approval or delivery receipts.
    function nextDelay() {
      const b = last?.broadcast;
      const p = last?.progress || {};
      if (!b) return 2000;
      if (b.status === "sending" || b.status === "scheduled") return 1000;
      if (b.status === "pending_approval") return 2000;
      if (b.status === "completed" && (num(p.queued) || num(p.sent)) && settledPolls < 60) return 2000;
      return null;
    }

    let polling = false;
    function startPolling() {
      if (polling) return;
      polling = true;
      poll(gen, async () => {
        await refresh();
        const delay = nextDelay();
        if (!delay) polling = false;
        return delay;
      }, () => {
        const delay = nextDelay();
        if (!delay) polling = false;
        return delay;
      });
    }

    statusFilter.addEventListener("change", () => {
      filter = statusFilter.value;
      offset = 0;
      loadRecipients().catch((err) => showError(err, error));
    });
    prev.addEventListener("click", () => {
      offset = Math.max(0, offset - PAGE_SIZE);
      loadRecipients().catch((err) => showError(err, error));
    });
    next.addEventListener("click", () => {
      offset += PAGE_SIZE;
      loadRecipients().catch((err) => showError(err, error));
    });

    await refresh();
    if (
      !mount(
        view,
        gen,
        el("p", { class: "back" }, el("a", { href: "#/broadcasts" }, "← 返回广播列表")),
        head,
        actions,
        error,
        progressHolder,
        meta,
        recipientsSection,
      )
    )
      return;
    startPolling();
  }

  // ---- 学校通知 --------------------------------------------------------------

  async function loadClasses(schoolId) {
    const data = await api("GET", `/schools/${encodeURIComponent(schoolId)}/classes`);
    const classes = listOf(data, "classes");
    classes.sort((a, b) => num(a.grade) - num(b.grade) || String(a.name).localeCompare(String(b.name), "zh-CN"));
    return { classes, school: data && !Array.isArray(data) ? data.school : null };
  }

  async function viewNotices(view, gen) {
    const me = state.me;
    const holder = el("div", { id: "notice-list" });
    let active = false;
    const load = async () => {
      const items = listOf(await api("GET", "/notices"), "notices");
      if (gen !== state.gen) return;
      active = items.some((n) => ["sending", "scheduled"].includes(n.status));
      fill(holder,
        table(
          "学校通知",
          [
            ["编号", (n) => `#${n.id}`],
            ["标题", (n) => el("a", { href: `#/notices/${n.id}`, class: "title-link" }, n.title)],
            ["对象", (n) => describeAudience(n.audience)],
            ["紧急", (n) => (n.urgent ? badge("urgent", "紧急") : "否")],
            ["状态", (n) => statusBadge(n.status)],
            ["送达 / 确认", (n) => countsText({ ...n, kind: "school" })],
            ["创建时间", (n) => fmtTime(n.created_at)],
          ],
          items,
          { empty: "还没有学校通知", id: "notices-table" },
        ),
      );
    };
    await load();
    const header = el(
      "div",
      { class: "view-head" },
      el("h1", {}, "学校通知"),
      CAN.composeNotice(me) ? el("a", { class: "button primary", href: "#/notices/new", id: "new-notice" }, "新建通知") : null,
    );
    if (!mount(view, gen, header, holder)) return;
    poll(gen, async () => {
      await load();
      return active ? 3000 : 10000;
    }, () => 5000);
  }

  async function viewNoticeCompose(view, gen, schoolId = state.me.school_id, typed = {}) {
    const me = state.me;
    let picker = null;
    if (!me.school_id) {
      const schools = listOf(await api("GET", "/schools"), "schools");
      if (!schools.length) throw new ApiError(0, "", "还没有学校");
      schoolId = schoolId || schools[0].id;
      picker = el("select", { id: "school", name: "school" }, schools.map((sc) => el("option", { value: sc.id }, sc.name)));
      picker.value = schoolId;
      // another school has other classes: the page is rebuilt, with what was typed kept
      picker.addEventListener("change", () =>
        viewNoticeCompose(view, gen, picker.value, { title: title.value, body: body.textarea.value }),
      );
    }
    const { classes, school } = await loadClasses(schoolId);
    const idempotencyKey = newId();
    const error = errorBox("notice-error");
    const title = el("input", { id: "title", name: "title", maxlength: TITLE_MAX, required: true });
    const body = bodyField(() => (title.value.trim() ? smsUnits(`【${title.value.trim()}】`) : 0));
    title.addEventListener("input", () => body.update());
    title.value = typed.title || "";
    body.textarea.value = typed.body || "";
    body.update();
    const grades = [...new Set(classes.map((c) => num(c.grade)))].sort((a, b) => a - b);

    const audRadios = el(
      "div",
      { class: "choices", role: "radiogroup", "aria-label": "通知对象类型" },
      choice("radio", "aud", "school", "全校", true),
      choice("radio", "aud", "grade", "按年级"),
      choice("radio", "aud", "classes", "按班级"),
    );
    const gradePanel = el(
      "fieldset",
      { class: "group", id: "aud-grades", dataset: { aud: "grade" } },
      el("legend", {}, "选择年级"),
      el("div", { class: "choices" }, grades.map((g) => choice("checkbox", "grade", String(g), gradeLabel(g)))),
    );
    const classPanel = el(
      "fieldset",
      { class: "group", id: "aud-classes", dataset: { aud: "classes" } },
      el("legend", {}, "选择班级"),
      grades.map((g) =>
        el(
          "div",
          { class: "grade-group" },
          el("p", { class: "grade-name" }, gradeLabel(g)),
          el(
            "div",
            { class: "choices" },
            classes.filter((c) => num(c.grade) === g).map((c) => choice("checkbox", "class", c.id, c.name)),
          ),
        ),
      ),
    );
    const urgent = el("input", { type: "checkbox", id: "urgent", name: "urgent" });
    const submit = el("button", { type: "submit", id: "notice-submit", class: "primary" }, "发送通知");
    const form = el(
      "form",
      { id: "notice-compose", class: "card", novalidate: true },
      picker ? field("学校", picker) : el("p", { class: "hint" }, `学校：${school?.name || me.school_name || me.school_id}`),
      field("标题", title, `不超过 ${TITLE_MAX} 字`),
      body.box,
      el("fieldset", { class: "group" }, el("legend", {}, "通知对象"), audRadios, gradePanel, classPanel),
      el(
        "div",
        { class: "field" },
        el("label", { class: "choice", for: "urgent" }, urgent, el("span", {}, "紧急通知（免打扰时段也立即发送）")),
      ),
      error,
      el("div", { class: "actions" }, submit),
    );
    const audValue = () => form.querySelector('input[name="aud"]:checked')?.value || "school";
    const showPanels = () => {
      gradePanel.hidden = audValue() !== "grade";
      classPanel.hidden = audValue() !== "classes";
    };
    form.addEventListener("change", showPanels);
    let submitting = false;
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (submitting) return;
      clearError(error);
      try {
        const titleText = title.value.trim();
        if (!titleText) throw new ApiError(0, "", "请填写标题");
        if (!body.textarea.value.trim()) throw new ApiError(0, "", "请填写内容");
        let audience = { type: "school" };
        if (audValue() === "grade") {
          const picked = checkedValues(form, "grade").map(Number);
          if (!picked.length) throw new ApiError(0, "", "请至少选择一个年级");
          audience = { type: "grade", grades: picked };
        } else if (audValue() === "classes") {
          const picked = checkedValues(form, "class");
          if (!picked.length) throw new ApiError(0, "", "请至少选择一个班级");
          audience = { type: "classes", ids: picked };
        }
        submitting = true;
        submit.disabled = true;
        submit.textContent = "发送中…";
        const data = await api("POST", "/notices", {
          title: titleText,
          body: body.textarea.value,
          audience,
          urgent: urgent.checked,
          idempotency_key: idempotencyKey,
          ...(me.school_id ? {} : { school_id: schoolId }),
        });
        const n = data?.notice || data?.broadcast || data;
        flash("通知已提交发送");
        go(`#/notices/${n.id}`);
      } catch (err) {
        showError(err, error);
      } finally {
        submitting = false;
        submit.disabled = false;
        submit.textContent = "发送通知";
      }
    });
    showPanels();
    if (!mount(view, gen, el("div", { class: "view-head" }, el("h1", {}, "新建学校通知")), form)) return;
    title.focus();
  }

  async function viewNotice(view, gen, id) {
    const me = state.me;
    const error = errorBox("notice-detail-error");
    const head = el("div", { class: "view-head" });
    const actions = el("div", { class: "actions", id: "notice-actions" });
    const progressHolder = el("section", { class: "card", "aria-labelledby": "progress-title" });
    const meta = el("div", { class: "card" });
    const acked = el("section", { class: "card", id: "acked", "aria-labelledby": "acked-title" });
    const unacked = el("section", { class: "card", id: "unacked", "aria-labelledby": "unacked-title" });
    let classNames = null;
    let namesOf = null; // the school whose class names are loaded (an admin reads any school's notices)
    async function loadClassNames(schoolId) {
      if (!schoolId || namesOf === schoolId) return;
      namesOf = schoolId;
      try {
        const { classes } = await loadClasses(schoolId);
        classNames = new Map(classes.map((c) => [c.id, c.name]));
      } catch {
        classNames = null;
      }
    }
    let lastKey = "";
    let status = "";

    const studentOf = (r) => {
      const s = r.student;
      if (s && typeof s === "object") return s.name ? `${s.name}${s.id ? `（${s.id}）` : ""}` : s.id || "—";
      return s || r.student_name || r.student_id || "—";
    };

    function render(data) {
      const n = data?.notice || data?.broadcast || {};
      const p = data?.progress || {};
      const recipients = listOf(data?.recipients);
      status = n.status;
      fill(head,
        el("h1", { id: "notice-title" }, n.title),
        el("div", { class: "badges" }, n.urgent ? badge("urgent", "紧急") : null, statusBadge(n.status)),
      );
      const yes = recipients.filter((r) => r.acked_at);
      const no = recipients.filter((r) => !r.acked_at);
      fill(progressHolder,
        el("h2", { id: "progress-title" }, "发送与确认"),
        el("p", { id: "ack-summary", class: "live", dataset: { acked: String(yes.length), unacked: String(no.length) } }, `已确认 ${yes.length} 人，未确认 ${no.length} 人`),
        progressBars(p, { acked: true }),
      );
      fill(meta,
        el(
          "dl",
          { class: "facts" },
          el("dt", {}, "通知对象"),
          el("dd", {}, describeAudience(n.audience, { classes: classNames })),
          el("dt", {}, "创建时间"),
          el("dd", {}, fmtTime(n.created_at)),
          n.finished_at ? [el("dt", {}, "完成时间"), el("dd", {}, fmtTime(n.finished_at))] : null,
        ),
        el("h2", {}, "内容"),
        el("p", { class: "body-text" }, n.body),
      );
      fill(acked,
        el("h2", { id: "acked-title" }, `已确认（${yes.length}）`),
        table(
          "已确认的家长",
          [
            ["学生", studentOf],
            ["家长", (r) => r.address || "—"],
            ["渠道", (r) => CHANNEL[r.channel] || r.channel],
            ["确认时间", (r) => fmtShort(r.acked_at)],
          ],
          yes,
          { empty: "还没有家长确认", id: "acked-table", compact: true },
        ),
      );
      fill(unacked,
        el("h2", { id: "unacked-title" }, `未确认（${no.length}）`),
        table(
          "未确认的家长",
          [
            ["学生", studentOf],
            ["家长", (r) => r.address || "—"],
            ["渠道", (r) => CHANNEL[r.channel] || r.channel],
            ["发送状态", (r) => rstatusBadge(r.status)],
            ["上次提醒", (r) => (r.reminded_at ? fmtShort(r.reminded_at) : "未提醒")],
          ],
          no,
          { empty: recipients.length ? "全部家长都已确认" : "尚未开始发送", id: "unacked-table", compact: true },
        ),
      );
      const buttons = [];
      if (CAN.remind(me) && n.status !== "cancelled") {
        buttons.push(
          el(
            "button",
            { type: "button", id: "remind", class: "primary", disabled: no.length === 0, onclick: remind },
            `提醒未确认（${no.length}）`,
          ),
        );
      }
      fill(actions, ...buttons);
    }

    async function remind() {
      clearError(error);
      const button = $("#remind", actions);
      if (button) button.disabled = true;
      try {
        const data = await api("POST", `/notices/${id}/remind`);
        const count = num(data?.count ?? data?.reminded ?? data);
        flash(`已向 ${count} 位未确认的家长再次发送提醒`);
        lastKey = "";
        await refresh();
      } catch (err) {
        showError(err, error);
        if (button) button.disabled = false;
      }
    }

    // The first page tells whether anything changed; only then are the other pages fetched.
    const NOTICE_PAGE = 500;
    let loads = 0;
    async function refresh() {
      const mine = ++loads;
      const data = await api("GET", `/notices/${id}?limit=${NOTICE_PAGE}`);
      if (gen !== state.gen || mine !== loads) return;
      const key = JSON.stringify([data?.notice, data?.progress, data?.recipients]);
      if (key === lastKey) return;
      const recipients = [...listOf(data?.recipients)];
      const total = num(data?.progress?.total);
      for (let offset = NOTICE_PAGE; offset < total && offset < 20 * NOTICE_PAGE; offset += NOTICE_PAGE) {
        const more = await api("GET", `/notices/${id}?limit=${NOTICE_PAGE}&offset=${offset}`);
        if (gen !== state.gen || mine !== loads) return;
        const rows = listOf(more?.recipients);
        recipients.push(...rows);
        if (rows.length < NOTICE_PAGE) break;
      }
      lastKey = key;
      await loadClassNames(data?.notice?.school_id || me.school_id);
      if (gen !== state.gen || mine !== loads) return;
      render({ ...data, recipients });
    }

    await refresh();
    if (
      !mount(
        view,
        gen,
        el("p", { class: "back" }, el("a", { href: "#/notices" }, "← 返回学校通知")),
        head,
        actions,
        error,
        progressHolder,
        unacked,
        acked,
        meta,
      )
    )
      return;
    // Acknowledgements keep arriving after the sending is over.
    poll(gen, async () => {
      await refresh();
      return status === "sending" || status === "scheduled" ? 1000 : 3000;
    }, () => 1000);
  }

  // ---- 用户管理 --------------------------------------------------------------

  async function viewUsers(view, gen) {
    const error = errorBox("users-error");
    const holder = el("div", { id: "users" });
    const load = async () => {
      const users = listOf(await api("GET", "/users"), "users");
      if (gen !== state.gen) return;
      fill(holder,
        table(
          "工作人员",
          [
            ["用户名", (u) => u.username],
            ["姓名", (u) => u.display_name],
            ["角色", (u) => ROLE[u.role] || u.role],
            ["学校", (u) => u.school_name || u.school_id || "—"],
            ["状态", (u) => (u.active === false ? badge("off", "已停用") : badge("on", "正常"))],
            [
              "操作",
              (u) =>
                u.active === false || u.id === state.me.id
                  ? ""
                  : el(
                      "button",
                      {
                        type: "button",
                        class: "danger small",
                        "aria-label": `停用 ${u.username}`,
                        onclick: () => disable(u),
                      },
                      "停用",
                    ),
            ],
          ],
          users,
          { id: "users-table" },
        ),
      );
    };
    async function disable(u) {
      clearError(error);
      if (!window.confirm(`确定停用 ${u.display_name || u.username}（${u.username}）吗？`)) return;
      try {
        await api("POST", `/users/${u.id}/disable`);
        flash(`已停用 ${u.username}`);
        await load();
      } catch (err) {
        showError(err, error);
      }
    }

    const username = el("input", { id: "new-username", autocomplete: "off", required: true, maxlength: 64 });
    const displayName = el("input", { id: "new-display-name", required: true, maxlength: 64 });
    const password = el("input", { id: "new-password", type: "password", autocomplete: "new-password", required: true });
    const role = el(
      "select",
      { id: "new-role" },
      Object.entries(ROLE).map(([v, l]) => el("option", { value: v, selected: v === "viewer" }, l)),
    );
    const school = el("input", { id: "new-school", maxlength: 32 });
    const schoolField = field("学校编号", school, "角色为学校时必填");
    const createButton = el("button", { type: "submit", class: "primary", id: "create-user" }, "添加用户");
    const form = el(
      "form",
      { class: "card", id: "user-form", novalidate: true, "aria-labelledby": "user-form-title" },
      el("h2", { id: "user-form-title" }, "添加用户"),
      el(
        "div",
        { class: "grid" },
        field("用户名", username),
        field("姓名", displayName),
        field("初始密码", password, "至少 10 位，不含用户名，不用常见密码"),
        field("角色", role),
        schoolField,
      ),
      error,
      el("div", { class: "actions" }, createButton),
    );
    const showSchool = () => {
      schoolField.hidden = role.value !== "school";
    };
    role.addEventListener("change", showSchool);
    showSchool();
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      clearError(error);
      if (!username.value.trim() || !displayName.value.trim() || !password.value) {
        showError("请填写用户名、姓名和初始密码", error);
        return;
      }
      createButton.disabled = true;
      try {
        const payload = {
          username: username.value.trim(),
          display_name: displayName.value.trim(),
          password: password.value,
          role: role.value,
        };
        if (role.value === "school") payload.school_id = school.value.trim();
        await api("POST", "/users", payload);
        flash(`已添加用户 ${payload.username}`);
        form.reset();
        showSchool();
        await load();
      } catch (err) {
        showError(err, error);
      } finally {
        createButton.disabled = false;
      }
    });

    await load();
    mount(view, gen, el("div", { class: "view-head" }, el("h1", {}, "用户管理")), holder, form);
  }

  // ---- 审计日志 --------------------------------------------------------------

  async function viewAudit(view, gen) {
    const limit = el(
      "select",
      { id: "audit-limit" },
      [50, 100, 200, 500].map((n) => el("option", { value: String(n), selected: n === 100 }, `最近 ${n} 条`)),
    );
    const holder = el("div", { id: "audit" });
    const detailText = (d) => {
      if (!d || (typeof d === "object" && !Object.keys(d).length)) return "";
      const text = typeof d === "string" ? d : JSON.stringify(d);
      return text.length > 160 ? `${text.slice(0, 160)}…` : text;
    };
    const load = async () => {
      const entries = listOf(await api("GET", `/audit?limit=${limit.value}`), "entries", "audit", "logs");
      if (gen !== state.gen) return;
      fill(holder,
        table(
          "审计日志",
          [
            ["时间", (e) => fmtTime(e.at)],
            ["操作人", (e) => e.staff_name || e.username || e.staff?.username || (e.staff_id ? `#${e.staff_id}` : "—")],
            ["操作", (e) => AUDIT_ACTION[e.action] || e.action],
            ["对象", (e) => e.target || ""],
            ["IP", (e) => e.ip || ""],
            ["详情", (e) => el("code", {}, detailText(e.detail))],
          ],
          entries,
          { empty: "暂无记录", id: "audit-table" },
        ),
      );
    };
    limit.addEventListener("change", () => load().catch((err) => showError(err)));
    await load();
    mount(
      view,
      gen,
      el("div", { class: "view-head" }, el("h1", {}, "审计日志")),
      el("div", { class: "filters" }, field("显示", limit)),
      holder,
    );
  }

  // ---- 数据看板 --------------------------------------------------------------

  async function viewDashboard(view, gen) {
    const start = el("input", { id: "dash-start", type: "date", required: true });
    const end = el("input", { id: "dash-end", type: "date", required: true });
    const show = el("button", { type: "submit", class: "primary", id: "dash-show" }, "查看");
    const error = errorBox("dash-error");
    const holder = el("div", { id: "dashboard" });
    const pct = (r) => (r === null || r === undefined ? "—" : `${(r * 100).toFixed(1)}%`);

    function figure(name, title, data, tableNode) {
      const range = `start=${data.start}&end=${data.end}`;
      return el(
        "section",
        { class: "card chart", id: `dash-${name}` },
        el("h2", {}, title),
        el(
          "figure",
          {},
          el("img", {
            src: `${API}/dashboard/${name}.svg?${range}`,
            alt: `${title}（${data.start} 至 ${data.end}），数字见下表`,
            width: 480,
            loading: "lazy",
          }),
        ),
        tableNode,
        el(
          "a",
          { href: `${API}/dashboard/${name}.csv?${range}`, download: "", class: "button", id: `dash-${name}-csv` },
          "下载 CSV",
        ),
      );
    }

    const load = async (query) => {
      const data = await api("GET", `/dashboard${query}`);
      if (gen !== state.gen) return;
      start.value = data.start;
      end.value = data.end;
      const channels = Object.entries(data.channels || {});
      const dayColumns = [
        ["日期", (d) => d.day],
        ...channels.map(([id, name]) => [name, (d) => String(d.counts[id] ?? 0)]),
        ["合计", (d) => String(d.total)],
      ];
      fill(
        holder,
        figure(
          "messages",
          "每日市民消息（按渠道）",
          data,
          table("每日市民消息", dayColumns, listOf(data, "days"), { id: "dash-messages-table", compact: true }),
        ),
        figure(
          "delivery",
          "各渠道送达率",
          data,
          table(
            "各渠道送达率",
            [
              ["渠道", (d) => d.name],
              ["已发出", (d) => String(d.sent)],
              ["已送达", (d) => String(d.delivered)],
              ["失败", (d) => String(d.failed)],
              ["送达率", (d) => pct(d.rate)],
            ],
            listOf(data, "delivery"),
            { id: "dash-delivery-table", empty: "该时段没有发出的消息", compact: true },
          ),
        ),
      );
    };
    const form = el(
      "form",
      { class: "filters", id: "dash-range", novalidate: true },
      field("开始日期", start),
      field("结束日期", end),
      el("div", { class: "actions" }, show),
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      clearError(error);
      try {
        await load(`?start=${encodeURIComponent(start.value)}&end=${encodeURIComponent(end.value)}`);
      } catch (err) {
        showError(err, error);
      }
    });
    await load("");
    mount(
      view,
      gen,
      el("div", { class: "view-head" }, el("h1", {}, "数据看板")),
      el("p", { class: "hint" }, "日期按本市时间（北京时间）计；送达率 = 回报已送达 ÷ 已发出。"),
      form,
      error,
      holder,
    );
  }

  // ---- 未解答问题 ------------------------------------------------------------

  async function viewUnanswered(view, gen) {
    const admin = CAN.admin(state.me);
    const status = el(
      "select",
      { id: "unanswered-status" },
      el("option", { value: "open", selected: true }, "待归类"),
      el("option", { value: "assigned" }, "已归类"),
    );
    const error = errorBox("unanswered-error");
    const summary = el("p", { id: "unanswered-summary", class: "hint", role: "status" });
    const holder = el("div", { id: "unanswered" });
    const counts = (map, labels) =>
      Object.entries(map || {})
        .map(([k, n]) => `${labels[k] || k} ${n}`)
        .join("，");

    function targetSelect(targets, index) {
      const byFamily = new Map();
      for (const t of targets) {
        if (t.id === "out_of_scope") continue;
        if (!byFamily.has(t.family)) byFamily.set(t.family, []);
        byFamily.get(t.family).push(t);
      }
      return el(
        "select",
        { class: "assign-target", "aria-label": `第 ${index + 1} 组归入哪项服务` },
        el("option", { value: "" }, "选择服务…"),
        el("option", { value: "out_of_scope" }, "不属于服务范围"),
        [...byFamily].map(([family, items]) =>
          el("optgroup", { label: family || "其他" }, items.map((t) => el("option", { value: t.id }, t.name))),
        ),
      );
    }

    async function assign(group, select, button) {
      clearError(error);
      if (!select.value) {
        showError("请先选择这一组问题归入哪项服务，或选“不属于服务范围”", error);
        select.focus();
        return;
      }
      button.disabled = true;
      try {
        await api("POST", "/unanswered/assign", { ids: group.ids, target: select.value });
        const name = select.selectedOptions[0]?.textContent || select.value;
        flash(`已把“${group.text}”等 ${group.count} 个问题归入：${name}`);
        await load();
      } catch (err) {
        showError(err, error);
        button.disabled = false;
      }
    }

    const load = async () => {
      const data = await api("GET", `/unanswered?status=${status.value}`);
      if (gen !== state.gen) return;
      const groups = listOf(data, "groups");
      const targets = listOf(data, "targets");
      const names = Object.fromEntries(targets.map((t) => [t.id, t.name]));
      summary.textContent = groups.length
        ? `${data.questions} 个问题，按相似程度分成 ${groups.length} 组（数字已打码）。`
        : "";
      const columns = [
        [
          "市民的问题",
          (g) =>
            el(
              "div",
              { class: "question" },
              el("strong", {}, g.text),
              g.wordings.length > 1
                ? el("ul", { class: "wordings" }, g.wordings.slice(1).map((w) => el("li", {}, `${w.text}（${w.count}）`)))
                : null,
            ),
        ],
        ["次数", (g) => String(g.count)],
        ["助手的回答", (g) => counts(g.outcomes, OUTCOME)],
        ["渠道", (g) => counts(g.channels, CHAT_CHANNEL)],
        ["最近", (g) => fmtShort(g.last_at)],
      ];
      if (status.value === "assigned") {
        columns.push(["已归入", (g) => counts(g.assigned_to, names)]);
      } else if (admin) {
        columns.push([
          "归入",
          (g) => {
            const index = groups.indexOf(g);
            const select = targetSelect(targets, index);
            const button = el("button", { type: "button", class: "small primary" }, "归入");
            button.addEventListener("click", () => assign(g, select, button));
            return el("div", { class: "assign" }, select, button);
          },
        ]);
      }
      fill(
        holder,
        table("助手没能解答的问题", columns, groups, {
          id: "unanswered-table",
          empty: status.value === "open" ? "暂无待归类的问题" : "还没有归类的问题",
        }),
      );
    };
    status.addEventListener("change", () => load().catch((err) => showError(err, error)));
    await load();
    const head = el("div", { class: "view-head" }, el("h1", {}, "未解答问题"));
    if (admin) {
      head.append(
        el(
          "a",
          { href: `${API}/unanswered/export`, download: "", class: "button", id: "unanswered-export" },
          "下载候选训练样例",
        ),
      );
    }
    mount(
      view,
      gen,
      head,
      el(
        "p",
        { class: "hint" },
        "市民问了、助手婉拒或没听懂的问题。把一组归入某项服务（或标为不属于服务范围），下载的样例可用于下一次训练。",
      ),
      el("div", { class: "filters" }, field("显示", status)),
      summary,
      error,
      holder,
    );
  }

  // ---- 人工服务: the agents' inbox -------------------------------------------------------------

  const HSTATUS = { waiting: "排队中", claimed: "接待中", closed: "已结束" };
  const HREASON = { asked: "居民要求", misunderstood: "机器人未听懂", emergency: "紧急情况" };
  const CATEGORIES = ["咨询", "求助", "投诉", "建议", "表扬", "其他"];
  const CANNED = [
    "您好，我是人工客服，请问有什么可以帮您？",
    "请稍等，我帮您查一下。",
    "请告诉我您所在的小区和楼号。",
    "您反映的问题已记录，我们会转交相关部门处理，处理结果会通知您。",
    "还有其他问题吗？没有的话我先结束本次服务。",
  ];
  const SPEAKER = { in: "居民", out: "机器人", agent: "客服", note: "内部备注", claim: "接单", transfer: "转交", close: "结束" };

  function waited(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    return s < 60 ? `${s}秒` : s < 3600 ? `${Math.floor(s / 60)}分${s % 60}秒` : `${Math.floor(s / 3600)}小时${Math.floor((s % 3600) / 60)}分`;
  }

  // The inbox's live feed (server-sent events); closed when the view that opened it goes away.
  function inboxFeed(gen, onEvent) {
    const source = new EventSource(`${API}/handoffs/stream`, { withCredentials: true });
    for (const kind of ["waiting", "message", "claimed", "closed"]) {
      source.addEventListener(kind, (e) => {
        if (gen !== state.gen) return source.close();
        let data = null;
        try {
          data = JSON.parse(e.data);
        } catch {
          return;
        }
        onEvent(kind, data);
      });
    }
    const stop = () => {
      if (gen !== state.gen) source.close();
      else setTimeout(stop, 1000);
    };
    setTimeout(stop, 1000);
    return source;
  }

  async function viewHandoffs(view, gen) {
    const statsLine = el("p", { id: "inbox-stats", class: "hint" });
    const waitingBox = el("div", { id: "handoffs-waiting" });
    const mineBox = el("div", { id: "handoffs-mine" });
    const claim = async (h) => {
      clearError();
      try {
        await api("POST", `/handoffs/${h.id}/claim`);
        go(`#/handoffs/${h.id}`);
      } catch (err) {
        showError(err);
        await load();
      }
    };
    const clock = (h) => el("span", { class: `sla sla-${h.sla}`, dataset: { sla: h.sla } }, waited(h.waiting_s));
    const load = async () => {
      const [stats, waiting, mine] = await Promise.all([
        api("GET", "/handoffs/stats"),
        api("GET", "/handoffs?view=waiting"),
        api("GET", "/handoffs?view=mine"),
      ]);
      if (gen !== state.gen) return;
      statsLine.textContent =
        `排队 ${stats.waiting} 人 · 接待中 ${stats.claimed} · 最长等待 ${waited(stats.longest_wait_s)} · 在线客服 ${stats.agents_online} 人`;
      const teams = Object.fromEntries(stats.teams.map((t) => [t.id, t.name]));
      fill(waitingBox,
        el("h2", {}, "排队中"),
        table(
          "排队中的居民",
          [
            ["工单号", (h) => h.number],
            ["等待", clock],
            ["渠道", (h) => h.channel_label],
            ["联系方式", (h) => h.contact],
            ["组", (h) => teams[h.team] || h.team],
            ["原因", (h) => HREASON[h.reason] || h.reason],
            ["", (h) => el("button", { type: "button", class: "button primary", onclick: () => claim(h), "data-claim": h.number }, "接单")],
          ],
          waiting.handoffs,
          { empty: "没有排队的居民", id: "waiting-table" },
        ),
      );
      fill(mineBox,
        el("h2", {}, "我接待中"),
        table(
          "我接待中的居民",
          [
            ["工单号", (h) => el("a", { href: `#/handoffs/${h.id}`, class: "title-link" }, h.number)],
            ["渠道", (h) => h.channel_label],
            ["联系方式", (h) => h.contact],
            ["居民最后发言", (h) => fmtTime(h.last_citizen_at)],
          ],
          mine.handoffs,
          { empty: "暂无", id: "mine-table" },
        ),
      );
    };
    await load();
    const orders = await workOrders(gen);
    if (!mount(view, gen, el("div", { class: "view-head" }, el("h1", {}, "人工服务")), statsLine, waitingBox, mineBox, orders)) return;
    inboxFeed(gen, () => load().catch((err) => showError(err)));
    poll(gen, async () => {
      await load();
      return 10000;
    }, () => 10000);
  }

  // 12345 work orders: complaints and suggestions filed through the bot, moved on here; the citizen is
  // told every change on the channel they filed from.
  const WO_NEXT = ["转办", "办理中", "已办结"];

  async function workOrders(gen) {
    const box = el("section", { id: "workorders", "aria-labelledby": "workorders-title" });
    const status = el("select", { id: "wo-status" }, WO_NEXT.map((v) => el("option", { value: v }, v)));
    const team = el("input", { id: "wo-team", maxlength: 100 });
    const note = el("textarea", { id: "wo-note", rows: 2, maxlength: BODY_MAX });
    const picked = el("p", { id: "wo-picked", class: "hint" });
    let chosen = null;
    const form = el("form", { id: "wo-form", class: "stack", hidden: true }, picked, field("新状态", status),
      field("转办单位（转办时必填）", team), field("告诉居民的话（可选）", note),
      el("button", { type: "submit", class: "button primary" }, "更新并通知居民"));
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      clearError();
      const body = { status: status.value };
      if (team.value.trim()) body.team = team.value;
      if (note.value.trim()) body.note = note.value;
      try {
        await api("POST", `/workorders/${chosen.id}/status`, body);
        team.value = "";
        note.value = "";
        form.hidden = true;
        await load();
      } catch (err) {
        showError(err);
      }
    });
    const holder = el("div");
    const load = async () => {
      const data = await api("GET", "/workorders");
      if (gen !== state.gen) return;
      fill(holder, table(
        "12345工单",
        [
          ["受理编号", (o) => o.ref],
          ["事项", (o) => o.service],
          ["内容", (o) => o.text],
          ["状态", (o) => el("span", { class: "status", dataset: { status: o.status } }, o.status)],
          ["提交时间", (o) => fmtTime(o.submitted_at)],
          ["", (o) => el("button", { type: "button", class: "button", "data-order": o.ref, onclick: () => {
            chosen = o;
            picked.textContent = `${o.ref} ${o.service}：现在是“${o.status}”`;
            form.hidden = false;
            status.focus();
          } }, "更新状态")],
        ],
        data.workorders,
        { empty: "没有未办结的工单", id: "workorders-table" },
      ));
    };
    await load();
    return fill(box, el("h2", { id: "workorders-title" }, "12345工单"), holder, form);
  }

  async function viewHandoff(view, gen, id) {
    const head = el("div", { id: "handoff-head" });
    const transcript = el("ol", { id: "transcript", class: "transcript", "aria-live": "polite" });
    const actions = el("div", { id: "handoff-actions" });
    const stats = await api("GET", "/handoffs/stats");
    let current = null;

    const post = async (path, body, done) => {
      clearError();
      try {
        await api("POST", `/handoffs/${id}/${path}`, body);
        done?.();
        await load();
      } catch (err) {
        showError(err);
      }
    };

    function renderHead(h) {
      const contact = el("span", { id: "contact" }, h.contact);
      const reveal = el("button", { type: "button", class: "link-button", id: "reveal" }, "显示完整联系方式");
      reveal.addEventListener("click", async () => {
        try {
          contact.textContent = (await api("POST", `/handoffs/${id}/reveal`)).contact;
          reveal.hidden = true;
        } catch (err) {
          showError(err);
        }
      });
      fill(head,
        el("p", { class: "back" }, el("a", { href: "#/handoffs" }, "← 返回人工服务")),
        el("h1", {}, `工单 ${h.number}`),
        el("p", {}, `${HSTATUS[h.status] || h.status} · ${h.channel_label} · `, contact, " ", reveal,
          h.agent_name ? ` · 接待：${h.agent_name}` : ""),
      );
    }

    function renderTranscript(entries) {
      fill(transcript, entries.map((e) => el(
        "li",
        { class: `said said-${e.kind}`, dataset: { kind: e.kind } },
        el("span", { class: "speaker" }, e.kind === "agent" && e.staff_name ? `客服 ${e.staff_name}` : SPEAKER[e.kind] || e.kind),
        el("span", { class: "when" }, fmtShort(e.at)),
        el("span", { class: "words" }, e.text || (e.staff_name ? e.staff_name : "")),
      )));
    }

    function renderActions(h) {
      if (h.status === "waiting") {
        fill(actions, el("button", { type: "button", class: "button primary", id: "claim", onclick: () => post("claim") }, "接单"));
        return;
      }
      if (h.status === "closed") {
        fill(actions, el("p", {}, `已结束：${h.category || ""} ${h.resolution || ""}${h.rating ? ` · 居民评分 ${h.rating}` : ""}`));
        return;
      }
      const reply = el("textarea", { id: "reply-text", rows: 3, maxlength: BODY_MAX });
      const canned = el("select", { id: "canned", "aria-label": "常用回复" }, el("option", { value: "" }, "选择常用回复…"), CANNED.map((t) => el("option", { value: t }, t)));
      canned.addEventListener("change", () => {
        if (canned.value) reply.value = canned.value;
        canned.value = "";
        reply.focus();
      });
      const replyForm = el("form", { id: "reply-form", class: "stack" }, field("回复居民（经居民所用渠道发送）", reply), canned,
        el("button", { type: "submit", class: "button primary" }, "发送"));
      replyForm.addEventListener("submit", (e) => {
        e.preventDefault();
        if (reply.value.trim()) post("reply", { text: reply.value }, () => { reply.value = ""; });
      });
      const note = el("textarea", { id: "note-text", rows: 2, maxlength: BODY_MAX });
      const noteForm = el("form", { id: "note-form", class: "stack" }, field("内部备注（居民看不到）", note), el("button", { type: "submit", class: "button" }, "添加备注"));
      noteForm.addEventListener("submit", (e) => {
        e.preventDefault();
        if (note.value.trim()) post("note", { text: note.value }, () => { note.value = ""; });
      });
      const target = el("select", { id: "transfer-to" },
        el("optgroup", { label: "转给组" }, stats.teams.map((t) => el("option", { value: `team:${t.id}` }, t.name))),
        el("optgroup", { label: "转给同事" }, stats.agents.filter((a) => a.id !== state.me.id)
          .map((a) => el("option", { value: `agent:${a.id}` }, `${a.display_name}${a.online ? "（在线）" : ""}`))));
      const transferForm = el("form", { id: "transfer-form", class: "stack" }, field("转交", target), el("button", { type: "submit", class: "button" }, "转交"));
      transferForm.addEventListener("submit", (e) => {
        e.preventDefault();
        const [kind, value] = target.value.split(":");
        post("transfer", kind === "team" ? { team: value } : { agent_id: Number(value) }, () => go("#/handoffs"));
      });
      const category = el("select", { id: "close-category" }, CATEGORIES.map((c) => el("option", { value: c }, c)));
      const resolution = el("textarea", { id: "close-resolution", rows: 2, maxlength: BODY_MAX, required: true });
      const closeForm = el("form", { id: "close-form", class: "stack" }, field("分类", category), field("处理结果", resolution),
        el("button", { type: "submit", class: "button danger" }, "结束服务"));
      closeForm.addEventListener("submit", (e) => {
        e.preventDefault();
        if (resolution.value.trim()) post("close", { category: category.value, resolution: resolution.value });
      });
      fill(actions, replyForm, noteForm, transferForm, closeForm);
    }

    const load = async () => {
      const data = await api("GET", `/handoffs/${id}`);
      if (gen !== state.gen) return;
      const changed = !current || current.status !== data.handoff.status || current.agent_id !== data.handoff.agent_id;
      current = data.handoff;
      renderHead(current);
      renderTranscript(data.transcript);
      if (changed) renderActions(current);
    };
    await load();
    if (!mount(view, gen, head, transcript, actions)) return;
    inboxFeed(gen, (kind, data) => {
      if (data.handoff === Number(id)) load().catch((err) => showError(err));
    });
  }

  // ---- start ---------------------------------------------------------------

  async function logout() {
    try {
      await api("POST", "/logout", undefined, { noRedirect: true });
    } catch {
      // the session is gone either way
    }
    state.me = null;
    state.csrf = null;
    state.areas = null;
    renderChrome();
    go("#/login");
  }

  async function start() {
    $("#logout").addEventListener("click", logout);
    window.addEventListener("hashchange", route);
    await loadMe();
    renderChrome();
    await route();
    document.body.dataset.ready = "1";
  }

  start();
})();
