// Records what the unmodified npm package `applicationinsights` 2.x sends with pre-aggregated
// standard metrics, performance counters and an Entra ID (AAD) credential.
//
// Usage: npm install applicationinsights@2.9.8 && node capture-standard-metrics.cjs <out-dir>
//
// One process holds three HTTP servers on 127.0.0.1:
// - a stand-in for ingestion (POST /v2.1/track), recording each post's headers and its
//   gunzipped body; it answers 401 to the first post (as ingestion answers an expired or
//   missing token), 200 with a Breeze TrackResponse to the rest;
// - the instrumented app's server (requests with 200, 404 and 500);
// - a downstream server the app calls (dependencies).
// The SDK gets a connection string with IngestionEndpoint=http://127.0.0.1:<port>, fixed
// sampling at 50 % (so that sampled-out items still count in the metrics) and a token
// credential object whose getToken calls are recorded. The script waits for two 60 s
// collection intervals, then writes the recording.
"use strict";
const http = require("http");
const zlib = require("zlib");
const fs = require("fs");
const path = require("path");

const OUT = process.argv[2] || "out";
const INGEST_PORT = 47101, APP_PORT = 47102, DOWN_PORT = 47103;
const IKEY = "11111111-2222-3333-4444-555555555555";
const log = [];
const t0 = Date.now();
const rec = (o) => log.push({ t_ms: Date.now() - t0, ...o });

let posts = 0;
http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    let body = Buffer.concat(chunks);
    if (req.headers["content-encoding"] === "gzip") body = zlib.gunzipSync(body);
    const lines = body.toString("utf8").split("\n").filter((l) => l.length > 0);
    posts += 1;
    const status = posts === 1 ? 401 : 200;
    rec({ kind: "ingestion", n: posts, method: req.method, path: req.url,
          headers: req.rawHeaders, status, envelopes: lines.map((l) => JSON.parse(l)) });
    const answer = status === 200
      ? JSON.stringify({ itemsReceived: lines.length, itemsAccepted: lines.length, errors: [] })
      : "";
    res.writeHead(status, { "Content-Type": "application/json" });
    res.end(answer);
  });
}).listen(INGEST_PORT, "127.0.0.1");

http.createServer((req, res) => {
  res.writeHead(req.url === "/fail" ? 503 : 200);
  res.end("down");
}).listen(DOWN_PORT, "127.0.0.1");

const appInsights = require("applicationinsights");
let tokens = 0;
const credential = {
  getToken: async (scopes, options) => {
    tokens += 1;
    rec({ kind: "getToken", n: tokens, scopes });
    return { token: "token-" + tokens, expiresOnTimestamp: Date.now() + 3600 * 1000 };
  },
};
appInsights
  .setup("InstrumentationKey=" + IKEY + ";IngestionEndpoint=http://127.0.0.1:" + INGEST_PORT)
  .setAutoCollectRequests(true)
  .setAutoCollectDependencies(true)
  .setAutoCollectExceptions(false)
  .setAutoCollectConsole(false)
  .setAutoCollectPerformance(true, false)
  .setAutoCollectPreAggregatedMetrics(true)
  .setAutoCollectHeartbeat(false)
  .setSendLiveMetrics(false)
  .setInternalLogging(false, false)
  .setUseDiskRetryCaching(true);
const client = appInsights.defaultClient;
client.config.samplingPercentage = 50;
client.config.aadTokenCredential = credential;
client.context.tags[client.context.keys.cloudRole] = "capture-role";
client.context.tags[client.context.keys.cloudRoleInstance] = "capture-instance";
appInsights.start();

const get = (port, p) => new Promise((resolve) => {
  http.get({ host: "127.0.0.1", port, path: p }, (r) => { r.resume(); r.on("end", resolve); })
    .on("error", () => resolve());
});

http.createServer(async (req, res) => {
  await get(DOWN_PORT, req.url === "/error" ? "/fail" : "/ok");
  if (req.url === "/error") {
    client.trackException({ exception: new Error("boom") });
    res.writeHead(500);
  } else if (req.url === "/missing") {
    res.writeHead(404);
  } else {
    client.trackTrace({ message: "handled", severity: 1 });
    res.writeHead(200);
  }
  res.end("ok");
}).listen(APP_PORT, "127.0.0.1");

async function main() {
  await new Promise((r) => setTimeout(r, 500));
  rec({ kind: "phase", what: "20 requests: 14 /ok, 3 /missing, 3 /error" });
  for (let i = 0; i < 20; i++) {
    await get(APP_PORT, i % 7 === 3 ? "/missing" : i % 7 === 5 ? "/error" : "/ok");
  }
  client.flush();
  await new Promise((r) => setTimeout(r, 65000));
  rec({ kind: "phase", what: "10 more /ok requests" });
  for (let i = 0; i < 10; i++) await get(APP_PORT, "/ok");
  client.flush();
  await new Promise((r) => setTimeout(r, 62000));
  client.flush();
  await new Promise((r) => setTimeout(r, 3000));
  fs.mkdirSync(OUT, { recursive: true });
  fs.writeFileSync(path.join(OUT, "recording.ndjson"), log.map((l) => JSON.stringify(l)).join("\n") + "\n");
  process.exit(0);
}
main();
