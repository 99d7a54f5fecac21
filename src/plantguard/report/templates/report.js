/* plantguard report: filter, search and sort the findings, copy Wireshark filters, print
   everything. Offline and self-contained; device text is only ever read (textContent) and
   written back as text, never as markup. Without this script the report shows every finding. */
(function () {
  "use strict";
  var RANK = { critical: 0, high: 1, medium: 2, low: 3, info: 4 };
  var FIELDS = ["severity", "status", "practice", "zone", "device", "check"];
  var LISTS = { zone: true, device: true };          // space-separated attributes
  var section = document.getElementById("findings");
  var form = document.getElementById("finding-filters");
  if (!section) { return; }

  function tokens(v) { return v ? v.split(/\s+/).filter(Boolean) : []; }
  function toArray(list) { return Array.prototype.slice.call(list); }

  // --- the findings, read once ------------------------------------------------------------
  var items = toArray(section.querySelectorAll(".finding")).map(function (el, i) {
    var it = { el: el, index: i, shown: true, text: null, holders: [] };
    FIELDS.forEach(function (f) {
      var v = el.getAttribute("data-" + f) || "";
      it[f] = LISTS[f] ? tokens(v) : v;
    });
    return it;
  });
  // incidents and groups hide when none of their findings match; incidents show how many do
  var holders = toArray(section.querySelectorAll(".incident, .finding-group")).map(function (el) {
    var h = { el: el, total: 0, matched: 0, shown: true, count: null };
    if (el.classList.contains("incident")) {
      h.count = el.querySelector(".incident-count");
      if (!h.count) {
        h.count = document.createElement("span");
        h.count.className = "incident-count";
        var head = el.querySelector("summary") || el.firstElementChild;
        if (head && head !== el) { head.appendChild(h.count); } else { el.insertBefore(h.count, el.firstChild); }
      }
    }
    return h;
  });
  var holderOf = new Map();
  holders.forEach(function (h) { holderOf.set(h.el, h); h.items = []; });
  items.forEach(function (it) {       // up the tree: O(findings x depth), not findings x incidents
    for (var n = it.el.parentNode; n && n !== section; n = n.parentNode) {
      var h = holderOf.get(n);
      if (h) { h.total += 1; h.items.push(it); it.holders.push(h); }
    }
  });

  // --- filtering: one pass over the findings per change, DOM touched only where it changes --
  function wanted() {
    var w = { terms: [] };
    if (!form) { return w; }
    FIELDS.forEach(function (f) {
      var c = form.elements.namedItem(f);
      w[f] = c ? c.value : "";
    });
    var q = form.elements.namedItem("q");
    w.terms = q ? tokens(q.value.toLowerCase()) : [];
    return w;
  }

  function matches(it, w) {
    for (var i = 0; i < FIELDS.length; i++) {
      var f = FIELDS[i], v = w[f];
      if (!v) { continue; }
      if (LISTS[f] ? it[f].indexOf(v) < 0 : it[f] !== v) { return false; }
    }
    if (w.terms.length) {
      if (it.text === null) { it.text = (it.el.textContent || "").toLowerCase(); }
      for (var j = 0; j < w.terms.length; j++) {
        if (it.text.indexOf(w.terms[j]) < 0) { return false; }
      }
    }
    return true;
  }

  function show(o, yes) {
    if (o.shown !== yes) { o.el.hidden = !yes; o.shown = yes; }
  }

  var countOut = form ? form.querySelector(".filter-count") : null;
  function apply() {
    var w = wanted(), shown = 0;
    holders.forEach(function (h) { h.matched = 0; });
    items.forEach(function (it) {
      var yes = matches(it, w);
      show(it, yes);
      if (yes) {
        shown += 1;
        for (var k = 0; k < it.holders.length; k++) { it.holders[k].matched += 1; }
      }
    });
    holders.forEach(function (h) {
      show(h, h.matched > 0);
      if (h.count) {
        var text = h.matched === h.total ? "" : h.matched + " of " + h.total + " findings match";
        if (h.count.textContent !== text) { h.count.textContent = text; }
      }
    });
    if (countOut) {
      countOut.textContent = shown + " of " + items.length + " findings shown";
    }
  }

  // --- sorting: findings (and incidents) reordered within their own container ---------------
  function keyOf(it, by) {
    if (by === "check") { return it.check; }
    if (by === "device") { return it.device.length ? it.device[0] : "\uffff"; }
    return "";
  }
  var collate = typeof Intl !== "undefined" && Intl.Collator ? new Intl.Collator(undefined, { numeric: true }).compare
    : function (a, b) { return a < b ? -1 : a > b ? 1 : 0; };
  function compare(a, b, by) {
    var c = by === "severity" ? 0 : collate(keyOf(a, by), keyOf(b, by));
    if (c) { return c; }
    c = (RANK[a.severity] === undefined ? 9 : RANK[a.severity]) - (RANK[b.severity] === undefined ? 9 : RANK[b.severity]);
    return c || a.index - b.index;
  }
  // the units to reorder: incidents, and findings outside any incident, by parent container
  var units = new Map();
  function unitOf(el, sub) {
    var parent = el.parentNode;
    if (!units.has(parent)) { units.set(parent, []); }
    units.get(parent).push(sub);
  }
  items.forEach(function (it) { unitOf(it.el, it); });
  holders.forEach(function (h) {
    if (!h.count) { return; }        // incidents only: groups are headings, not sorted
    unitOf(h.el, { el: h.el, index: h.items.length ? h.items[0].index : items.length, incident: h.items,
                   severity: h.el.getAttribute("data-severity") || "" });
  });
  function unitKey(u, by) {           // an incident sorts by its first finding in this order
    if (!u.incident || !u.incident.length) { return u; }
    var best = u.incident.slice().sort(function (a, b) { return compare(a, b, by); })[0];
    return { index: u.index, severity: u.severity in RANK ? u.severity : best.severity,
             check: best.check, device: best.device };
  }
  var ends = new Map();
  units.forEach(function (list, parent) {     // the units go back where the last of them was
    var last = list.reduce(function (a, b) {
      return a.el.compareDocumentPosition(b.el) & Node.DOCUMENT_POSITION_FOLLOWING ? b : a;
    });
    ends.set(parent, last.el.nextSibling);
  });
  function sortBy(by) {
    units.forEach(function (list, parent) {
      var keyed = list.map(function (u) { return { u: u, k: unitKey(u, by) }; });
      keyed.sort(function (a, b) { return compare(a.k, b.k, by); });
      var frag = document.createDocumentFragment();
      keyed.forEach(function (x) { frag.appendChild(x.u.el); });
      parent.insertBefore(frag, ends.get(parent));
    });
  }

  // --- controls -----------------------------------------------------------------------------
  if (form) {
    var timer = null;
    form.addEventListener("change", function (ev) {
      if (ev.target && ev.target.name === "sort") { sortBy(ev.target.value); } else { apply(); }
    });
    form.addEventListener("input", function (ev) {
      if (!ev.target || ev.target.name !== "q") { return; }
      if (timer) { clearTimeout(timer); }
      form.setAttribute("data-pending", "search");
      timer = setTimeout(function () {                                   // not on every keystroke
        timer = null;
        apply();
        form.removeAttribute("data-pending");
      }, 200);
    });
    form.addEventListener("submit", function (ev) { ev.preventDefault(); apply(); });
    form.addEventListener("reset", function () {
      setTimeout(function () { apply(); sortBy("severity"); }, 0);        // after the form cleared
    });
    form.hidden = false;
    apply();
  }

  // --- copy a Wireshark filter: the clipboard, or else the text selected for Ctrl+C ---------
  function selectText(node) {
    var range = document.createRange();
    range.selectNodeContents(node);
    var sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
  }
  function copied(button, word) {
    var was = button.getAttribute("data-label") || button.textContent;
    button.setAttribute("data-label", was);
    button.textContent = word;
    setTimeout(function () { button.textContent = was; }, 1500);
  }
  document.addEventListener("click", function (ev) {
    var button = ev.target && ev.target.closest ? ev.target.closest("button.copy") : null;
    if (!button) { return; }
    var code = button.previousElementSibling;
    if (!code) { return; }
    var text = code.textContent;
    var fallback = function () {
      selectText(code);
      var ok = false;
      try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
      copied(button, ok ? "Copied" : "Press Ctrl+C");
    };
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(text).then(function () { copied(button, "Copied"); }, fallback);
    } else {
      fallback();
    }
  });
  toArray(section.querySelectorAll("button.copy")).forEach(function (b) { b.hidden = false; });

  // --- print: every finding, every details element open; the screen state back afterwards ---
  var saved = null;
  window.addEventListener("beforeprint", function () {
    var all = toArray(document.querySelectorAll("details"));
    saved = all.map(function (d) { return [d, d.open]; });
    all.forEach(function (d) { d.open = true; });
    items.forEach(function (it) { show(it, true); });
    holders.forEach(function (h) { show(h, true); });
  });
  window.addEventListener("afterprint", function () {
    if (saved) { saved.forEach(function (p) { p[0].open = p[1]; }); }
    saved = null;
    apply();
  });
})();
