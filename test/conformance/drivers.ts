// Every way the conformance scenarios reach a server: the raw WebSocket and SSE + POST drivers, and
// @agentwire/client straight over WebSocket, on its SSE fallback behind a proxy that refuses upgrades, and
// through nginx with the documented recipe. A scenario file runs over the ones whose capabilities it needs.
import { requireNginxOrSkip, startNginx } from "../helpers/nginx.js";
import { TcpProxy } from "../../bench/tcp-proxy.js";
import { clientDriver } from "./client-driver.js";
import type { Driver } from "./driver.js";
import { sseDriver } from "./sse-driver.js";
import { wsDriver } from "./ws-driver.js";

// Locally a missing nginx leaves its driver out, loudly; in CI it is a failure.
const nginx = requireNginxOrSkip();

const clientOverWebSocket = clientDriver({ name: "client/websocket", transport: "websocket", expect: "websocket" });

/** `auto` behind a proxy that answers every upgrade 403: the client must end up on SSE + POST. */
const clientOnFallback = clientDriver({
  name: "client/sse-fallback",
  transport: "auto",
  expect: "sse",
  async front(server) {
    const proxy = await TcpProxy.start(server.port);
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
    const running = await startNginx(nginx as string, server.port);
    return { base: running.base, close: () => running.stop() };
  },
});

export const drivers: readonly Driver[] = [wsDriver, sseDriver, clientOverWebSocket, clientOnFallback, ...(nginx === null ? [] : [clientThroughNginx])];
