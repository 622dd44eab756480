/**
 * flagd-web.js: exposures and conversions from a web page to flagd, for the OpenFeature web SDK.
 *
 * An ES module with no dependencies. flagd serves it at /static/flagd-web.js; the same file is the npm-style
 * package web/flagd-openfeature (@flagd/openfeature-web-hooks) in the flagd repository, to copy into an app.
 *
 *   import { OpenFeature } from "@openfeature/web-sdk";
 *   import { OFREPWebProvider } from "@openfeature/ofrep-web-provider";
 *   import { flagdExposures } from "./flagd-web.js";
 *
 *   const flagd = flagdExposures({ url: "https://flags.example.com", key: CLIENT_KEY });
 *   OpenFeature.addHooks(flagd.hook);
 *   const headers = [["Authorization", `Bearer ${CLIENT_KEY}`]];
 *   const provider = new OFREPWebProvider({ baseUrl: "https://flags.example.com", headers });
 *   await OpenFeature.setProviderAndWait(provider, { targetingKey: "user-1" });
 *   OpenFeature.getClient().getStringValue("checkout-layout", "classic"); // the exposure is sent once
 *   flagd.track("order_paid", "user-1", { value: 49.5 });
 *
 * What it does, and why:
 * - The hook's `after` stage runs after each evaluation the page makes. When the flag's metadata says the
 *   evaluation assigned the unit from an experiment's split (`experimentExposure: true`, with `experimentKey`
 *   and `experimentPhase`), it queues an exposure: the unit is the context attribute the metadata names
 *   (`experimentUnit`, `targetingKey` by default), the attributes are the context's top-level scalars within
 *   the server's bounds. Each (experiment, phase, unit, variant) is queued once per page, however often the
 *   page re-renders; the variant is part of it so that an evaluation made while a new context was still being
 *   fetched (which the server refuses) does not stop the right one later. The server keeps one exposure per
 *   (experiment, phase, unit) in any case.
 * - `track(event, unit, {value, properties})` queues a conversion.
 * - Events go in batches (every `batchMs`, or at once when `maxBatch` are waiting) with
 *   `fetch(url + "/v1/events", {method: "POST", keepalive: true, ...})`: keepalive lets a request outlive the
 *   page, and `navigator.sendBeacon` cannot send the Authorization header. The queue is flushed when the page
 *   is hidden or left (`visibilitychange`, `pagehide`). Browsers cap the bodies of keepalive requests in flight
 *   at 64 KiB, so batches stay small.
 * - The queue holds at most `maxQueue` events; more are dropped and counted (`dropped`). A batch that fails
 *   for a reason that may pass (network, 408, 429, 5xx) is put back and sent again after `Retry-After` or a
 *   doubling delay up to 30 s; the server deduplicates a resent event by its id. Any other refusal is passed
 *   to `onError` and the batch is dropped. `close()` sends what waits once and stops (a single-page app's
 *   teardown): nothing is retried or queued after it.
 * - Event ids are UUIDv7 (time-ordered; made here, so it also works outside a secure context).
 * - Nothing here throws into the app: failures go to `onError` (by default `console.warn`).
 */

const RETRYABLE = new Set([408, 425, 429, 500, 502, 503, 504]);
const MAX_RETRY_MS = 30_000;
// The server's bounds on an exposure's attributes (flagd_sdk.evaluation.exposure) and units.
const MAX_ATTRIBUTES = 32;
const MAX_ATTRIBUTE_NAME = 64;
const MAX_ATTRIBUTE_TEXT = 256;
const MAX_UNIT_LENGTH = 256;
const MAX_REMEMBERED = 10_000;

/**
 * @param {object} options
 * @param {string} options.url the flagd server, e.g. "https://flags.example.com" (no trailing path)
 * @param {string} options.key a client key (`flagd keys create --scope client NAME --origin ORIGIN`)
 * @param {number} [options.batchMs=1000] how long an event may wait for others to share its request
 * @param {number} [options.maxBatch=50] the most events in one request
 * @param {number} [options.maxQueue=1000] the most events waiting; more are dropped
 * @param {(error: Error) => void} [options.onError] told of every failure (default console.warn)
 * @returns {{hook: object, track: Function, flush: () => Promise<void>, close: () => Promise<void>,
 *   readonly dropped: number, readonly pending: number}}
 */
