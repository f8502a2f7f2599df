// The overview page's script: filters, sorts and searches in place, keeps them in the address, and
// refreshes the cards and the table from /api/v1/workspaces without a reload: after each batch the
// live feed (/api/v1/events) announces, or every few seconds while the feed is unavailable. A
// click on a row's "since" opens the workspace's timeline (/api/v1/workspaces/{id}/history).
// It renders the same markup as src/http/page/render.rs (change one, change the other). Text from
// the API is always set through escape() or textContent. Every address it builds starts with the
// page's base (body's data-base: `/`, or the prefix behind a reverse proxy).
(function () {
  "use strict";
  var STATUSES = ["destroying", "provisioning", "failed", "drifted", "apply_needed", "active", "inactive"];
  var COLUMNS = ["status", "path", "workspace", "resources", "changes", "drift", "lock", "last_run", "since"];
  var REFRESH_MS = 5000;
  var LIVE_REFRESH_MS = 60000; // while the feed is live: only a safety net (and the relative times)
  var BASE = document.body.getAttribute("data-base") || "/";

  var el = function (id) { return document.getElementById(id); };
  var rowsEl = el("rows");
  if (!rowsEl) return;
  document.documentElement.classList.add("js");

  var data = null;        // the last document from the API
  var ready = true;       // false while /readyz says the first scan is running
  var lastSuccess = null; // Date of the last good refresh
  var timer = null;
  var live = false;       // the feed is open: it says when to refresh
  var cause = "poll";     // what asked for the refresh under way
  var view = fromAddress();

  // ---- the address: ?status=a,b&root=R&q=TEXT&sort=-col ----

  function fromAddress() {
    var p = new URLSearchParams(window.location.search);
    var statuses = [], unknown = [];
    (p.get("status") || "").split(",").forEach(function (s) {
      s = s.trim();
      if (!s) return;
      if (STATUSES.indexOf(s) < 0) unknown.push(s);
      else if (statuses.indexOf(s) < 0) statuses.push(s);
    });
    if (unknown.length) statuses = []; // as the server does: an unknown status drops the filter
    var sort = p.get("sort") || "";
    var desc = sort.charAt(0) === "-";
    var column = desc ? sort.slice(1) : sort;
    if (COLUMNS.indexOf(column) < 0) { column = "status"; desc = false; }
    return { statuses: statuses, root: p.get("root") || "", q: (p.get("q") || "").trim() ? p.get("q") : "", column: column, desc: desc };
  }

  function href(statuses, column, desc) {
    var parts = [];
    var enc = function (v) { return encodeURIComponent(v).replace(/%2C/g, ","); };
    if (statuses.length) parts.push("status=" + enc(statuses.join(",")));
    if (view.root) parts.push("root=" + enc(view.root));
    if (view.q) parts.push("q=" + enc(view.q));
    if (column !== "status" || desc) parts.push("sort=" + (desc ? "-" : "") + column);
    return BASE + (parts.length ? "?" + parts.join("&") : "");
  }

  function cardHref(status) {
    var only = view.statuses.length === 1 && view.statuses[0] === status;
    return href(only ? [] : [status], view.column, view.desc);
  }

  function toggledSort(column) {
    return { column: column, desc: view.column === column && !view.desc };
  }

  function remember(push) {
    var url = href(view.statuses, view.column, view.desc);
    if (url === window.location.pathname + window.location.search) return;
    if (push) window.history.pushState(null, "", url);
    else window.history.replaceState(null, "", url);
  }

  // ---- formatting (as src/http/page/time.rs) ----

  function escape(text) {
    return String(text).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }

  function span(seconds) {
    if (seconds < 60) return seconds + " s";
    if (seconds < 3600) return Math.floor(seconds / 60) + " min";
    if (seconds < 86400) return Math.floor(seconds / 3600) + " h";
    return Math.floor(seconds / 86400) + " d";
  }

  function relative(iso, now) {
    var seconds = Math.trunc((now - Date.parse(iso)) / 1000);
    if (Math.abs(seconds) < 10) return "just now";
    return seconds < 0 ? "in " + span(-seconds) : span(seconds) + " ago";
  }

  function exact(iso) {
    var d = new Date(Date.parse(iso));
    return d.toISOString().slice(0, 19).replace("T", " ") + " UTC";
  }

  function timeTag(iso, now) {
    return '<time datetime="' + escape(iso) + '" title="' + exact(iso) + '" data-rel>' + relative(iso, now) + "</time>";
  }

  function none(why) {
    return '<span class="none" title="' + escape(why) + '">–</span>';
  }

  // ---- one row (as row() in src/http/page/render.rs) ----

  function currentPlan(w) { return w.plan && w.plan.current ? w.plan : null; }

  function cellResources(w) {
    var s = w.state;
    if (!s) return none("no state");
    if (s.encrypted) return '<span class="muted" title="encrypted state: count unknown">encrypted</span>';
    var n = s.resources === null || s.resources === undefined ? none("state unreadable") : String(s.resources);
    return s.tainted > 0 ? n + ' <span class="tainted">(' + s.tainted + " tainted)</span>" : n;
  }

  function cellChanges(w) {
    var p = w.plan;
    if (!p) return none("no plan");
    if (!p.current) return '<span class="muted" title="the plan is older than the state or the configuration">stale plan</span>';
    if (p.errored) return '<span class="chg-err">plan errored</span>';
    var out = "";
    [["create", "+"], ["update", "~"], ["delete", "−"], ["replace", "±"]].forEach(function (a) {
      var n = p.changes[a[0]];
      if (n > 0) out += '<span class="chg chg-' + a[0] + '" title="' + n + " to " + a[0] + '">' + a[1] + n + '<span class="sr"> to ' + a[0] + "</span></span>";
    });
    if (p.output_changes > 0) {
      var s = p.output_changes === 1 ? "" : "s";
      out += '<span class="chg chg-output" title="' + p.output_changes + " output" + s + ' to change">' + p.output_changes + " output" + s + "</span>";
    }
    return out || '<span class="muted">none</span>';
  }

  function cellDrift(w) {
    var p = currentPlan(w);
    if (!p) return none("no current plan");
    return p.drifted_resources > 0 ? '<span class="drift">' + p.drifted_resources + "</span>" : "0";
  }

  function cellLock(w, now) {
    var l = w.lock;
    if (!l) return none("not locked");
    var out = '<span class="lock-op" title="' + escape(l.source) + ' lock">' + escape(l.operation) + "</span>";
    if (l.created_at) {
      var age = Math.max(0, Math.trunc((now - Date.parse(l.created_at)) / 1000));
      out += ' <span class="age" title="since ' + exact(l.created_at) + '">' + span(age) + "</span>";
    }
    if (l.state !== "live") out += ' <span class="lock-' + escape(l.state) + '">' + escape(l.state) + "</span>";
    if (l.who) out += '<span class="who">' + escape(l.who) + "</span>";
    return out;
  }

  function cellLastRun(w, now) {
    var r = w.last_run;
    if (!r) return none("no pipeline run recorded");
    var when = r.finished_at || r.modified_at;
    return '<span class="run run-' + escape(r.outcome) + '">' + escape(r.outcome) + '</span> <span class="muted">' +
      escape(r.operation) + '</span><span class="when">' + (when ? timeTag(when, now) : "") + "</span>";
  }

  function cellReasons(w) {
    if (!w.reasons.length) return none("no reasons");
    var lead = w.reasons.filter(function (r) { return r.explains; })[0] || w.reasons[0];
    var out = '<details><summary><span class="first">' + escape(lead.message) + "</span>" +
      (w.reasons.length > 1 ? ' <span class="more">+' + (w.reasons.length - 1) + "</span>" : "") + "</summary><ul>";
    w.reasons.forEach(function (r) {
      out += "<li><code>" + escape(r.code) + "</code> " + escape(r.message) +
        (r.artifact ? '<span class="artifact">' + escape(r.artifact) + "</span>" : "") + "</li>";
    });
    return out + "</ul></details>";
  }

  function otherFlags(w) {
    var also = ["failed", "drifted", "apply_needed"].filter(function (f) { return w.flags[f] && f !== w.status; });
    return also.length ? '<span class="also">also ' + also.join(", ") + "</span>" : "";
  }

  function rowHtml(w, now, severalRoots) {
    var s = escape(w.status);
    var cell = function (cls, label, html) { return '<td class="' + cls + '" data-label="' + label + '">' + html + "</td>"; };
    return cell("c-status", "Status", '<span class="badge s-' + s + '"><span class="dot" aria-hidden="true"></span>' + s + "</span>" + otherFlags(w)) +
      cell("c-path", "Path", '<span class="path">' + escape(w.path) + "</span>" + (severalRoots ? '<span class="root">' + escape(w.root) + "</span>" : "")) +
      cell("c-workspace", "Workspace", escape(w.workspace)) +
      cell("c-resources num", "Resources", cellResources(w)) +
      cell("c-changes", "Changes", cellChanges(w)) +
      cell("c-drift num", "Drift", cellDrift(w)) +
      cell("c-lock", "Lock", cellLock(w, now)) +
      cell("c-last_run", "Last run", cellLastRun(w, now)) +
      cell("c-since", "Since", w.status_since ? timeTag(w.status_since, now) : none("unknown")) +
      cell("c-reasons", "Reasons", cellReasons(w));
  }

  // ---- order (as Sort::compare in src/http/page/params.rs) ----

  function key(w, column) {
    var p = currentPlan(w);
    switch (column) {
      case "status": return STATUSES.indexOf(w.status);
      case "path": return [w.root, w.path];
      case "workspace": return w.workspace;
      case "resources": return w.state && w.state.resources != null ? w.state.resources : null;
      case "changes": return p ? p.changes.create + p.changes.update + p.changes.delete + p.changes.replace + p.output_changes : null;
      case "drift": return p ? p.drifted_resources : null;
      case "lock": return w.lock ? w.lock.created_at || "" : null;
      case "last_run": return w.last_run ? w.last_run.finished_at || w.last_run.modified_at : null;
      case "since": return w.status_since;
    }
    return null;
  }

  function cmp(a, b) {
    if (a === b) return 0;
    if (a === null || a === undefined) return -1; // missing values first, as Rust's None < Some
    if (b === null || b === undefined) return 1;
    if (Array.isArray(a)) {
      for (var i = 0; i < a.length; i++) { var c = cmp(a[i], b[i]); if (c) return c; }
      return 0;
    }
    return a < b ? -1 : a > b ? 1 : 0;
  }

  function compare(a, b) {
    var c = cmp(key(a, view.column), key(b, view.column));
    if (view.desc) c = -c;
    return c || cmp([a.root, a.path, a.workspace], [b.root, b.path, b.workspace]);
  }

  // ---- rendering ----

  function render() {
    if (!data) return;
    var now = Date.now();
    var q = view.q.toLowerCase();
    var roots = {};
    data.workspaces.forEach(function (w) { roots[w.root] = true; });
    var severalRoots = Object.keys(roots).length > 1;
    var inScope = data.workspaces.filter(function (w) { return !q || w.path.toLowerCase().indexOf(q) >= 0; });
    var counts = {};
    STATUSES.forEach(function (s) { counts[s] = 0; });
    inScope.forEach(function (w) { counts[w.status] = (counts[w.status] || 0) + 1; });
    var shown = inScope.filter(function (w) { return !view.statuses.length || view.statuses.indexOf(w.status) >= 0; });
    shown.sort(compare);

    renderCards(counts);
    renderHeaders();
    renderRows(shown, now, severalRoots);
    renderEmpty(shown.length);
    renderSummary(shown.length);
    renderProblems();
    document.title = counts.failed + counts.drifted > 0
      ? "iacwatch · " + counts.failed + " failed, " + counts.drifted + " drifted"
      : "iacwatch · " + inScope.length + " workspaces";
  }

  function renderCards(counts) {
    STATUSES.forEach(function (s) {
      var card = el("card-" + s);
      if (!card) return;
      var selected = view.statuses.indexOf(s) >= 0;
      card.querySelector(".count").textContent = counts[s];
      card.classList.toggle("zero", counts[s] === 0);
      card.setAttribute("href", cardHref(s));
      if (selected) card.setAttribute("aria-current", "true");
      else card.removeAttribute("aria-current");
      card.title = selected && view.statuses.length === 1 ? "Show every status" : "Show only " + s + " workspaces";
    });
  }

  function renderHeaders() {
    document.querySelectorAll("#workspaces thead a[data-sort]").forEach(function (a) {
      var column = a.getAttribute("data-sort");
      var th = a.parentNode;
      var t = toggledSort(column);
      a.setAttribute("href", href(view.statuses, t.column, t.desc));
      var arrow = a.querySelector(".arrow");
      if (column === view.column) {
        th.setAttribute("aria-sort", view.desc ? "descending" : "ascending");
        arrow.textContent = view.desc ? "▼" : "▲";
      } else {
        th.removeAttribute("aria-sort");
        arrow.textContent = "";
      }
    });
  }

  // Rows are keyed by workspace id and reused when unchanged, so an open <details>, the focus and
  // the scroll position survive a refresh; only relative times are rewritten.
  function renderRows(shown, now, severalRoots) {
    var existing = {};
    Array.prototype.forEach.call(rowsEl.children, function (tr) { existing[tr.getAttribute("data-id")] = tr; });
    var keep = {};
    shown.forEach(function (w, i) {
      var signature = JSON.stringify(w) + (severalRoots ? "+roots" : "");
      var tr = existing[w.id];
      if (!tr || tr.__signature !== signature) {
        var open = tr ? tr.querySelector("details[open]") !== null : false;
        var fresh = document.createElement("tr");
        fresh.setAttribute("data-id", w.id);
        fresh.setAttribute("data-status", w.status);
        fresh.innerHTML = rowHtml(w, now, severalRoots);
        fresh.__signature = signature;
        if (open) fresh.querySelector("details").open = true;
        if (tr) rowsEl.replaceChild(fresh, tr);
        tr = fresh;
      } else {
        updateTimes(tr, now);
      }
      keep[w.id] = true;
      if (rowsEl.children[i] !== tr) rowsEl.insertBefore(tr, rowsEl.children[i] || null);
    });
    Array.prototype.slice.call(rowsEl.children).forEach(function (tr) {
      if (!keep[tr.getAttribute("data-id")]) rowsEl.removeChild(tr);
    });
  }

  function updateTimes(scope, now) {
    scope.querySelectorAll("time[data-rel]").forEach(function (t) {
      t.textContent = relative(t.getAttribute("datetime"), now);
    });
  }

  function renderEmpty(shownCount) {
    var box = el("empty");
    if (shownCount > 0) { box.hidden = true; return; }
    box.hidden = false;
    if (!ready) {
      box.innerHTML = "<strong>Scanning…</strong> The first scan of the roots is not done yet; this page fills in when it is.";
    } else if (!data.workspaces.length) {
      box.innerHTML = "<strong>No workspaces found " + (view.root ? "under root <code>" + escape(view.root) + "</code>" :
        "under " + (box.getAttribute("data-roots") || "").split(", ").map(function (r) { return "<code>" + escape(r) + "</code>"; }).join(", ")) +
        ".</strong> A workspace directory holds a <code>terraform.tfstate</code>, <code>.terraform/</code>, " +
        "<code>.terraform.lock.hcl</code>, a plan JSON or <code>.iacwatch/</code>; folders with only <code>.tf</code> files are modules.";
    } else {
      box.innerHTML = '<strong>No workspace matches this filter.</strong> <a href="' + escape(clearHref()) + '" data-clear>Show all workspaces</a>';
    }
  }

  function clearHref() {
    var q = view.q;
    view.q = "";
    var url = href([], view.column, view.desc);
    view.q = q;
    return url;
  }

  function renderSummary(shownCount) {
    var total = data.workspaces.length;
    var parts = ["Showing " + shownCount + " of " + total + " workspace" + (total === 1 ? "" : "s")];
    if (view.statuses.length) parts.push("status " + view.statuses.join(" or "));
    if (view.q) parts.push("path contains “" + escape(view.q) + "”");
    if (view.root) parts.push("root " + escape(view.root));
    var text = parts.join(" · ");
    if (view.statuses.length || view.q) text += ' · <a href="' + escape(clearHref()) + '" data-clear>Show all</a>';
    el("summary").innerHTML = text;
  }

  function renderProblems() {
    var box = el("problems");
    var errors = data.errors || [];
    box.hidden = errors.length === 0;
    box.querySelector("ul").innerHTML = errors.map(function (p) {
      return "<li><code>" + escape(p.path) + '</code> <span class="muted">' + escape(p.root) + "</span>: " + escape(p.message) + "</li>";
    }).join("");
  }

  function renderUpdated(now) {
    var box = el("updated");
    if (!lastSuccess) return;
    var iso = lastSuccess.toISOString();
    box.innerHTML = "Updated " + timeTag(iso, now);
  }

  function showConnection(message) {
    var box = el("conn");
    if (!message) { box.hidden = true; box.textContent = ""; return; }
    box.hidden = false;
    box.textContent = message;
  }

  // ---- refresh ----

  function apiUrl() {
    return BASE + "api/v1/workspaces" + (view.root ? "?root=" + encodeURIComponent(view.root) : "");
  }

  function refresh() {
    window.clearTimeout(timer);
    var requested = apiUrl();
    fetch(requested, { cache: "no-store", headers: { Accept: "application/json" } })
      .then(function (response) {
        return response.json().then(function (body) {
          if (!response.ok) {
            var message = body && body.error ? body.error.message : "HTTP " + response.status;
            throw new Error("the server answered: " + message);
          }
          return body;
        });
      })
      .then(function (body) {
        if (requested !== apiUrl()) return; // the root changed meanwhile; the next refresh is on its way
        data = body;
        lastSuccess = new Date();
        showConnection(null);
        if (!data.workspaces.length) {
          return fetch(BASE + "readyz", { cache: "no-store" }).then(function (r) { ready = r.ok; }, function () { ready = true; });
        }
        ready = true;
      })
      .then(function () {
        render();
        renderUpdated(Date.now());
        document.body.setAttribute("data-refreshed", lastSuccess.toISOString());
        document.body.setAttribute("data-refresh-cause", cause);
      })
      .catch(function (err) {
        var since = lastSuccess ? " Showing the data of " + lastSuccess.toLocaleTimeString() + "." : "";
        var why = err && err.message && err.message.indexOf("the server answered") === 0 ? err.message : "cannot reach the server";
        showConnection("Not up to date: " + why + "; retrying every " + REFRESH_MS / 1000 + " s." + since);
      })
      .then(function () {
        updateTimes(document, Date.now());
        cause = "poll";
        timer = window.setTimeout(refresh, live ? LIVE_REFRESH_MS : REFRESH_MS);
      });
  }

  // ---- the live feed ----

  function startFeed() {
    if (!window.EventSource) return;
    var feed = new EventSource(BASE + "api/v1/events");
    feed.addEventListener("open", function () {
      live = true;
      document.body.setAttribute("data-feed", "live");
    });
    feed.addEventListener("summary", function () {
      // A batch was applied: refresh once, soon (a burst of batches is one refresh).
      cause = "feed";
      window.clearTimeout(timer);
      timer = window.setTimeout(refresh, 100);
    });
    feed.addEventListener("transition", function (event) {
      var t = JSON.parse(event.data);
      if (timeline && timeline.getAttribute("data-id") === t.id) openTimeline(t.id, timeline.getAttribute("data-title"));
    });
    feed.addEventListener("error", function () {
      // The browser reconnects by itself (with Last-Event-ID) unless the server refused the feed
      // (history off): either way, poll until it is open again. Its retries fail again and
      // again while the server is away; only the first one changes the timer.
      document.body.setAttribute("data-feed", feed.readyState === EventSource.CLOSED ? "off" : "reconnecting");
      if (!live) return;
      live = false;
      window.clearTimeout(timer);
      timer = window.setTimeout(refresh, REFRESH_MS);
    });
  }

  // ---- the timeline of one workspace ----

  var timeline = null;

  function openTimeline(id, title) {
    if (!timeline) {
      timeline = document.createElement("section");
      timeline.id = "timeline";
      timeline.className = "timeline";
      var after = document.querySelector(".table-wrap");
      after.parentNode.insertBefore(timeline, after.nextSibling);
    }
    timeline.setAttribute("data-id", id);
    timeline.setAttribute("data-title", title);
    var head = '<h2>Timeline of <code>' + escape(title) + '</code></h2> <a href="#" data-close-timeline>Close</a>';
    fetch(BASE + "api/v1/workspaces/" + encodeURIComponent(id) + "/history?limit=200", { cache: "no-store", headers: { Accept: "application/json" } })
      .then(function (response) {
        return response.json().then(function (body) {
          if (!response.ok) throw new Error(body && body.error ? body.error.message : "HTTP " + response.status);
          return body;
        });
      })
      .then(function (body) {
        var now = Date.now();
        var items = body.transitions.map(function (t) {
          var to = t.to ? '<span class="badge s-' + escape(t.to) + '"><span class="dot" aria-hidden="true"></span>' + escape(t.to) + "</span>" : "vanished";
          var from = t.from ? ' <span class="muted">from ' + escape(t.from) + "</span>" : (t.to ? ' <span class="muted">first seen</span>' : "");
          var why = t.reasons.length ? ' <span class="muted">· ' + t.reasons.map(escape).join(", ") + "</span>" : "";
          return '<li data-to="' + escape(t.to || "") + '">' + timeTag(t.at, now) + " " + to + from + why + "</li>";
        });
        timeline.innerHTML = head + (items.length ? "<ol>" + items.join("") + "</ol>" : "<p>No transition recorded.</p>");
      })
      .catch(function (err) {
        timeline.innerHTML = head + "<p>The timeline cannot be shown: " + escape(err.message) + "</p>";
      });
  }

  document.addEventListener("click", function (event) {
    var close = event.target.closest("a[data-close-timeline]");
    if (close) {
      event.preventDefault();
      timeline.remove();
      timeline = null;
      return;
    }
    var cell = event.target.closest("#rows td.c-since");
    if (!cell || event.ctrlKey || event.metaKey || event.button !== 0) return;
    var tr = cell.closest("tr");
    var path = tr.querySelector(".path").textContent;
    var ws = tr.querySelector(".c-workspace").textContent;
    openTimeline(tr.getAttribute("data-id"), ws === "default" ? path : path + " (" + ws + ")");
  });

  // ---- interaction ----

  el("cards").addEventListener("click", function (event) {
    var card = event.target.closest("a[data-status]");
    if (!card || event.ctrlKey || event.metaKey || event.button !== 0) return;
    event.preventDefault();
    var s = card.getAttribute("data-status");
    var at = view.statuses.indexOf(s);
    if (event.shiftKey) { // shift-click adds or removes one status
      if (at >= 0) view.statuses.splice(at, 1);
      else view.statuses.push(s);
      view.statuses.sort(function (a, b) { return STATUSES.indexOf(a) - STATUSES.indexOf(b); });
    } else {
      view.statuses = view.statuses.length === 1 && at === 0 ? [] : [s];
    }
    hideNotice();
    remember(true);
    render();
  });

  document.querySelector("#workspaces thead").addEventListener("click", function (event) {
    var a = event.target.closest("a[data-sort]");
    if (!a || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
    event.preventDefault();
    var t = toggledSort(a.getAttribute("data-sort"));
    view.column = t.column;
    view.desc = t.desc;
    remember(true);
    render();
  });

  var search = el("q");
  search.addEventListener("input", function () {
    view.q = search.value.trim() ? search.value : "";
    remember(false);
    render();
  });
  el("search").addEventListener("submit", function (event) { event.preventDefault(); });

  document.addEventListener("click", function (event) {
    var a = event.target.closest("a[data-clear]");
    if (!a || event.ctrlKey || event.metaKey || event.button !== 0) return;
    event.preventDefault();
    view.statuses = [];
    view.q = "";
    search.value = "";
    hideNotice();
    remember(true);
    render();
  });

  function hideNotice() { el("notice").hidden = true; }

  window.addEventListener("popstate", function () {
    var root = view.root;
    view = fromAddress();
    search.value = view.q;
    if (view.root !== root) refresh();
    else render();
  });

  startFeed();
  refresh();
})();
