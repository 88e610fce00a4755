// Clozup web app: dragging cards on the board and keeping an open board live. Everything works
// without this script (each card has a "Move to" form); it only makes it quicker. Loaded from
// this server only: the Content-Security-Policy allows no inline code.
(function () {
  "use strict";

  function csrf() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  function say(message, bad) {
    var el = document.getElementById("board-status");
    if (!el) return;
    el.textContent = message;
    el.classList.toggle("error", !!bad);
  }

  // The pipeline switcher shows the chosen pipeline at once.
  document.addEventListener("change", function (e) {
    if (e.target.matches("form.switch select")) e.target.form.submit();
  });

  // Reads the board again and puts it in place of the one shown.
  function refresh() {
    var board = document.getElementById("board");
    if (!board) return Promise.resolve();
    return fetch(location.pathname + location.search, {
      headers: { "X-Requested-With": "clozup" },
      credentials: "same-origin",
    })
      .then(function (res) { return res.ok ? res.text() : null; })
      .then(function (text) {
        if (!text) return;
        var fresh = new DOMParser().parseFromString(text, "text/html").getElementById("board");
        var now = document.getElementById("board");
        if (fresh && now) {
          now.replaceWith(fresh);
          arm();
        }
      })
      .catch(function () {});
  }

  // The same move as the card's form (and the API's, with the card's version as If-Match).
  function move(card, stageId) {
    var body = new URLSearchParams({
      csrf: csrf(),
      deal_id: card.dataset.deal,
      stage_id: stageId,
      version: card.dataset.version,
    });
    say("Moving…");
    return fetch("/board/move", {
      method: "POST",
      body: body,
      headers: { "X-Requested-With": "clozup" },
      credentials: "same-origin",
    })
      .then(function (res) {
        return res.json().catch(function () { return {}; }).then(function (answer) {
          return refresh().then(function () {
            if (res.ok) say("Moved.");
            else say(answer.error || "The deal could not be moved.", true);
          });
        });
      })
      .catch(function () {
        return refresh().then(function () {
          say("The server could not be reached; the deal was not moved.", true);
        });
      });
  }

  // Makes the columns of a writable board sortable into each other.
  function arm() {
    var board = document.getElementById("board");
    if (!board || board.dataset.writable !== "true" || !window.Sortable) return;
    board.classList.add("draggable");
    board.querySelectorAll("ul.cards").forEach(function (list) {
      window.Sortable.create(list, {
        group: "board",
        animation: 120,
        // Pointer events rather than the browser's drag and drop: the same on touch screens.
        forceFallback: true,
        filter: "details",
        preventOnFilter: false,
        onEnd: function (evt) {
          if (evt.from !== evt.to) move(evt.item, evt.to.dataset.stage);
        },
      });
    });
  }

  // An open board follows changes made elsewhere (an agent's move through the API).
  function follow() {
    if (!document.getElementById("board") || !window.EventSource) return;
    var timer = null;
    var source = new EventSource("/live");
    source.addEventListener("deal", function () {
      clearTimeout(timer);
      timer = setTimeout(refresh, 150);
    });
    source.addEventListener("open", function () {
      document.documentElement.dataset.live = "on";
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    arm();
    follow();
  });
})();