export function flagdExposures({
  url,
  key,
  batchMs = 1000,
  maxBatch = 50,
  maxQueue = 1000,
  onError = (error) => console.warn("flagd-web:", error.message),
} = {}) {
  const endpoint = String(url ?? "").replace(/\/+$/, "") + "/v1/events";
  const queue = [];
  const sent = new Set();
  let dropped = 0;
  let timer;
  let retryMs = 0;
  let notBefore = 0;
  let inFlight = Promise.resolve();
  let closed = false;

  const report = (error) => {
    try {
      onError(error instanceof Error ? error : new Error(String(error)));
    } catch {
      // the app's own handler failed: nothing is left to tell
    }
  };

  const enqueue = (event) => {
    if (closed || queue.length >= maxQueue) {
      dropped += 1;
      return;
    }
    queue.push(event);
    if (queue.length >= maxBatch && Date.now() >= notBefore) {
      void flush();
    } else {
      schedule(batchMs);
    }
  };

  const schedule = (delayMs) => {
    if (timer !== undefined) return;
    timer = setTimeout(() => {
      timer = undefined;
      if (Date.now() < notBefore) schedule(0); // a retry's delay came after this timer was set
      else void flush();
    }, Math.max(delayMs, notBefore - Date.now(), 0));
  };

  const send = async (batch) => {
    let response;
    try {
      response = await fetch(endpoint, {
        method: "POST",
        keepalive: true,
        credentials: "omit",
        headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
        body: JSON.stringify({ events: batch }),
      });
    } catch (error) {
      retry(batch, undefined, error);
      return;
    }
    if (response.ok) {
      retryMs = 0;
      const answer = await response.json().catch(() => ({}));
      if (Array.isArray(answer.rejected) && answer.rejected.length > 0) {
        const first = answer.rejected[0];
        report(new Error(`${answer.rejected.length} event(s) refused: ${first.code}: ${first.message}`));
      }
      return;
    }
    const detail = await response.text().catch(() => "");
    if (RETRYABLE.has(response.status)) {
      retry(batch, response.headers.get("Retry-After"), new Error(`HTTP ${response.status} ${detail}`));
    } else {
      report(new Error(`events refused with HTTP ${response.status}: ${detail.slice(0, 300)}`));
    }
  };

  const retry = (batch, retryAfter, error) => {
    report(error);
    if (closed) {
      dropped += batch.length; // nothing is left to send it again
      return;
    }
    const seconds = Number(retryAfter);
    const doubled = Math.min(Math.max(retryMs * 2, 1000), MAX_RETRY_MS);
    retryMs = Number.isFinite(seconds) && seconds > 0 ? Math.min(seconds * 1000, MAX_RETRY_MS) : doubled;
    notBefore = Date.now() + retryMs;
    const room = Math.max(maxQueue - queue.length, 0);
    dropped += Math.max(batch.length - room, 0);
    queue.unshift(...batch.slice(0, room));
    schedule(retryMs);
  };

  /** Sends every waiting event now (in batches of maxBatch); resolves when they are answered, never rejects. */
  const flush = () => {
    if (timer !== undefined) {
      clearTimeout(timer);
      timer = undefined;
    }
    const sends = [];
    while (queue.length > 0) sends.push(send(queue.splice(0, maxBatch)));
    inFlight = Promise.all([inFlight, ...sends]).then(
      () => undefined,
      (error) => report(error),
    );
    return inFlight;
  };

  const hook = {
    after(hookContext, details) {
      try {
        const metadata = details?.flagMetadata ?? {};
        if (metadata.experimentExposure !== true || details.variant == null) return;
        const experiment = metadata.experimentKey;
        const phase = metadata.experimentPhase;
        const context = hookContext?.context ?? {};
        const path = typeof metadata.experimentUnit === "string" ? metadata.experimentUnit : "targetingKey";
        const unit = unitOf(context, path);
        if (typeof experiment !== "string" || !Number.isInteger(phase) || unit === undefined) return;
        const seen = JSON.stringify([experiment, phase, unit, details.variant]);
        if (sent.has(seen)) return;
        if (sent.size >= MAX_REMEMBERED) sent.delete(sent.values().next().value);
        sent.add(seen);
        enqueue({
          kind: "exposure",
          event_id: uuidv7(),
          timestamp: new Date().toISOString(),
          experiment,
          phase,
          variant: String(details.variant),
          unit,
          attributes: attributesOf(context),
        });
      } catch (error) {
        report(error);
      }
    },
  };

  /**
   * Queues a conversion: `event` by `unit` (the same unit the experiment splits, e.g. the targetingKey),
   * with an optional numeric `value` and an object of `properties`.
   */
  const track = (event, unit, { value, properties } = {}) => {
    try {
      const tracked = {
        kind: "track",
        event_id: uuidv7(),
        timestamp: new Date().toISOString(),
        event: String(event),
        unit: String(unit),
      };
      if (value !== undefined) tracked.value = value;
      if (properties !== undefined) tracked.properties = properties;
      enqueue(tracked);
    } catch (error) {
      report(error);
    }
  };

  const onHidden = () => {
    if (typeof document === "undefined" || document.visibilityState === "hidden") void flush();
  };
  if (typeof addEventListener === "function") {
    addEventListener("pagehide", onHidden);
    if (typeof document !== "undefined") document.addEventListener("visibilitychange", onHidden);
  }

  /** Sends what is waiting, once, and stops: later events are dropped, nothing is retried, and the page's
   * events are no longer listened to (for single-page apps that tear down, and tests). */
  const close = () => {
    closed = true;
    if (typeof removeEventListener === "function") {
      removeEventListener("pagehide", onHidden);
      if (typeof document !== "undefined") document.removeEventListener("visibilitychange", onHidden);
    }
    return flush();
  };

  return {
    hook,
    track,
    flush,
    close,
    get dropped() {
      return dropped;
    },
    get pending() {
      return queue.length;
    },
  };
}

