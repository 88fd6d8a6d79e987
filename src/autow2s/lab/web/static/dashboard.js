// autow2s dashboard: refresh the page in place while a campaign runs, and small conveniences.
// Hand-written, no dependencies, nothing fetched from outside the lab.
(function () {
  "use strict";
  var hidden = new Set();  // researchers switched off in the chart legend; kept across refreshes

  function applyHidden(root) {
    root.querySelectorAll("svg.chart g.series").forEach(function (g) {
      g.classList.toggle("hidden", hidden.has(g.getAttribute("data-researcher")));
    });
    root.querySelectorAll(".legend button[data-toggle]").forEach(function (b) {
      b.classList.toggle("off", hidden.has(b.getAttribute("data-toggle")));
    });
  }

  function wire(root) {
    root.querySelectorAll(".legend button[data-toggle]").forEach(function (b) {
      b.addEventListener("click", function () {
        var name = b.getAttribute("data-toggle");
        if (hidden.has(name)) { hidden.delete(name); } else { hidden.add(name); }
        applyHidden(document);
      });
    });
    root.querySelectorAll("select[data-autosubmit]").forEach(function (s) {
      s.addEventListener("change", function () { s.form.submit(); });
    });
    applyHidden(root);
  }

  function busy() {
    var active = document.activeElement;
    if (active && /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName)) { return true; }
    var selection = window.getSelection && window.getSelection();
    return Boolean(selection && String(selection).length);
  }

  function refresh() {
    var seconds = parseInt(document.body.getAttribute("data-refresh") || "0", 10);
    if (!seconds) { return; }
    window.setTimeout(function () {
      if (document.hidden || busy()) { refresh(); return; }
      fetch(window.location.href, {cache: "no-store", credentials: "same-origin"})
        .then(function (response) { return response.ok ? response.text() : Promise.reject(response.status); })
        .then(function (text) {
          var fresh = new DOMParser().parseFromString(text, "text/html");
          var main = fresh.querySelector("main"), status = fresh.getElementById("status");
          if (main) { document.querySelector("main").innerHTML = main.innerHTML; wire(document.querySelector("main")); }
          if (status) { document.getElementById("status").innerHTML = status.innerHTML; }
          document.body.setAttribute("data-refresh", fresh.body.getAttribute("data-refresh") || "0");
          var stamp = document.getElementById("refreshed");
          if (stamp) { stamp.textContent = "updated " + new Date().toLocaleTimeString(); }
          document.body.setAttribute("data-refreshed", String(Date.now()));
        })
        .catch(function () { /* the lab may be restarting: try again next time */ })
        .then(refresh);
    }, seconds * 1000);
  }

  document.addEventListener("DOMContentLoaded", function () { wire(document); refresh(); });
})();
