// Every way the conformance scenarios reach a server: the raw WebSocket and SSE + POST drivers, and
// @agentwire/client straight over WebSocket, on its SSE fallback behind a proxy that refuses upgrades, and
// through nginx with the documented recipe. A scenario file runs over the ones whose capabilities it needs.
import { findNginx, startNginx } from "../helpers/nginx.js";
import { startTcpProxy } from "../helpers/tcp-proxy.js";
import { clientDriver } from "./client-driver.js";
import type { Driver } from "./driver.js";
import { sseDriver } from "./sse-driver.js";
import { wsDriver } from "./ws-driver.js";

const nginx = findNginx();
// As test/integration/sse-nginx.test.ts: locally a missing nginx leaves its driver out, loudly; in CI its setup fails.
const withoutNginx = nginx === null && !process.env.CI;
if (withoutNginx) {
  console.warn("\n*** nginx is not installed: the conformance scenarios do NOT run through the client behind nginx (apt-get install nginx-light) ***\n");
}

const clientOverWebSocket = clientDriver({ name: "client/websocket", transport: "websocket", expect: "websocket" });

/** `auto` behind a proxy that answers every upgrade 403: the client must end up on SSE + POST. */
const clientOnFallback = clientDriver({
  name: "client/sse-fallback",
  transport: "auto",
  expect: "sse",
  async front(server) {
    const proxy = await startTcpProxy(server.port);
    proxy.blockUpgrades = true;
    return proxy;
  },
});

/** `auto` through the recipe in docs/deploy/nginx.conf, which passes upgrades: the client must stay on WebSocket. */
const clientThroughNginx = clientDriver({
  name: "client/nginx",
  transport: "auto",
  expect: "websocket",
  async front(server) {
    if (nginx === null) throw new Error("nginx is required in CI: install nginx-light");
    const running = await startNginx(nginx, server.port);
    return { base: running.base, close: () => running.stop() };
  },
});

export const drivers: readonly Driver[] = [wsDriver, sseDriver, clientOverWebSocket, clientOnFallback, ...(withoutNginx ? [] : [clientThroughNginx])];
