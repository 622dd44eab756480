// The live events page (/events/live): polls /events/live/rows every 2 s for the unit in the form and lists its
// events, newest last, with the plan's verdict of each and a checklist above. Everything shown comes from an app
// (units, names, properties), so it is only ever set as text, never as HTML.
"use strict";
(() => {
  const POLL_MS = 2000;
  const KEEP = 500;
  const root = document.getElementById("live-events");
  const unit = root ? root.dataset.unit : "";
  if (!unit) return;
  const list = document.getElementById("live-rows");
  const summary = document.getElementById("live-summary");
  const status = document.getElementById("live-status");
  const events = new Map(); // "kind:id" -> event; an event sent again replaces itself in place
  let cursor = null;
  let planExists = true;

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function when(iso) {
    const at = new Date(iso);
    return at.toLocaleTimeString([], { hour12: false }) + "." + String(at.getMilliseconds()).padStart(3, "0");
  }

  function row(event) {
    const bad = event.check !== null && !event.check.matches;
    const item = el("li", bad ? "bad" : "ok");
    item.dataset.kind = event.kind;
    item.dataset.id = event.id;
    const head = el("div", "head");
    head.append(el("span", "when", when(event.at)), el("span", "kind", event.kind), el("span", "name", event.name));
    if (event.kind === "track") {
      if (event.value !== null) head.append(el("span", "value", "value " + event.value));
      head.append(el("span", "verdict", !planExists ? "no tracking plan" : bad ? "does not match the plan" : "matches the plan"));
    } else {
      head.append(el("span", "variant", "variant " + event.variant + " (phase " + event.phase + ", " + event.source + ")"));
    }
    if (event.repeated) {
      const ms = Math.round(event.repeatSeconds * 1000);
      head.append(el("span", "repeat", "fired again within 1 s (" + ms + " ms after the previous one)"));
    }
    item.append(head);
    if (bad) {
      const problems = el("ul", "problems");
      for (const v of event.check.violations) {
        const problem = el("li", "", v.message + " ");
        problem.append(el("small", "", "(" + v.code.replaceAll("_", " ") + ", " + v.path + ")"));
        problems.append(problem);
      }
      item.append(problems);
    }
    const data = event.kind === "track" ? event.properties : event.attributes;
    if (data && Object.keys(data).length) item.append(el("code", "data", JSON.stringify(data)));
    return item;
  }

  function line(ok, text) {
    return el("li", ok ? "ok" : "bad", text);
  }

  function count(n, what) {
    return n + " " + what + (n === 1 ? "" : "s");
  }

  function drawSummary(all) {
    const track = all.filter((e) => e.kind === "track");
    const unplanned = [...new Set(track.filter((e) => !e.check.planned).map((e) => e.name))];
    const wrong = track.filter((e) => !e.check.matches);
    const repeats = all.filter((e) => e.repeated);
    const items = [
      line(all.length > 0, count(all.length, "event") + " seen: " + count(track.length, "track event") + ", " + count(all.length - track.length, "exposure")),
    ];
    if (!planExists) {
      items.push(line(false, "No tracking plan: events are not checked (add an events: section to the flags file)"));
    } else {
      items.push(unplanned.length === 0
        ? line(true, "Every track event is in the plan")
        : line(false, count(unplanned.length, "event name") + " not in the plan: " + unplanned.join(", ")));
      items.push(wrong.length === 0
        ? line(true, "No violation: every track event matches the plan")
        : line(false, wrong.length + " of " + count(track.length, "track event") + " do not match the plan"));
    }
    items.push(repeats.length === 0
      ? line(true, "No event fired twice within 1 s")
      : line(false, count(repeats.length, "event") + " fired again within 1 s"));
    summary.replaceChildren(...(all.length ? items : [el("li", "muted", "No event of this unit yet in the last hour; new ones appear here within seconds.")]));
  }

  function draw() {
    const all = [...events.values()];
    list.replaceChildren(...all.map(row));
    drawSummary(all);
  }

  async function poll() {
    let again = POLL_MS;
    try {
      const url = new URL("/events/live/rows", window.location.origin);
      url.searchParams.set("unit", unit);
      if (cursor !== null) url.searchParams.set("after", cursor);
      const answer = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
      const body = await answer.json();
      if (!answer.ok) {
        status.textContent = body.error ? body.error.message : "The server answered " + answer.status + ".";
        if (answer.status === 401 || answer.status === 400) return; // asking again would not help
      } else {
        planExists = body.planExists;
        for (const event of body.events) events.set(event.kind + ":" + event.id, event);
        while (events.size > KEEP) events.delete(events.keys().next().value);
        cursor = body.cursor;
        if (body.events.length) draw();
        status.textContent = "Watching; last looked at " + new Date().toLocaleTimeString([], { hour12: false }) + ".";
        if (body.more) again = 0;
      }
    } catch (error) {
      status.textContent = "Cannot reach the server; trying again.";
    }
    window.setTimeout(poll, again);
  }

  poll();
})();
