// tenure's console: the little the pages do in the browser beyond htmx. A run in progress is
// followed over Server-Sent Events (the API's /runs/{id}/events, on the same session cookie),
// and each progress event moves its bar; the end reloads the page's data.
(function () {
  "use strict";

  function follow(box) {
    if (box.dataset.following) return;
    box.dataset.following = "yes";
    var text = box.querySelector("[data-run-text]");
    var bar = box.querySelector("[data-run-bar]");
    var meter = box.querySelector("[role=progressbar]");
    var source = new EventSource(box.dataset.runEvents);
    box.tenureSource = source;
    source.addEventListener("progress", function (e) {
      var v = JSON.parse(e.data);
      var p = v.progress || {};
      var done = p.done || 0;
      var total = p.total || 0;
      var share = total > 0 ? Math.round((100 * done) / total) : 0;
      if (text) text.textContent = total > 0 ? done + " of " + total + " workers (" + share + "%)" : "reading the target";
      if (bar) bar.style.width = share + "%";
      if (meter) meter.setAttribute("aria-valuenow", String(share));
    });
    source.addEventListener("end", function (e) {
      source.close();
      var v = JSON.parse(e.data);
      if (text) text.textContent = "finished: " + (v.state || "ended");
      if (bar) bar.style.width = "100%";
      if (meter) meter.setAttribute("aria-valuenow", "100");
      var refresh = document.querySelector("[data-refresh-on-end]");
      if (refresh && window.htmx) window.htmx.trigger(refresh, "run-ended");
    });
    source.onerror = function () {
      // The stream ended with the run, or the session did: the page's own refresh takes over.
      source.close();
    };
  }

  function scan(root) {
    (root || document).querySelectorAll("[data-run-events]").forEach(follow);
  }

  document.addEventListener("DOMContentLoaded", function () { scan(document); });
  // A part of the page htmx replaces takes its event streams with it.
  document.addEventListener("htmx:beforeCleanupElement", function (e) {
    if (e.target.tenureSource) e.target.tenureSource.close();
  });
  document.addEventListener("htmx:afterSettle", function (e) { scan(e.target); });
})();
