// gadgetwatch console: the only script. Served from the console itself (script-src 'self').
// The live view: new alerts matching the page's filters arrive as server-rendered, escaped
// table rows over server-sent events and are inserted at the top of the list.
"use strict";
(function () {
  function live() {
    var table = document.getElementById("alerts");
    var rows = document.getElementById("alert-rows");
    var state = document.getElementById("live-state");
    var counter = document.getElementById("live-count");
    if (!table || !rows || !window.EventSource) {
      return;
    }
    if (!table.getAttribute("data-stream")) {
      state.textContent = "live: off (an older page)";
      return;
    }
    var received = 0;
    var source = new EventSource(table.getAttribute("data-stream"));
    source.addEventListener("ready", function () {
      state.textContent = "live: on";
      document.body.setAttribute("data-live", "open");
    });
    source.addEventListener("alert", function (event) {
      // The row is built by the server's escaping layer; parse it inside a <tbody> template
      // so the browser treats it as a table row, never as a document.
      var holder = document.createElement("template");
      holder.innerHTML = "<table><tbody>" + event.data + "</tbody></table>";
      var row = holder.content.querySelector("tr");
      if (!row) {
        return;
      }
      row.classList.add("fresh");
      rows.insertBefore(row, rows.firstChild);
      received += 1;
      counter.textContent = "(" + received + " new)";
      document.body.setAttribute("data-live-received", String(received));
    });
    source.addEventListener("overflow", function () {
      state.textContent = "live: some alerts were skipped, reload the page";
    });
    source.onerror = function () {
      state.textContent = "live: reconnecting";
      document.body.setAttribute("data-live", "reconnecting");
    };
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", live);
  } else {
    live();
  }
})();
