// Records OTLP/HTTP request bodies as the OpenTelemetry JavaScript SDK sends them: the same
// spans, logs and metrics are exported once with the JSON exporters
// (@opentelemetry/exporter-*-otlp-http) and once with the protobuf exporters
// (@opentelemetry/exporter-*-otlp-proto) to this script's own server on 127.0.0.1, which
// writes each body out as received. See README.md in this directory for how to run it.
//
// Usage: NODE_PATH=<dir>/node_modules node capture-otel-js.cjs <output dir>

"use strict";

const fs = require("fs");
const http = require("http");
const path = require("path");
const api = require("@opentelemetry/api");
const { SeverityNumber } = require("@opentelemetry/api-logs");
const { resourceFromAttributes } = require("@opentelemetry/resources");
const { BasicTracerProvider, BatchSpanProcessor } = require("@opentelemetry/sdk-trace-base");
const { LoggerProvider, BatchLogRecordProcessor } = require("@opentelemetry/sdk-logs");
const { MeterProvider, PeriodicExportingMetricReader } = require("@opentelemetry/sdk-metrics");

const out = process.argv[2] || __dirname;
const version = require("@opentelemetry/sdk-trace-base/package.json").version;
const bodies = []; // { path, contentType, body }

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    bodies.push({ path: req.url, contentType: req.headers["content-type"], body: Buffer.concat(chunks) });
    res.writeHead(200, { "content-type": req.headers["content-type"] });
    res.end();
  });
});

function exporters(kind, base) {
  const pkg = (signal) => require(`@opentelemetry/exporter-${signal}-otlp-${kind}`);
  return {
    traces: new (pkg("trace").OTLPTraceExporter)({ url: `${base}/v1/traces` }),
    logs: new (pkg("logs").OTLPLogExporter)({ url: `${base}/v1/logs` }),
    metrics: new (pkg("metrics").OTLPMetricExporter)({ url: `${base}/v1/metrics` }),
  };
}

// One checkout: a server span, an HTTP call, a database query, a message sent with a link to
// the message that triggered it, an internal step that records an exception, logs inside the
// server span, and a counter, a histogram and a gauge.
async function scenario(kind, base) {
  const resource = resourceFromAttributes({
    "service.name": "checkout",
    "service.namespace": "shop",
    "service.instance.id": "checkout-1",
    "service.version": "2.4.0",
  });
  const ex = exporters(kind, base);
  const tracerProvider = new BasicTracerProvider({ resource, spanProcessors: [new BatchSpanProcessor(ex.traces)] });
  const loggerProvider = new LoggerProvider({ resource, processors: [new BatchLogRecordProcessor({ exporter: ex.logs })] });
  const reader = new PeriodicExportingMetricReader({ exporter: ex.metrics, exportIntervalMillis: 600000 });
  const meterProvider = new MeterProvider({ resource, readers: [reader] });

  const tracer = tracerProvider.getTracer("checkout-tracer", "1.0.0");
  const logger = loggerProvider.getLogger("checkout-logger", "1.0.0");
  const meter = meterProvider.getMeter("checkout-meter", "1.0.0");
  const K = api.SpanKind;
  const root = api.ROOT_CONTEXT;

  const server = tracer.startSpan("POST /checkout", {
    kind: K.SERVER,
    attributes: {
      "http.request.method": "POST", "http.route": "/checkout", "url.scheme": "http", "url.path": "/checkout",
      "server.address": "shop.example", "server.port": 8080, "http.response.status_code": 200,
      "client.address": "10.1.2.3", "user.id": "u-42",
    },
  }, root);
  const inServer = api.trace.setSpan(root, server);
  logger.emit({ severityNumber: SeverityNumber.INFO, severityText: "INFO", body: "checkout started", attributes: { "cart.items": 3 }, context: inServer });

  const call = tracer.startSpan("GET", {
    kind: K.CLIENT,
    attributes: { "http.request.method": "GET", "url.full": "http://inventory.example:9090/items/7?fields=all", "server.address": "inventory.example", "server.port": 9090, "http.response.status_code": 404 },
  }, inServer);
  call.setStatus({ code: api.SpanStatusCode.ERROR });
  call.end();

  const db = tracer.startSpan("SELECT orders", {
    kind: K.CLIENT,
    attributes: { "db.system.name": "postgresql", "db.namespace": "shop", "db.query.text": "SELECT * FROM orders WHERE id = $1", "server.address": "db.example", "server.port": 5432 },
  }, inServer);
  db.end();

  const send = tracer.startSpan("publish orders", {
    kind: K.PRODUCER,
    attributes: { "messaging.system": "kafka", "messaging.destination.name": "orders", "messaging.operation.type": "send", "server.address": "kafka.example" },
    links: [{ context: { traceId: "0af7651916cd43dd8448eb211c80319c", spanId: "b7ad6b7169203331", traceFlags: 1 }, attributes: { "link.kind": "trigger" } }],
  }, inServer);
  send.end();

  const step = tracer.startSpan("compute totals", { kind: K.INTERNAL }, inServer);
  step.recordException(Object.assign(new RangeError("discount below zero"), { stack: "RangeError: discount below zero\n    at totals (checkout.js:12:7)" }));
  step.addEvent("totals computed", { "order.total": 42.5 });
  step.setStatus({ code: api.SpanStatusCode.ERROR, message: "discount below zero" });
  step.end();

  logger.emit({ severityNumber: SeverityNumber.ERROR, severityText: "ERROR", body: "payment declined", attributes: { "payment.provider": "contoso" }, context: inServer });
  logger.emit({ severityNumber: SeverityNumber.DEBUG, body: { event: "audit", fields: ["a", "b"] } });
  server.end();

  meter.createCounter("orders.placed", { unit: "{order}" }).add(3, { "payment.method": "card" });
  meter.createHistogram("checkout.duration", { unit: "ms" }).record(120, { route: "/checkout" });
  meter.createHistogram("checkout.duration", { unit: "ms" }).record(80, { route: "/checkout" });
  meter.createGauge("queue.depth").record(17);

  await tracerProvider.forceFlush();
  await loggerProvider.forceFlush();
  await tracerProvider.shutdown();
  await loggerProvider.shutdown();
  await meterProvider.shutdown();
}

async function main() {
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const base = `http://127.0.0.1:${server.address().port}`;
  for (const [kind, ext] of [["http", "json"], ["proto", "pb"]]) {
    bodies.length = 0;
    await scenario(kind, base);
    for (const signal of ["traces", "logs", "metrics"]) {
      const got = bodies.filter((b) => b.path === `/v1/${signal}`);
      if (got.length !== 1) throw new Error(`${kind}: ${got.length} ${signal} bodies`);
      const file = path.join(out, `otel-js-${version}-${signal}.${ext}`);
      fs.writeFileSync(file, got[0].body);
      console.log(`${file}: ${got[0].body.length} bytes, ${got[0].contentType}`);
    }
  }
  server.close();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
