// 长辈模式 (elder mode): larger text and touch targets, at most four buttons at a time, long replies
// folded to their first lines. The choice is remembered in localStorage; chat.css does the rest on
// <html class="elder">, and chat.js hears "citygw:elder" to fold or unfold the replies on screen.
"use strict";

(() => {
  const KEY = "citygw.elder";
  const root = document.documentElement;

  function remembered() {
    try {
      return localStorage.getItem(KEY) === "on";
    } catch {
      return false; // storage disabled: the mode lasts as long as the page
    }
  }

  function apply(on) {
    root.classList.toggle("elder", on);
    const button = document.getElementById("elder");
    if (button) button.setAttribute("aria-pressed", String(on));
    document.dispatchEvent(new CustomEvent("citygw:elder", { detail: on }));
  }

  apply(remembered()); // before the body is parsed: the first paint is already the right size

  document.addEventListener("DOMContentLoaded", () => {
    apply(root.classList.contains("elder"));
    document.getElementById("elder")?.addEventListener("click", () => {
      const on = !root.classList.contains("elder");
      try {
        localStorage.setItem(KEY, on ? "on" : "off");
      } catch {
        // storage disabled: the switch still works for this page
      }
      apply(on);
    });
  });

  // Another tab of the page switched it: follow.
  window.addEventListener("storage", (ev) => {
    if (ev.key === KEY) apply(ev.newValue === "on");
  });
})();
