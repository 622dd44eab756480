// flagd-web.js on its own, in node's test runner with a fake fetch: what it sends, when, and what it does
// when flagd refuses or cannot be reached. tests/flagd/web/test_flagd_web_js.py runs it (`node --test`).
import assert from "node:assert/strict";
import { test } from "node:test";
import { flagdExposures, uuidv7 } from "../../flagd/web/static/flagd-web.js";

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** A fetch that answers each call with the next of `answers` (the last one repeats) and keeps the calls. */
function fakeFetch(...answers) {
  const calls = [];
  const fetch = async (url, init) => {
    calls.push({ url, init, events: JSON.parse(init.body).events });
    const answer = answers[Math.min(calls.length - 1, answers.length - 1)];
    if (answer instanceof Error) throw answer;
    return new Response(JSON.stringify(answer.body ?? { accepted: 1, rejected: [] }), {
      status: answer.status ?? 200,
      headers: answer.headers ?? {},
    });
  };
  return { fetch, calls };
}

function withFetch(fake, body) {
  const original = globalThis.fetch;
  globalThis.fetch = fake.fetch;
  return Promise.resolve(body()).finally(() => {
    globalThis.fetch = original;
  });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function evaluated(flagd, { unit = "user-1", variant = "one-page", exposure = true, extra = {} } = {}) {
  flagd.hook.after(
    { flagKey: "checkout-page", context: { targetingKey: unit, country: "NL", ...extra } },
    {
      value: variant,
      variant,
      flagMetadata: { experimentKey: "one-page-checkout", experimentPhase: 1, experimentExposure: exposure },
    },
  );
}

test("an exposure is sent once per experiment, phase and unit however often the flag is evaluated", () => {
  const fake = fakeFetch({});
  return withFetch(fake, async () => {
    const flagd = flagdExposures({ url: "http://flags.test/", key: "k", batchMs: 10_000, onError: () => {} });
    for (let i = 0; i < 50; i++) evaluated(flagd);
    evaluated(flagd, { unit: "user-2" });
    evaluated(flagd, { unit: "user-3", exposure: false });
    assert.equal(flagd.pending, 2);
    await flagd.flush();
    assert.equal(fake.calls.length, 1);
    const [call] = fake.calls;
    assert.equal(call.url, "http://flags.test/v1/events");
    assert.equal(call.init.method, "POST");
    assert.equal(call.init.keepalive, true);
    assert.equal(call.init.credentials, "omit");
    assert.deepEqual(call.init.headers, { Authorization: "Bearer k", "Content-Type": "application/json" });
    assert.deepEqual(
      call.events.map((e) => [e.kind, e.experiment, e.phase, e.variant, e.unit]),
      [
        ["exposure", "one-page-checkout", 1, "one-page", "user-1"],
        ["exposure", "one-page-checkout", 1, "one-page", "user-2"],
      ],
    );
    assert.deepEqual(call.events[0].attributes, { country: "NL" });
    assert.match(call.events[0].event_id, UUID_V7);
    assert.ok(!Number.isNaN(Date.parse(call.events[0].timestamp)));
    await flagd.close();
  });
});

test("the unit is the context attribute the metadata names, and attributes keep what the server keeps", () => {
  const fake = fakeFetch({});
  return withFetch(fake, async () => {
    const flagd = flagdExposures({ url: "http://flags.test", key: "k", batchMs: 10_000 });
    flagd.hook.after(
      { context: { targetingKey: "device-9", account: { id: 42 }, plan: "pro", tags: ["a"], long: "x".repeat(300) } },
      {
        variant: "b",
        flagMetadata: { experimentKey: "e", experimentPhase: 2, experimentExposure: true, experimentUnit: "account.id" },
      },
    );
    await flagd.flush();
    const [event] = fake.calls[0].events;
    assert.equal(event.unit, "42");
    assert.deepEqual(event.attributes, { plan: "pro" });
    await flagd.close();
  });
});

test("track queues a conversion with its value and properties", () => {
  const fake = fakeFetch({});
  return withFetch(fake, async () => {
    const flagd = flagdExposures({ url: "http://flags.test", key: "k", batchMs: 10_000 });
    flagd.track("order_paid", "user-1", { value: 49.5, properties: { currency: "EUR" } });
    flagd.track("checkout_completed", "user-1");
    await flagd.flush();
    const [paid, completed] = fake.calls[0].events;
    assert.deepEqual(
      { ...paid, event_id: undefined, timestamp: undefined },
      { kind: "track", event: "order_paid", unit: "user-1", value: 49.5, properties: { currency: "EUR" }, event_id: undefined, timestamp: undefined },
    );
    assert.equal("value" in completed, false);
    assert.notEqual(paid.event_id, completed.event_id);
    await flagd.close();
  });
});

test("events wait batchMs, a full batch goes at once, and a flush splits into batches of maxBatch", () => {
  const fake = fakeFetch({});
  return withFetch(fake, async () => {
    const flagd = flagdExposures({ url: "http://flags.test", key: "k", batchMs: 30, maxBatch: 3 });
    flagd.track("a", "u");
    assert.equal(fake.calls.length, 0);
    await sleep(80);
    assert.equal(fake.calls.length, 1);
    for (let i = 0; i < 3; i++) flagd.track("b", "u");
    assert.equal(fake.calls.length, 2);
    const unbatched = flagdExposures({ url: "http://flags.test", key: "k", batchMs: 10_000, maxBatch: 2 });
    for (let i = 0; i < 1; i++) unbatched.track("c", "u");
    await flagd.close();
    await unbatched.close();
    assert.deepEqual(fake.calls.map((c) => c.events.length), [1, 3, 1]);
  });
});

test("the queue is bounded: what does not fit is dropped and counted", () => {
  const fake = fakeFetch({});
  return withFetch(fake, async () => {
    const flagd = flagdExposures({ url: "http://flags.test", key: "k", batchMs: 10_000, maxBatch: 100, maxQueue: 3 });
    for (let i = 0; i < 5; i++) flagd.track("e", "u");
    assert.equal(flagd.pending, 3);
    assert.equal(flagd.dropped, 2);
    await flagd.close();
  });
});

test("a batch answered 503 is sent again after Retry-After, with the same event ids", () => {
  const fake = fakeFetch({ status: 503, headers: { "Retry-After": "0.05" } }, {});
  return withFetch(fake, async () => {
    const errors = [];
    const flagd = flagdExposures({ url: "http://flags.test", key: "k", batchMs: 10_000, onError: (e) => errors.push(e) });
    flagd.track("e", "u");
    await flagd.flush();
    assert.equal(flagd.pending, 1);
    await sleep(150);
    assert.equal(fake.calls.length, 2);
    assert.equal(fake.calls[1].events[0].event_id, fake.calls[0].events[0].event_id);
    assert.equal(flagd.pending, 0);
    assert.equal(errors.length, 1);
    await flagd.close();
  });
});

test("a refusal is told to onError and not sent again; a network failure is retried", () => {
  const fake = fakeFetch({ status: 403, body: { error: { code: "forbidden" } } }, new TypeError("Failed to fetch"), {});
  return withFetch(fake, async () => {
    const errors = [];
    const flagd = flagdExposures({ url: "http://flags.test", key: "k", batchMs: 10_000, onError: (e) => errors.push(e.message) });
    flagd.track("refused", "u");
    await flagd.flush();
    assert.equal(flagd.pending, 0);
    assert.match(errors[0], /HTTP 403/);
    flagd.track("lost", "u");
    await flagd.flush();
    assert.equal(flagd.pending, 1);
    assert.match(errors[1], /Failed to fetch/);
    await flagd.close();
    assert.deepEqual(fake.calls.map((c) => c.events[0].event), ["refused", "lost", "lost"]);
  });
});

test("events the server refuses in a 200 answer are told to onError", () => {
  const fake = fakeFetch({ body: { accepted: 0, rejected: [{ index: 0, code: "unknown_variant", message: "no" }] } });
  return withFetch(fake, async () => {
    const errors = [];
    const flagd = flagdExposures({ url: "http://flags.test", key: "k", batchMs: 10_000, onError: (e) => errors.push(e.message) });
    evaluated(flagd);
    await flagd.close();
    assert.match(errors[0], /unknown_variant/);
  });
});

test("nothing throws into the app: not a broken hook context, a failing fetch or a failing onError", () => {
  const fake = fakeFetch(new Error("boom"));
  return withFetch(fake, async () => {
    const flagd = flagdExposures({ url: "http://flags.test", key: "k", batchMs: 10_000, onError: () => { throw new Error("app"); } });
    flagd.hook.after(undefined, undefined);
    flagd.hook.after({ context: null }, { variant: "a", flagMetadata: { experimentExposure: true } });
    flagd.hook.after({ get context() { throw new Error("getter"); } }, { variant: "a", flagMetadata: { experimentExposure: true, experimentKey: "e", experimentPhase: 1 } });
    flagd.track("e", { toString() { throw new Error("unit"); } });
    flagd.track("e", "u");
    await flagd.flush();
    await flagd.close();
  });
});

test("event ids are UUIDv7, ordered by time", async () => {
  const first = uuidv7();
  await sleep(3);
  const second = uuidv7();
  assert.match(first, UUID_V7);
  assert.ok(first < second);
  const millis = parseInt(second.replaceAll("-", "").slice(0, 12), 16);
  assert.ok(Math.abs(millis - Date.now()) < 1000);
});
