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

  // Moments are written in UTC by the server (readable without script); here they are shown
  // in the viewer's own time zone, with the UTC moment kept on hover.
  var local = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", timeZoneName: "short"
  });
  function localTime(el) {
    if (el.dataset.local) return;
    var d = new Date(el.getAttribute("datetime"));
    if (isNaN(d.getTime())) return;
    el.dataset.local = "yes";
    el.title = el.textContent.trim();
    var ago = el.textContent.match(/\((.*)\)\s*$/);
    el.textContent = local.format(d) + (ago ? " (" + ago[1] + ")" : "");
  }

  function scan(root) {
    (root || document).querySelectorAll("[data-run-events]").forEach(follow);
    (root || document).querySelectorAll("time[datetime]").forEach(localTime);
  }

  // A request htmx made that failed is said in place (the page stays as it was), never a
  // blank part or a raw answer: the server's error page is cut to its message.
  function failed(e, text) {
    var target = e.detail.target || document.body;
    var box = document.getElementById("request-failed");
    if (!box) {
      box = document.createElement("div");
      box.id = "request-failed";
      box.className = "message bad";
      box.setAttribute("role", "alert");
      var main = document.getElementById("main");
      main.insertBefore(box, main.firstChild);
    }
    box.textContent = text;
    if (target && target.setAttribute) target.setAttribute("aria-busy", "false");
  }
  document.addEventListener("htmx:responseError", function (e) {
    var xhr = e.detail.xhr;
    var said = "";
    try {
      var doc = new DOMParser().parseFromString(xhr.responseText, "text/html");
      var p = doc.querySelector("main h1 + p");
      said = p ? p.textContent.trim() : "";
    } catch (err) { said = ""; }
    failed(e, "That did not work (" + xhr.status + ")" + (said ? ": " + said : "."));
  });
  document.addEventListener("htmx:sendError", function (e) {
    failed(e, "tenure could not be reached: check the connection and try again.");
  });

  // A secret shown once, copied to the clipboard by its button.
  document.addEventListener("click", function (e) {
    var b = e.target.closest && e.target.closest("[data-copy]");
    if (!b) return;
    var el = document.getElementById(b.dataset.copy);
    if (!el || !navigator.clipboard) return;
    navigator.clipboard.writeText(el.textContent.trim()).then(function () { b.textContent = "Copied"; });
  });

  document.addEventListener("DOMContentLoaded", function () { scan(document); });
  // A part of the page htmx replaces takes its event streams with it.
  document.addEventListener("htmx:beforeCleanupElement", function (e) {
    if (e.target.tenureSource) e.target.tenureSource.close();
  });
  document.addEventListener("htmx:afterSettle", function (e) { scan(e.target); });
})();
