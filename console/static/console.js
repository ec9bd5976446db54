// Progressive enhancement only: every page works without this file.
(function () {
  "use strict";

  function focusOnLoad() {
    var target = document.querySelector("[data-focus-on-load]");
    if (target) { target.focus(); }
  }

  function copyButtons() {
    document.querySelectorAll("[data-copy]").forEach(function (button) {
      button.addEventListener("click", function () {
        var field = document.getElementById(button.getAttribute("data-copy"));
        var status = document.querySelector("[data-copy-status]");
        if (!field) { return; }
        field.select();
        var done = function () { if (status) { status.textContent = "Copied to the clipboard."; } };
        if (navigator.clipboard && navigator.clipboard.writeText) {
          navigator.clipboard.writeText(field.value).then(done, function () {
            if (status) { status.textContent = "Press Ctrl+C (or Cmd+C) to copy the selected token."; }
          });
        } else {
          document.execCommand("copy");
          done();
        }
      });
    });
  }

  // A page restored from the back-forward cache must not show a secret again.
  window.addEventListener("pageshow", function (event) {
    if (event.persisted) {
      document.querySelectorAll("[data-secret]").forEach(function (field) {
        field.value = "(shown once: no longer available)";
      });
    }
  });

  function cell(row, text, label) {
    var td = document.createElement("td");
    td.textContent = text || "";
    td.setAttribute("data-label", label);
    row.appendChild(td);
    return td;
  }

  function liveAudit() {
    var table = document.querySelector("[data-live]");
    if (!table || !window.EventSource) { return; }
    var rows = table.querySelector("[data-live-rows]");
    var status = document.querySelector("[data-live-status]");
    var source = new EventSource(table.getAttribute("data-live"));
    source.addEventListener("audit", function (message) {
      var e = JSON.parse(message.data);
      var row = document.createElement("tr");
      if (e.type === "CommandRejected") { row.className = "rejected"; }
      cell(row, e.occurred_at, "When");
      cell(row, e.type, "Event");
      cell(row, e.actor, "Actor");
      var token = cell(row, "", "Token");
      if (e.token_id) {
        var link = document.createElement("a");
        link.href = "/tokens/" + encodeURIComponent(e.token_id);
        link.textContent = e.token_id;
        token.appendChild(link);
      }
      cell(row, e.details, "Details");
      rows.insertBefore(row, rows.firstChild);
      var empty = document.querySelector("[data-live-empty]");
      if (empty) { empty.remove(); }
      if (status) { status.textContent = "Live: " + e.type + " by " + e.actor + " just now."; }
    });
    source.addEventListener("ended", function () {
      source.close();
      if (status) { status.textContent = "The live feed stopped: reload the page to sign in again."; }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    focusOnLoad();
    copyButtons();
    liveAudit();
  });
})();
