// jobstore dashboard: re-fetch the page's #live fragment now and then and swap it in.
// The server renders everything; this script only refreshes it (and asks before a cancel or retry).
"use strict";
(() => {
  document.addEventListener("submit", (event) => {
    const question = event.target.getAttribute("data-confirm");
    if (question && !window.confirm(question)) event.preventDefault();
  });

  const live = document.getElementById("live");
  const badge = document.getElementById("live-status");
  const say = (text, state) => {
    if (badge) {
      badge.textContent = text;
      badge.dataset.state = state;
    }
  };
  if (!live || !live.dataset.live) return;

  const url = live.dataset.live;
  const every = Math.max(250, 1000 * (parseFloat(live.dataset.refresh) || 1));
  let last = null;
  let timer = null;
  let done = false;

  // Waits `every` between refreshes, or ten times as long as the last one took: a slow
  // query (a rare filter on a big table) is never run back to back by open tabs.
  const schedule = (took) => {
    clearTimeout(timer);
    if (!done && !document.hidden) timer = setTimeout(refresh, Math.max(every, 10 * took));
  };

  async function refresh() {
    const started = performance.now();
    try {
      const response = await fetch(url, {
        headers: { "X-Requested-With": "jobstore-ui" },
        credentials: "same-origin",
        cache: "no-store",
      });
      if (response.status === 404 || response.status === 410) {
        done = true; // the job is gone: the page itself says why
        location.reload();
        return;
      }
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const html = await response.text();
      if (html !== last) {
        last = html;
        live.innerHTML = html;
      }
      say(`live · every ${every / 1000} s`, "ok");
      const head = live.querySelector("[data-active]");
      if ("reloadWhenDone" in live.dataset && head && head.dataset.active === "false") {
        done = true; // the job ended: reload once to show its response
        location.replace(location.pathname);
      }
    } catch (error) {
      say(`offline (${error.message}): retrying`, "bad");
    }
    schedule(performance.now() - started);
  }

  document.addEventListener("visibilitychange", () => {
    if (document.hidden) {
      clearTimeout(timer);
      say("paused", "idle");
    } else {
      refresh();
    }
  });
  say(`live · every ${every / 1000} s`, "ok");
  schedule(0);
})();
