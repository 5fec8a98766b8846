// Small behaviours HTMX cannot express: upload progress, drag-and-drop, a size check
// before sending, and a banner for requests that failed outright. No inline scripts.
"use strict";

// The page's words (templating.script_words, in the reader's language), filled in as
// the server fills `%(name)s`: no English lives here.
const pageWords = JSON.parse(document.body.dataset.words || "{}");
function say(key, values) {
  return (pageWords[key] || key).replace(/%\((\w+)\)s/g, (match, name) =>
    values && name in values ? String(values[name]) : match);
}

function uploadForm(element) {
  return element && element.closest ? element.closest("form[data-progress]") : null;
}

document.addEventListener("htmx:beforeRequest", (event) => {
  const banner = document.getElementById("global-error");
  if (banner) banner.textContent = "";
  const form = uploadForm(event.target);
  if (!form) return;
  const error = form.querySelector("[data-upload-error]");
  const input = form.querySelector("input[type=file]");
  const limit = Number(form.dataset.maxBytes || 0);
  const file = input && input.files && input.files[0];
  if (file && limit && file.size > limit) {
    // The server refuses it too (413); saying so now saves a long upload.
    event.preventDefault();
    error.textContent = say("too_large", {
      name: file.name,
      size: file.size.toLocaleString(document.documentElement.lang),
      limit: limit.toLocaleString(document.documentElement.lang),
    });
    error.hidden = false;
    return;
  }
  if (error) error.hidden = true;
  const bar = document.getElementById(form.dataset.progress);
  if (bar) { bar.hidden = false; bar.value = 0; }
});

document.addEventListener("htmx:xhr:progress", (event) => {
  const form = uploadForm(event.target);
  const bar = form && document.getElementById(form.dataset.progress);
  if (bar && event.detail.lengthComputable && event.detail.total > 0) {
    bar.value = Math.round((event.detail.loaded / event.detail.total) * 100);
  }
});

function showFailure(message) {
  const banner = document.getElementById("global-error");
  if (banner && !banner.textContent) banner.textContent = message;
}

document.addEventListener("htmx:sendError", () => {
  showFailure(say("unreachable"));
});
document.addEventListener("htmx:responseError", (event) => {
  if (event.detail.xhr && event.detail.xhr.status >= 500) {
    showFailure(say("server_failed"));
  }
});

document.addEventListener("dragover", (event) => {
  const zone = event.target.closest && event.target.closest("[data-dropzone]");
  if (!zone) return;
  event.preventDefault();
  zone.classList.add("dragging");
});
document.addEventListener("dragleave", (event) => {
  const zone = event.target.closest && event.target.closest("[data-dropzone]");
  if (zone) zone.classList.remove("dragging");
});
document.addEventListener("drop", (event) => {
  const zone = event.target.closest && event.target.closest("[data-dropzone]");
  if (!zone) return;
  event.preventDefault();
  zone.classList.remove("dragging");
  const input = zone.querySelector("input[type=file]");
  if (input && event.dataTransfer.files.length) {
    input.files = event.dataTransfer.files;
    const hint = zone.querySelector("[data-drop-hint]");
    if (hint) hint.textContent = say("ready", { name: event.dataTransfer.files[0].name });
  }
});

// Leaderboards: flash the rows whose rank changed since the last poll, and keep
// "updated N s ago" ticking between polls.
let previousRanks = null;
document.addEventListener("htmx:beforeSwap", (event) => {
  const board = event.detail.target;
  if (!board || !board.querySelector) return;
  previousRanks = {};
  board.querySelectorAll("tr[data-team]").forEach((row) => {
    previousRanks[row.dataset.team] = Number(row.dataset.rank || 0);
  });
});
document.addEventListener("htmx:afterSwap", () => {
  if (!previousRanks) return;
  document.querySelectorAll("tr[data-team]").forEach((row) => {
    const before = previousRanks[row.dataset.team];
    const now = Number(row.dataset.rank || 0);
    if (before && now && now !== before) row.classList.add(now < before ? "moved-up" : "moved-down");
  });
  previousRanks = null;
});
function showUpdatedAt() {
  document.querySelectorAll("[data-updated-at]").forEach((element) => {
    const at = Number(element.dataset.updatedAt);
    if (at) {
      const age = timeLeft(Date.now() / 1000 - at);
      element.textContent = say("updated_ago", { age: age });
    }
  });
}
// At once on a new board too: a poll swaps in an empty label, which would otherwise
// stay blank until the next tick (a blink every poll on the projector).
document.addEventListener("htmx:afterSwap", showUpdatedAt);
showUpdatedAt();
setInterval(showUpdatedAt, 1000);

// The header's competition phase: count down to the next moment every second and move
// on to the next step when it passes ("Open · ends in" -> "Ended"), reloading nothing.
// Counted on the server's clock (sent with the page), not this computer's. timeLeft
// words it as portal/competition/header.py `time_left` does, in the page's language.
function timeLeft(seconds) {
  const total = Math.max(0, Math.floor(seconds));
  const days = Math.floor(total / 86400);
  const hours = Math.floor((total % 86400) / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const secs = total % 60;
  if (days) return say("days_hours", { days: days, hours: hours });
  if (hours) return say("hours_minutes", { hours: hours, minutes: minutes });
  if (minutes) return say("minutes_seconds", { minutes: minutes, seconds: secs });
  return say("seconds", { seconds: secs });
}

function tickPhaseClock(badge, steps, serverOffset) {
  const now = Date.now() + serverOffset;
  const step = steps.find((s) => s.at && Date.parse(s.at) > now) || steps[steps.length - 1];
  const text = badge.querySelector("[data-phase-text]");
  const left = badge.querySelector("[data-phase-left]");
  badge.dataset.phase = step.phase;
  if (text.textContent !== step.text) text.textContent = step.text;
  if (step.at) {
    left.hidden = false;
    left.setAttribute("datetime", step.at);
    left.title = step.title;
    left.textContent = timeLeft((Date.parse(step.at) - now) / 1000);
  } else {
    left.hidden = true;
    left.textContent = ""; // hidden, its text would still be part of the badge's text
  }
}

// A badge follows its steps; `follow` swaps in new ones (a board poll brings the current
// steps, so a page left open also moves to the final evaluation or the reveal).
function phaseClock(badge) {
  const serverOffset = Date.parse(badge.dataset.serverNow) - Date.now();
  let steps = [];
  let timer = null;
  function follow(json) {
    const next = JSON.parse(json || "[]");
    if (!next.length) return;
    badge.dataset.steps = json;
    steps = next;
    tickPhaseClock(badge, steps, serverOffset);
    if (timer === null && steps.some((s) => s.at)) {
      timer = setInterval(() => tickPhaseClock(badge, steps, serverOffset), 1000);
    } else if (timer !== null && !steps.some((s) => s.at)) {
      clearInterval(timer);
      timer = null;
    }
  }
  follow(badge.dataset.steps);
  return follow;
}

const phaseClocks = new Map();
document.querySelectorAll("[data-phase-clock]").forEach((badge) => {
  phaseClocks.set(badge, phaseClock(badge));
});
document.addEventListener("htmx:afterSwap", () => {
  const source = document.querySelector("[data-phase-steps]");
  if (!source) return;
  const json = source.dataset.phaseSteps;
  phaseClocks.forEach((follow, badge) => {
    if (badge.dataset.steps !== json) follow(json);
  });
});
