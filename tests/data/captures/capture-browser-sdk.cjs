// Records what the Application Insights JavaScript SDK (@microsoft/applicationinsights-web)
// sends from a real browser: a page on 127.0.0.1 loads the SDK bundle from node_modules, its
// connection string points at this script's own server, Chromium (headless) opens the page, and
// every POST to /v2/track is written out. See README.md in this directory for how to run it.
//
// Usage: NODE_PATH=<dir>/node_modules node capture-browser-sdk.cjs <output dir>

"use strict";

const fs = require("fs");
const http = require("http");
const os = require("os");
const path = require("path");
const zlib = require("zlib");
const { chromium } = require("playwright-core");

const sdkPackage = require.resolve("@microsoft/applicationinsights-web/package.json");
const sdkVersion = require(sdkPackage).version;
const bundle = path.join(path.dirname(sdkPackage), "dist/es5/applicationinsights-web.js");
const out = process.argv[2] || __dirname;
const name = `browser-applicationinsights-web-${sdkVersion}`;

const posts = []; // { headers, items }
const apiCalls = []; // headers of the page's own fetch to /api

function page(port) {
  const cs = `InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=http://127.0.0.1:${port}`;
  return `<!doctype html><html><head><meta charset="utf-8"><title>Orders</title>
<script src="/sdk.js"></script>
<script>
  var appInsights = new Microsoft.ApplicationInsights.ApplicationInsights({ config: {
    connectionString: ${JSON.stringify(cs)},
    maxBatchInterval: 250,
    distributedTracingMode: 2,
    enableRequestHeaderTracking: true,
    enableResponseHeaderTracking: true,
    enableAutoRouteTracking: false
  }});
  appInsights.loadAppInsights();
  appInsights.context.application.ver = "1.2.3";
  appInsights.setAuthenticatedUserContext("alice@contoso", "contoso", true);
  window.addEventListener("load", function () {
    // After load, so that the navigation timings are complete: the SDK sends the page view
    // with its duration, and the page load timings as PageviewPerformance.
    setTimeout(function () {
      appInsights.trackPageView({ name: "Orders", properties: { screen: "list" } });
      fetch("/api/orders/7").then(function (r) { return r.json(); }).then(function () {
        appInsights.trackEvent({ name: "order opened" }, { orderId: "7" });
        appInsights.trackTrace({ message: "order 7 shown", severityLevel: 1 });
        appInsights.trackException({ exception: new TypeError("price is undefined"), severityLevel: 3 });
        appInsights.trackMetric({ name: "cart items", average: 3 });
        appInsights.flush();
        document.title = "done";
      });
    }, 300);
  });
</script></head><body><h1>Orders</h1></body></html>`;
}

function readBody(req) {
  return new Promise((resolve) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      let body = Buffer.concat(chunks);
      if ((req.headers["content-encoding"] || "").includes("gzip")) body = zlib.gunzipSync(body);
      resolve(body.toString("utf8"));
    });
  });
}

const server = http.createServer(async (req, res) => {
  const port = server.address().port;
  if (req.method === "GET" && req.url === "/") {
    res.writeHead(200, { "content-type": "text/html" });
    return res.end(page(port));
  }
  if (req.method === "GET" && req.url === "/sdk.js") {
    res.writeHead(200, { "content-type": "application/javascript" });
    return res.end(fs.readFileSync(bundle));
  }
  if (req.method === "GET" && req.url.startsWith("/api/")) {
    apiCalls.push(req.headers);
    res.writeHead(200, { "content-type": "application/json", "request-context": "appId=cid-v1:backend-app" });
    return res.end(JSON.stringify({ id: 7, total: 42 }));
  }
  if (req.method === "OPTIONS") {
    res.writeHead(204, { "access-control-allow-origin": "*", "access-control-allow-headers": "*" });
    return res.end();
  }
  if (req.method === "POST" && req.url.includes("/track")) {
    const text = await readBody(req);
    const items = text.trim().startsWith("[") ? JSON.parse(text) : text.split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l));
    posts.push({ url: req.url, headers: req.headers, items });
    res.writeHead(200, { "content-type": "application/json", "access-control-allow-origin": "*" });
    return res.end(JSON.stringify({ itemsReceived: items.length, itemsAccepted: items.length, errors: [] }));
  }
  res.writeHead(404);
  res.end();
});

function types() {
  return new Set(posts.flatMap((p) => p.items.map((i) => i.data && i.data.baseType)));
}

async function main() {
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const port = server.address().port;
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "ai-capture-"));
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
  });
  const tab = await browser.newPage();
  await tab.goto(`http://127.0.0.1:${port}/`);
  await tab.waitForFunction(() => document.title === "done", null, { timeout: 20000 });
  const want = ["PageviewData", "PageviewPerformanceData", "RemoteDependencyData", "EventData", "MessageData", "ExceptionData", "MetricData"];
  const deadline = Date.now() + 20000;
  while (!want.every((t) => types().has(t)) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
  }
  const userAgent = await tab.evaluate(() => navigator.userAgent);
  await browser.close();
  server.close();
  fs.rmSync(profile, { recursive: true, force: true });
  const missing = want.filter((t) => !types().has(t));
  if (missing.length) throw new Error(`not sent: ${missing.join(", ")}`);

  const lines = posts.flatMap((p) => p.items.map((i) => JSON.stringify(i)));
  fs.writeFileSync(path.join(out, `${name}.ndjson`), lines.join("\n") + "\n");
  const keep = ["content-type", "content-encoding", "sdk-context", "origin", "user-agent"];
  const headers = [`browser: ${userAgent}`, ""];
  for (const p of posts) {
    headers.push(`POST ${p.url} (${p.items.length} items: ${p.items.map((i) => i.data.baseType).join(", ")})`);
    for (const k of keep) if (p.headers[k]) headers.push(`${k}: ${p.headers[k]}`);
    headers.push("");
  }
  for (const h of apiCalls) {
    headers.push("GET /api/orders/7 (the page's fetch)");
    for (const k of ["traceparent", "request-id", "request-context", "tracestate"]) if (h[k]) headers.push(`${k}: ${h[k]}`);
    headers.push("");
  }
  fs.writeFileSync(path.join(out, `${name}-headers.txt`), headers.join("\n"));
  console.log(`${lines.length} envelopes in ${posts.length} posts -> ${path.join(out, name)}.ndjson`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