/** The value at the dotted `path` of the context as the server writes a unit, or undefined. */
function unitOf(context, path) {
  let value = context;
  for (const part of path.split(".")) {
    if (value === null || typeof value !== "object") return undefined;
    value = value[part];
  }
  let text;
  if (typeof value === "string") text = value;
  else if (typeof value === "boolean" || (typeof value === "number" && Number.isFinite(value))) {
    text = String(value);
  }
  else return undefined;
  return text.length > 0 && text.length <= MAX_UNIT_LENGTH && !text.includes("\0") ? text : undefined;
}

/** The context's top-level scalar members an exposure keeps, by name, as the server keeps them. */
function attributesOf(context) {
  const kept = {};
  let count = 0;
  for (const name of Object.keys(context).sort()) {
    if (count >= MAX_ATTRIBUTES) break;
    if (name === "targetingKey" || !name || name.length > MAX_ATTRIBUTE_NAME || name.includes("\0")) continue;
    const value = context[name];
    const plain =
      typeof value === "boolean" ||
      (typeof value === "number" && Number.isFinite(value)) ||
      (typeof value === "string" && value.length <= MAX_ATTRIBUTE_TEXT && !value.includes("\0"));
    if (plain) {
      kept[name] = value;
      count += 1;
    }
  }
  return kept;
}

/** A UUIDv7 (RFC 9562 §5.7): 48 bits of Unix milliseconds, the version, 74 random bits, the variant. */
export function uuidv7() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  const ms = Date.now();
  const high = Math.floor(ms / 2 ** 32);
  const low = ms >>> 0;
  bytes[0] = (high >>> 8) & 0xff;
  bytes[1] = high & 0xff;
  bytes[2] = (low >>> 24) & 0xff;
  bytes[3] = (low >>> 16) & 0xff;
  bytes[4] = (low >>> 8) & 0xff;
  bytes[5] = low & 0xff;
  bytes[6] = (bytes[6] & 0x0f) | 0x70;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
