// Tundra's dashboard: live updates and confirmations. Pages work without it;
// with it, a server-sent event says something changed and <main> is fetched
// again (filters and scroll stay), and forms with data-confirm ask first.
(function () {
  "use strict";
  document.addEventListener("submit", function (e) {
    var q = e.target.getAttribute("data-confirm");
    if (q && !window.confirm(q)) { e.preventDefault(); }
  }, true);
  if (!window.EventSource) { return; }
  var dot = document.getElementById("live");
  var main = document.getElementById("main");
  var pending = null, busy = false;
  function refresh() {
    pending = null;
    // Not while the operator is typing in a form field of the page.
    var a = document.activeElement;
    if (busy || (a && main.contains(a) && (a.tagName === "INPUT" || a.tagName === "SELECT"))) { return; }
    busy = true;
    fetch(window.location.href, { headers: { "X-Tundra-Fragment": "1" }, credentials: "same-origin" })
      .then(function (r) {
        if (r.status === 401) { window.location.reload(); return null; }
        return r.ok ? r.text() : null;
      })
      .then(function (html) { if (html !== null && html !== undefined) { main.innerHTML = html; main.setAttribute("data-refreshed", String(Date.now())); } })
      .catch(function () {})
      .then(function () { busy = false; });
  }
  var es = new EventSource("/ui/live");
  es.addEventListener("hello", function () { if (dot) { dot.classList.add("on"); } });
  es.addEventListener("change", function () {
    if (dot) { dot.classList.add("on"); }
    if (!pending) { pending = setTimeout(refresh, 300); }
  });
  es.onerror = function () { if (dot) { dot.classList.remove("on"); } };
})();
