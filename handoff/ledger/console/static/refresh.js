// The fleet page refreshes itself while it is visible: the part marked #live is fetched again
// and swapped in. The request says it is a refresh, so it does not count as the user's activity
// and cannot keep an abandoned login alive. Keyboard focus stays on the same link or field, and
// the scroll where it was. Without JavaScript the page works as it is.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live || !window.fetch || !window.DOMParser) { return; }
  var every = 1000 * Number(live.getAttribute("data-refresh-s") || "15");
  function refresh() {
    if (document.hidden) { return; }
    fetch(window.location.href, { headers: { "X-Handoff-Refresh": "1" }, credentials: "same-origin", redirect: "manual" })
      .then(function (response) {
        if (response.type === "opaqueredirect") { window.location.reload(); return null; }
        return response.ok ? response.text() : null;
      })
      .then(function (html) {
        if (!html) { return; }
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("live");
        if (!fresh) { return; }
        var focused = live.contains(document.activeElement) ? document.activeElement : null;
        var key = focused && (focused.getAttribute("href") || focused.id);
        var x = window.scrollX, y = window.scrollY;
        if (window.handoffLocalise) { window.handoffLocalise(fresh); }
        live.replaceWith(fresh);
        live = fresh;
        if (key) {
          var again = Array.prototype.find.call(live.querySelectorAll("a, button, input, select"), function (element) {
            return element.getAttribute("href") === key || element.id === key;
          });
          if (again) { again.focus({ preventScroll: true }); }
        }
        window.scrollTo(x, y);
      })
      .catch(function () { /* the next round tries again */ });
  }
  window.setInterval(refresh, every);
}());
