// 接收城市通知 — the web chat page's web push control. Plain ES2020, no build step.
// On click: ask for notification permission, register the service worker (/sw.js, scope "/"),
// subscribe with the gateway's VAPID public key, and hand the subscription to the gateway together
// with this tab's web chat session (kept by chat.js), which says whose it is.
"use strict";

(() => {
  const SESSION_KEY = "citygw.session"; // chat.js keeps the web chat session here
  const button = document.querySelector("#notify");
  const statusEl = document.querySelector("#notify-status");
  if (!button || !statusEl) return;

  const TEXT = {
    unsupported: "您的浏览器不支持网页通知，可以改用短信或微信接收城市通知。",
    insecure: "需要通过 HTTPS 打开本页面才能接收网页通知。",
    denied: "您拒绝了通知权限。如需接收城市通知，请在浏览器设置中允许本网站发送通知。",
    dismissed: "您没有允许通知，城市通知未开启。",
    unavailable: "本服务暂未开通网页通知。",
    failed: "开启通知失败，请稍后再试。",
    working: "正在开启…",
    done: "已开启城市通知：紧急预警和通知会推送到本浏览器。",
    on: "已开启城市通知",
  };

  // A failure the citizen is told about, in their words.
  class Problem extends Error {}

  function show(kind, text) {
    statusEl.hidden = false;
    statusEl.dataset.kind = kind; // error | ok | info
    statusEl.textContent = text;
  }

  function session() {
    try {
      const saved = localStorage.getItem(SESSION_KEY);
      if (saved) return saved;
    } catch {
      // storage disabled: chat.js keeps the session on the page instead
    }
    return document.body.dataset.session || "";
  }

  function supported() {
    return "serviceWorker" in navigator && "PushManager" in window && "Notification" in window;
  }

  function keyBytes(b64url) {
    const b64 = b64url.replace(/-/g, "+").replace(/_/g, "/");
    const padded = b64 + "=".repeat((4 - (b64.length % 4)) % 4);
    return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
  }

  function sameKey(buffer, bytes) {
    if (!buffer) return false;
    const a = new Uint8Array(buffer);
    return a.length === bytes.length && a.every((x, i) => x === bytes[i]);
  }

  async function permission() {
    if (Notification.permission === "denied") throw new Problem(TEXT.denied);
    if (Notification.permission === "granted") return;
    const answer = await Notification.requestPermission();
    if (answer === "denied") throw new Problem(TEXT.denied);
    if (answer !== "granted") throw new Problem(TEXT.dismissed);
  }

  async function serverKey() {
    let response;
    try {
      response = await fetch("/api/webpush/key", { cache: "no-store" });
    } catch {
      throw new Problem(TEXT.failed);
    }
    if (response.status === 404) throw new Problem(TEXT.unavailable); // the gateway has no VAPID key
    if (!response.ok) throw new Problem(TEXT.failed);
    const body = await response.json();
    if (!body || typeof body.public_key !== "string") throw new Problem(TEXT.failed);
    return keyBytes(body.public_key);
  }

  async function pushSubscription(registration, key) {
    const manager = registration.pushManager;
    try {
      let subscription = await manager.getSubscription();
      if (subscription && !sameKey(subscription.options.applicationServerKey, key)) {
        await subscription.unsubscribe(); // made with an older server key: the gateway could not use it
        subscription = null;
      }
      return subscription || (await manager.subscribe({ userVisibleOnly: true, applicationServerKey: key }));
    } catch (err) {
      console.warn("push subscription failed:", err);
      throw new Problem(Notification.permission === "denied" ? TEXT.denied : TEXT.failed);
    }
  }

  async function handOver(subscription) {
    let response;
    try {
      response = await fetch("/api/webpush/subscriptions", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ session: session(), subscription: subscription.toJSON() }),
      });
    } catch {
      throw new Problem(TEXT.failed);
    }
    if (response.ok) return;
    let reason = "";
    try {
      reason = (await response.json()).error || "";
    } catch {
      // not our JSON (a proxy's error page): the generic sentence will do
    }
    throw new Problem(reason || TEXT.failed);
  }

  async function subscribe() {
    if (!window.isSecureContext) throw new Problem(TEXT.insecure);
    if (!supported()) throw new Problem(TEXT.unsupported);
    // Permission first, while the click still counts as the citizen's gesture (Safari requires it).
    await permission();
    const key = await serverKey();
    let registration;
    try {
      await navigator.serviceWorker.register("/sw.js", { scope: "/" });
      registration = await navigator.serviceWorker.ready;
    } catch (err) {
      console.warn("service worker registration failed:", err);
      throw new Problem(TEXT.failed);
    }
    await handOver(await pushSubscription(registration, key));
  }

  button.addEventListener("click", async () => {
    button.disabled = true;
    show("info", TEXT.working);
    try {
      await subscribe();
      show("ok", TEXT.done);
      button.textContent = TEXT.on;
    } catch (err) {
      if (!(err instanceof Problem)) console.warn("web push:", err);
      show("error", err instanceof Problem ? err.message : TEXT.failed);
    } finally {
      button.disabled = false;
    }
  });

  // A browser that subscribed before says so on the button.
  if (supported() && window.isSecureContext && Notification.permission === "granted") {
    navigator.serviceWorker
      .getRegistration("/")
      .then((registration) => registration && registration.pushManager.getSubscription())
      .then((subscription) => {
        if (subscription) button.textContent = TEXT.on;
      })
      .catch(() => {});
  }
})();
