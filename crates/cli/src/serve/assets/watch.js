// Refreshes the page's <main> in place every few seconds (the period is the
// body's data-refresh, in seconds). Without JavaScript the page reloads
// itself instead (the <noscript> refresh in its head).
(function () {
  "use strict";
  var seconds = Number(document.body.getAttribute("data-refresh")) || 5;
  // Says the script runs (the pages read the same without it).
  document.body.setAttribute("data-live", "js");
  function refresh() {
    if (document.hidden) { return; }
    fetch(window.location.href, { credentials: "same-origin", cache: "no-store" })
      .then(function (answer) { return answer.ok ? answer.text() : Promise.reject(answer.status); })
      .then(function (html) {
        var next = new DOMParser().parseFromString(html, "text/html").querySelector("main");
        var main = document.querySelector("main");
        if (next && main) { main.replaceWith(next); }
      })
      .catch(function () { /* the next tick tries again */ });
  }
  window.setInterval(refresh, seconds * 1000);
})();
