// keel console: live updates and confirmations. The pages work without
// this script; it only refreshes the page's data in place and asks before a
// destructive action.
(function () {
  "use strict";
  var main = document.getElementById("main");
  var meta = function (name) {
    var m = document.querySelector('meta[name="' + name + '"]');
    return m ? m.content : "";
  };
  var interval = parseInt(meta("keel-refresh"), 10) || 2000;
  var toggle = document.getElementById("live-toggle");
  var at = document.getElementById("live-at");
  var live = true;
  var busy = false;

  // A person typing in a form, or with a <details> open, is not interrupted.
  function editing() {
    var a = document.activeElement;
    if (a && main.contains(a) && /^(INPUT|SELECT|TEXTAREA)$/.test(a.tagName)) return true;
    return main.querySelector("details[open]:not([data-live])") !== null;
  }

  function refresh() {
    if (!live || busy || document.hidden || editing()) return;
    busy = true;
    fetch(location.href, { headers: { "X-Keel-Refresh": "1" }, credentials: "same-origin" })
      .then(function (r) {
        if (!r.ok) throw new Error(r.status + " " + r.statusText);
        return r.text();
      })
      .then(function (html) {
        if (!editing() && html !== main.dataset.last) {
          main.innerHTML = html;
          main.dataset.last = html;
        }
        at.textContent = "updated " + new Date().toLocaleTimeString();
        at.className = "";
      })
      .catch(function (e) {
        at.textContent = "not updated: " + e.message;
        at.className = "error";
      })
      .finally(function () { busy = false; });
  }

  toggle.addEventListener("click", function () {
    live = !live;
    toggle.setAttribute("aria-pressed", String(live));
    toggle.textContent = live ? "live" : "paused";
    if (live) refresh();
  });
  setInterval(refresh, interval);

  // A form with data-confirm asks first, then tells the server it asked.
  document.addEventListener("submit", function (e) {
    var form = e.target;
    var question = form.getAttribute("data-confirm");
    if (!question) return;
    if (!window.confirm(question)) {
      e.preventDefault();
      return;
    }
    var yes = form.querySelector('input[name="confirm"]');
    if (!yes) {
      yes = document.createElement("input");
      yes.type = "hidden";
      yes.name = "confirm";
      form.appendChild(yes);
    }
    yes.value = "yes";
  });
})();
