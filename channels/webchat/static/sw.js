// 克拉玛依市民服务助手 — service worker for city notices (web push). Plain ES2020, no build step.
// Served at /sw.js so that its scope ("/") covers the web chat page. A push carries JSON from the
// gateway: {title, body, url, tag}; it becomes a notification, and a click brings the chat page back.
"use strict";

const DEFAULT_TITLE = "克拉玛依市民服务";

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

function payload(data) {
  if (!data) return {};
  try {
    const value = data.json();
    return value && typeof value === "object" ? value : { body: String(value) };
  } catch {
    return { body: data.text() }; // not JSON: show the text as it came
  }
}

// Only our own pages open from a notification, whatever a payload says.
function pageUrl(url) {
  try {
    const target = new URL(url || "/", self.location.origin);
    return target.origin === self.location.origin ? target.href : new URL("/", self.location.origin).href;
  } catch {
    return new URL("/", self.location.origin).href;
  }
}

self.addEventListener("push", (event) => {
  const data = payload(event.data);
  const title = typeof data.title === "string" && data.title ? data.title : DEFAULT_TITLE;
  const options = {
    body: typeof data.body === "string" ? data.body : "",
    lang: "zh-CN",
    data: { url: pageUrl(data.url) },
  };
  if (typeof data.tag === "string" && data.tag) {
    options.tag = data.tag; // a repeated delivery of one broadcast replaces its notification
  }
  event.waitUntil(self.registration.showNotification(title, options));
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const url = pageUrl(event.notification.data && event.notification.data.url);
  event.waitUntil(
    (async () => {
      const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
      const open = windows.find((client) => new URL(client.url).pathname === new URL(url).pathname);
      if (open && "focus" in open) return open.focus();
      return self.clients.openWindow(url);
    })(),
  );
});
