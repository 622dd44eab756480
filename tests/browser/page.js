// The page tests/flagd/web/test_web_sdk.py drives: the OpenFeature web SDK with the OFREP web provider and
// flagd-web.js's hook, as an app would use them, with what happened kept in window.flagdTest.
// The query string says where flagd is: ?flagd=URL&key=CLIENT_KEY&unit=UNIT&country=COUNTRY.
import { OpenFeature, ProviderEvents } from "@openfeature/web-sdk";
import { OFREPWebProvider } from "@openfeature/ofrep-web-provider";
import { flagdExposures } from "flagd-web";

const params = new URLSearchParams(location.search);
const url = params.get("flagd");
const key = params.get("key");
const log = { events: [], errors: [] };
// Nothing is sent by the timer: what this page sends goes when the test flushes or the page is left.
const flagd = flagdExposures({ url, key, batchMs: 600_000, onError: (error) => log.errors.push(error.message) });
OpenFeature.addHooks(flagd.hook);
for (const type of Object.values(ProviderEvents)) {
  OpenFeature.addHandler(type, (details) =>
    log.events.push({ type, at: Date.now(), flagsChanged: details?.flagsChanged ?? null, message: details?.message ?? null }),
  );
}
const client = OpenFeature.getClient();

/** Evaluates each [flagKey, type] as a component would, with the getter of its type. */
function render(flags) {
  const rendered = {};
  for (const [flagKey, type] of flags) {
    const details =
      type === "boolean" ? client.getBooleanDetails(flagKey, false)
      : type === "number" ? client.getNumberDetails(flagKey, -1)
      : type === "string" ? client.getStringDetails(flagKey, "")
      : client.getObjectDetails(flagKey, {});
    rendered[flagKey] = { value: details.value, variant: details.variant ?? null, reason: details.reason, errorCode: details.errorCode ?? null };
  }
  return rendered;
}

window.flagdTest = { log, flagd, render, status: () => client.providerStatus, setContext: (context) => OpenFeature.setContext(context) };
const provider = new OFREPWebProvider({ baseUrl: url, headers: [["Authorization", `Bearer ${key}`]] });
try {
  await OpenFeature.setProviderAndWait(provider, { targetingKey: params.get("unit"), country: params.get("country") });
} catch (error) {
  log.errors.push(String(error));
}
window.flagdTest.started = true;
document.getElementById("status").textContent = client.providerStatus;
