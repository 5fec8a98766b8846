// The reveal ceremony (templates/projector_reveal.html): every team starts in the order
// the audience last saw, with that score; each step reveals the lowest-placed team not yet
// revealed, which slides (FLIP) to its final place with its final score and shake-up.
// After step k the screen is: unrevealed teams in public order, then the k revealed teams
// in final order, so the bottom k places are final and the order never jumps twice.
(function () {
  "use strict";

  var MOVE_MS = 1000;

  // The page's words (templating.script_words, in the reader's language), as app.js.
  var pageWords = JSON.parse(document.body.dataset.words || "{}");
  function say(key, values) {
    return (pageWords[key] || key).replace(/%\((\w+)\)s/g, function (match, name) {
      return values && name in values ? String(values[name]) : match;
    });
  }
  var STILL = window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches;

  function start() {
    var stage = document.getElementById("reveal");
    var source = document.getElementById("reveal-data");
    var board = document.getElementById("reveal-board");
    if (!stage || !source) return;
    var data = JSON.parse(source.textContent);
    var teams = data.teams; // final order, best first
    var total = teams.length;
    var byId = {};
    teams.forEach(function (team) { byId[team.team_id] = team; });
    var rows = {};
    if (board) {
      Array.prototype.forEach.call(board.children, function (row) {
        rows[row.getAttribute("data-team")] = row;
      });
    }
    var step = 0;
    var revealed = Boolean(data.revealed);
    var revealing = false;
    var timer = null;
    var autoplayNote = document.getElementById("reveal-autoplay");
    var stepNote = document.getElementById("reveal-step");
    var errorBox = document.getElementById("reveal-error");
    var boardNote = document.getElementById("reveal-board-note");
    var waitingNote = boardNote.textContent;

    function formatScore(score) {
      return score === null || score === undefined ? "–" : score.toFixed(4);
    }

    // Team ids in screen order after `k` steps.
    function layout(k) {
      var shown = {};
      var revealedIds = teams.slice(total - k).map(function (team) {
        shown[team.team_id] = true;
        return team.team_id;
      });
      var waiting = data.public_order.filter(function (id) { return !shown[id]; });
      return waiting.concat(revealedIds);
    }

    function setShake(cell, team) {
      cell.className = "shake";
      if (team.public_rank === null || team.final_rank === null) {
        cell.textContent = team.final_rank === null ? "" : say("new");
        cell.classList.add("muted");
        cell.title = say("not_on_board");
        return;
      }
      var places = team.public_rank - team.final_rank;
      if (places > 0) {
        cell.textContent = "▲ " + places;
        cell.classList.add("up");
        cell.title = say("up_places", { places: places });
      } else if (places < 0) {
        cell.textContent = "▼ " + -places;
        cell.classList.add("down");
        cell.title = say("down_places", { places: -places });
      } else {
        cell.textContent = "=";
        cell.classList.add("muted");
        cell.title = say("same_place");
      }
    }

    function paintRow(row, team, isRevealed) {
      row.querySelector(".rank").textContent = isRevealed
        ? (team.final_rank === null ? "–" : team.final_rank)
        : (team.public_rank === null ? "–" : team.public_rank);
      row.querySelector(".score").textContent = formatScore(
        isRevealed ? team.final_score : team.public_score
      );
      var shake = row.querySelector(".shake");
      if (isRevealed) {
        setShake(shake, team);
      } else {
        shake.className = "shake";
        shake.textContent = "";
        shake.removeAttribute("title");
      }
      row.classList.toggle("revealed", isRevealed);
      row.classList.toggle("unrevealed", !isRevealed);
      row.setAttribute("data-state", isRevealed ? "final" : "public");
    }

    // FLIP: note where each row is, reorder, then animate each from where it was.
    function render(animate) {
      if (!board) return;
      var before = {};
      if (animate) {
        Object.keys(rows).forEach(function (id) {
          before[id] = rows[id].getBoundingClientRect().top; // mid-move rows: where drawn
        });
        Object.keys(rows).forEach(function (id) {
          rows[id].getAnimations().forEach(function (move) { move.cancel(); });
        });
      }
      var order = layout(step);
      var shownFrom = total - step;
      order.forEach(function (id, index) {
        var row = rows[id];
        var team = byId[id];
        paintRow(row, team, index >= shownFrom);
        row.classList.toggle("current", step > 0 && index === shownFrom);
        row.classList.toggle("winner", step === total && index === 0);
        board.appendChild(row);
      });
      stage.setAttribute("data-step", String(step));
      stepNote.textContent = say("step_of", { step: step, total: total });
      boardNote.textContent = step === total ? say("all_revealed", { total: total }) : waitingNote;
      if (!animate) return;
      var moves = order.map(function (id) {
        return [rows[id], before[id] - rows[id].getBoundingClientRect().top];
      });
      // Scroll while every row stands at its new place (a moving row is drawn where it
      // was), so a board longer than the screen follows the row being revealed.
      var current = board.querySelector("li.current");
      if (current) {
        current.scrollIntoView({ block: "center", behavior: STILL ? "auto" : "smooth" });
      } else if (step === 0) {
        window.scrollTo({ top: 0, behavior: STILL ? "auto" : "smooth" });
      }
      if (STILL) return;
      moves.forEach(function (move) {
        if (move[1] && move[0].animate) {
          move[0].animate(
            [{ transform: "translateY(" + move[1] + "px)" }, { transform: "translateY(0)" }],
            { duration: MOVE_MS, easing: "cubic-bezier(0.2, 0.7, 0.2, 1)" }
          );
        }
      });
    }

    function showError(message) {
      errorBox.textContent = message;
      errorBox.hidden = false;
    }

    // Open the public final board the moment the winner is shown.
    function publishResults() {
      if (revealed || revealing) return;
      revealing = true;
      fetch("/api/v1/competition/reveal", {
        method: "POST",
        credentials: "same-origin",
        headers: {
          "X-CSRF-Token": stage.getAttribute("data-csrf-token"),
          Accept: "application/json",
          // The API answers English unless asked: ask for the page's language, so a
          // refusal's reason reads in the same language as the sentence around it.
          "Accept-Language": document.documentElement.lang || "en",
        },
      })
        .then(function (response) {
          if (response.ok) {
            revealed = true;
            errorBox.hidden = true;
            stage.setAttribute("data-revealed", "true");
            return null;
          }
          return response.json().then(
            function (body) {
              var error = (body && body.error) || {};
              if (error.code === "already_revealed") {
                revealed = true; // another screen or the admin page was quicker
                return;
              }
              showError(say("reveal_failed_retry", {
                reason: error.message || say("portal_answered", { status: response.status }),
              }));
            },
            function () {
              showError(say("reveal_failed", {
                reason: say("portal_answered", { status: response.status }),
              }));
            }
          );
        })
        .catch(function (error) {
          showError(say("reveal_failed", {
            reason: say("portal_unreachable", { error: error.message }),
          }));
        })
        .then(function () { revealing = false; });
    }

    function next() {
      if (step < total) {
        step += 1;
        render(true);
      }
      if (step === total) {
        stopAutoplay();
        if (total > 0) publishResults();
      }
    }

    function back() {
      if (step > 0) {
        step -= 1;
        render(true);
      }
    }

    function stopAutoplay() {
      if (timer !== null) {
        window.clearInterval(timer);
        timer = null;
      }
      autoplayNote.hidden = true;
      stage.removeAttribute("data-autoplay");
    }

    function toggleAutoplay() {
      if (timer !== null) {
        stopAutoplay();
        return;
      }
      if (step === total) return;
      timer = window.setInterval(next, data.interval_seconds * 1000);
      autoplayNote.hidden = false;
      stage.setAttribute("data-autoplay", "on");
    }

    document.addEventListener("keydown", function (event) {
      if (event.altKey || event.ctrlKey || event.metaKey) return;
      switch (event.key) {
        case "ArrowRight":
        case " ":
        case "Enter":
          next();
          break;
        case "ArrowLeft":
          stopAutoplay(); // the organizer took over
          back();
          break;
        case "a":
        case "A":
          toggleAutoplay();
          break;
        case "Home":
          stopAutoplay();
          step = 0;
          render(true);
          break;
        default:
          return;
      }
      event.preventDefault();
    });

    if (revealed) stage.setAttribute("data-revealed", "true");
    render(false);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
