// Small behaviours HTMX cannot express: upload progress, drag-and-drop, a size check
// before sending, and a banner for requests that failed outright. No inline scripts.
"use strict";

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
    error.textContent = `${file.name} is ${file.size} bytes; the limit is ${limit} bytes.`;
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
  showFailure("The portal could not be reached. Check your connection and try again.");
});
document.addEventListener("htmx:responseError", (event) => {
  if (event.detail.xhr && event.detail.xhr.status >= 500) {
    showFailure("The portal could not complete that request. Try again in a moment.");
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
    if (hint) hint.textContent = `Ready: ${event.dataTransfer.files[0].name}`;
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
// An age in the two largest units ("10 min 40 s"), worded as portal/core/templating.py
// `humanize_age` words it, from its `age_words` (the page's language) in data-age-words.
function humanAge(seconds, words) {
  const whole = Math.max(0, Math.floor(seconds));
  const units = {
    days: Math.floor(whole / 86400),
    hours: Math.floor((whole % 86400) / 3600),
    minutes: Math.floor((whole % 3600) / 60),
    seconds: whole % 60,
  };
  const names = Object.keys(units);
  let first = names.findIndex((name) => units[name]);
  if (first < 0) first = names.length - 1;
  const next = names[first + 1];
  const shown = next && units[next] ? [names[first], next] : [names[first]];
  return words[shown.join(" ")].replace(/\{(\w+)\}/g, (_, name) => String(units[name]));
}
function showUpdatedAt() {
  document.querySelectorAll("[data-updated-at]").forEach((element) => {
    const at = Number(element.dataset.updatedAt);
    if (!at) return;
    const words = JSON.parse(element.dataset.ageWords || "null");
    const seconds = Math.max(0, Math.round(Date.now() / 1000 - at));
    element.textContent = words
      ? words.updated.replace("{age}", humanAge(seconds, words))
      : `updated ${seconds} s ago`;
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
// words it as portal/competition/header.py `time_left` does.
function timeLeft(seconds) {
  const total = Math.max(0, Math.floor(seconds));
  const days = Math.floor(total / 86400);
  const hours = Math.floor((total % 86400) / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const secs = total % 60;
  if (days) return `${days} d ${hours} h`;
  if (hours) return `${hours} h ${minutes} min`;
  if (minutes) return `${minutes} min ${secs} s`;
  return `${secs} s`;
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
