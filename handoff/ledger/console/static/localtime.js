// Times in the browser's own zone, with the offset: the server writes each time as
// <time datetime="…Z"> in UTC (what a page without JavaScript shows), and this rewrites its text.
// Date and time fields take local time: each is filled from its UTC value, and the form sends
// the browser's zone name beside it (tz) so the server reads the local time in that zone.
(function () {
  "use strict";
  function pad(n) { return String(n).padStart(2, "0"); }
  function offset(d) {
    var minutes = -d.getTimezoneOffset(), sign = minutes >= 0 ? "+" : "-", m = Math.abs(minutes);
    return sign + pad(Math.floor(m / 60)) + ":" + pad(m % 60);
  }
  function day(d) { return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()); }
  function clock(d) { return pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds()); }
  function localise(root) {
    root.querySelectorAll("time[datetime]").forEach(function (element) {
      var d = new Date(element.getAttribute("datetime"));
      if (isNaN(d.getTime())) { return; }
      element.textContent = day(d) + " " + clock(d) + " " + offset(d);
      element.title = element.getAttribute("datetime");
    });
  }
  window.handoffLocalise = localise;
  document.addEventListener("DOMContentLoaded", function () {
    var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    localise(document);
    document.querySelectorAll("input[data-utc]").forEach(function (input) {
      var d = new Date(input.getAttribute("data-utc"));
      if (!isNaN(d.getTime())) { input.value = day(d) + "T" + clock(d); }
    });
    document.querySelectorAll("input[name=tz]").forEach(function (input) { input.value = zone; });
    document.querySelectorAll(".zone").forEach(function (element) { element.textContent = zone; });
  });
}());
