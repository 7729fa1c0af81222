// Live pages (the experiments list and an experiment's page). The server renders the state;
// this keeps it current: on websocket events it re-fetches the live part from the server
// (coalesced to at most two fetches a second) and on every (re)connect it re-syncs, because
// channel-layer delivery is at most once. The server, not the event stream, is the truth.
(function () {
  "use strict";
  const live = document.getElementById("live");
  if (!live) return;
  const connection = document.getElementById("connection");
  const MIN_INTERVAL_MS = 500;

  // --- re-render the live part from the server ---
  let timer = null, fetching = false, posting = false, again = false, lastFetch = 0, lastHtml = null;
  let asked = 0, shown = 0; // request order: an answer older than the one on screen is dropped

  function refresh() {
    if (fetching || posting) { again = true; return; } // one request at a time, in order
    if (timer) return;
    timer = setTimeout(fetchLive, Math.max(0, lastFetch + MIN_INTERVAL_MS - Date.now()));
  }

  async function fetchLive() {
    timer = null; fetching = true; lastFetch = Date.now();
    const mine = ++asked;
    try {
      const response = await fetch(live.dataset.liveUrl + location.search, { headers: { "X-Requested-With": "fetch" } });
      if (response.redirected && new URL(response.url).pathname.startsWith("/login")) {
        location.reload(); // the session ended: let the server send us to the login page
      } else if (response.ok) {
        swap(await response.text(), mine);
      }
    } catch (e) {
      // Offline for a moment: the next event or reconnect fetches again.
    } finally {
      fetching = false;
      if (again && !posting) { again = false; refresh(); }
    }
  }

  // Bring the live part up to date. Nodes that did not change are kept, not rebuilt: a button
  // replaced twice a second would swallow clicks (the node under the mouse goes away between
  // press and release), and kept nodes also keep their focus and the runs ticked for compare.
  function swap(html, order) {
    if (order < shown || html === lastHtml) return;
    shown = order; lastHtml = html;
    const focused = document.activeElement;
    const focusKey = live.contains(focused) ? selectorOf(focused) : null;
    const template = document.createElement("template");
    template.innerHTML = html;
    morphChildren(live, template.content);
    if (focusKey && !focused.isConnected) {
      // A control replaced by another (start by pause): keep the focus among the controls.
      const target = live.querySelector(focusKey) || (focusKey.startsWith("[data-action") && live.querySelector("[data-action]"));
      if (target) target.focus({ preventScroll: true });
    }
    live.dispatchEvent(new CustomEvent("live:updated", { bubbles: true }));
  }

  // Rows are matched by the run or experiment they show, so a re-ranked row moves, whole; forms
  // by where they post, so a Pause button never turns into the Start button under the pointer.
  function keyOf(node) {
    if (node.nodeType !== Node.ELEMENT_NODE) return null;
    return node.id || node.getAttribute("data-run-id") || node.getAttribute("data-experiment-id")
      || (node.nodeName === "FORM" ? node.getAttribute("action") : null);
  }

  function sameKind(a, b) {
    return a.nodeType === b.nodeType && a.nodeName === b.nodeName;
  }

  function morph(node, next) {
    if (node.nodeType !== Node.ELEMENT_NODE) {
      if (node.nodeValue !== next.nodeValue) node.nodeValue = next.nodeValue;
      return;
    }
    // A <details> the reader opened or closed stays so: "open" is theirs, not the server's.
    const kept = node.nodeName === "DETAILS" ? "open" : null;
    for (const { name } of Array.from(node.attributes)) if (name !== kept && !next.hasAttribute(name)) node.removeAttribute(name);
    for (const { name, value } of Array.from(next.attributes)) if (name !== kept && node.getAttribute(name) !== value) node.setAttribute(name, value);
    morphChildren(node, next);
  }

  function morphChildren(parent, target) {
    const keyed = new Map();
    parent.childNodes.forEach((node) => { const key = keyOf(node); if (key) keyed.set(key, node); });
    const kept = new Set();
    let cursor = parent.firstChild; // the first old node not yet matched, where the next one goes
    for (const next of Array.from(target.childNodes)) {
      while (cursor && kept.has(cursor)) cursor = cursor.nextSibling;
      const key = keyOf(next);
      let match = key ? keyed.get(key) : cursor && !keyOf(cursor) ? cursor : null;
      if (match && (kept.has(match) || !sameKind(match, next))) match = null;
      if (match) {
        if (match === cursor) cursor = cursor.nextSibling;
        else parent.insertBefore(match, cursor);
        morph(match, next);
      } else {
        parent.insertBefore(next, cursor);
        match = next;
      }
      kept.add(match);
    }
    Array.from(parent.childNodes).forEach((node) => { if (!kept.has(node)) node.remove(); });
  }

  function selectorOf(element) {
    if (element.id) return "#" + CSS.escape(element.id);
    if (element.dataset.action) return `[data-action="${CSS.escape(element.dataset.action)}"]`;
    if (element.name && element.value) return `[name="${CSS.escape(element.name)}"][value="${CSS.escape(element.value)}"]`;
    if (element.getAttribute("href")) return `a[href="${CSS.escape(element.getAttribute("href"))}"]`;
    return null;
  }

  // --- sweep controls: posted in the background, so the page (and its charts) stay put ---
  const controlError = document.getElementById("control-error");

  live.addEventListener("submit", async (event) => {
    const button = event.submitter;
    if (!button || !button.dataset.action) return; // other forms (compare, duplicate) go as usual
    event.preventDefault();
    const form = event.target;
    const mine = ++asked;
    button.disabled = true;
    posting = true; // no refresh meanwhile: one rendered before the change could come back after it
    try {
      const response = await fetch(form.action + location.search, {
        method: "POST", body: new FormData(form), headers: { "X-Requested-With": "fetch" },
      });
      if (response.status === 409) { // refused, with a message a person can act on
        showControlError(await response.text());
        again = true;
      } else if (response.ok && !response.redirected) {
        showControlError("");
        swap(await response.text(), mine);
      } else {
        HTMLFormElement.prototype.submit.call(form); // anything else: let the server show it
      }
    } catch (e) {
      HTMLFormElement.prototype.submit.call(form);
    } finally {
      button.disabled = false;
      posting = false;
      if (again && !fetching) { again = false; refresh(); }
    }
  });

  function showControlError(text) {
    if (!controlError) return;
    controlError.textContent = text;
    controlError.hidden = !text;
  }

  // --- the event feed of the experiment page ---
  const feed = document.getElementById("events");
  const FEED_MAX = 50;

  function describe(event) {
    const reason = event.stopped_reason && event.stopped_reason !== event.status ? ` (${event.stopped_reason})` : "";
    const score = event.score != null ? ` · score ${Number(event.score).toFixed(3)}` : "";
    switch (event.type) {
      case "sweep.queued": case "sweep.started": case "sweep.resumed":
        return `Sweep ${event.sweep_id} ${event.type.slice(6)}`;
      case "sweep.paused": case "sweep.stopped": case "sweep.completed": case "sweep.failed":
        return `Sweep ${event.sweep_id} ${event.status}${reason}`;
      case "run.completed": case "run.failed": case "run.pruned":
        return `Run ${event.run_id} ${event.status}${score}`;
      default:
        return null; // progress and run starts come many a second: the bar and table show them
    }
  }

  function timeElement(date) {
    const time = document.createElement("time");
    time.dateTime = date.toISOString();
    time.textContent = date.toLocaleTimeString([], { hour12: false });
    return time;
  }

  function addToFeed(event) {
    const text = describe(event);
    if (!feed || !text) return;
    const item = document.createElement("li");
    item.className = event.type.replace(".", "-");
    item.append(timeElement(new Date()), text);
    feed.prepend(item);
    while (feed.children.length > FEED_MAX) feed.lastElementChild.remove();
    const empty = document.getElementById("events-empty");
    if (empty) empty.hidden = true;
  }

  if (feed) { // the server writes UTC; show the reader's local time like the live items
    feed.querySelectorAll("time[datetime]").forEach((time) => {
      time.replaceWith(timeElement(new Date(time.getAttribute("datetime"))));
    });
  }

  // --- the socket: a live tail, reconnecting with backoff ---
  let retry = 500;

  function setConnection(state, text) {
    if (!connection) return;
    connection.className = "connection " + state;
    connection.textContent = text;
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}${live.dataset.wsPath}`);
    socket.onopen = () => {
      retry = 500;
      setConnection("live", "live");
      refresh(); // whatever happened while we were away was not delivered: ask the server
    };
    socket.onmessage = (message) => {
      try { addToFeed(JSON.parse(message.data)); } catch (e) { /* not JSON: still a reason to refresh */ }
      refresh();
    };
    socket.onclose = () => {
      setConnection("", "reconnecting…");
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 10000);
    };
  }
  connect();
})();
