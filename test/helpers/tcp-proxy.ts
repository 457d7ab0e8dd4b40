// A TCP proxy in front of a server for client tests: cuts every connection abruptly on demand (a network drop,
// not a close handshake), can refuse WebSocket upgrades as a proxy that strips them would, and lets a test watch
// or cut on what the server sends.
import { type AddressInfo, type Server, type Socket, connect, createServer } from "node:net";

export interface TcpProxy {
  readonly port: number;
  readonly base: string;
  /** Refuse WebSocket upgrades with 403, as a proxy that does not pass them would. */
  blockUpgrades: boolean;
  /** Called with each chunk the server sends to a client; return true to cut that connection before forwarding it. */
  cutOnServerData: ((chunk: Buffer) => boolean) | null;
  /** Upgrade requests seen (blocked ones included). */
  upgrades: number;
  /** Destroys every open connection at once (RST), both sides. */
  dropAll(): number;
  /** Points new connections at another port (running ones stay). */
  retarget(port: number): void;
  close(): Promise<void>;
}

const UPGRADE = /^GET [^\r\n]*\r\n(?:[^\r\n]+\r\n)*?upgrade:\s*websocket/im;

export async function startTcpProxy(targetPort: number): Promise<TcpProxy> {
  const pairs = new Set<[Socket, Socket | null]>();
  let target = targetPort;
  const cut = (pair: [Socket, Socket | null]) => {
    pairs.delete(pair);
    pair[0].resetAndDestroy();
    pair[1]?.resetAndDestroy();
  };
  const server: Server = createServer((client) => {
    const pair: [Socket, Socket | null] = [client, null];
    pairs.add(pair);
    client.on("error", () => cut(pair));
    client.once("data", (first) => {
      const upgrade = UPGRADE.test(first.toString("latin1"));
      if (upgrade) proxy.upgrades++;
      if (upgrade && proxy.blockUpgrades) {
        client.end("HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        pairs.delete(pair);
        return;
      }
      const upstream = connect(target, "127.0.0.1");
      pair[1] = upstream;
      upstream.on("error", () => cut(pair));
      upstream.write(first);
      client.pipe(upstream);
      upstream.on("data", (chunk: Buffer) => {
        if (proxy.cutOnServerData?.(chunk)) cut(pair);
        else client.write(chunk);
      });
      upstream.on("end", () => client.end());
      client.on("end", () => upstream.end());
      client.on("close", () => pairs.delete(pair));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  const proxy: TcpProxy = {
    port,
    base: `http://127.0.0.1:${port}`,
    blockUpgrades: false,
    cutOnServerData: null,
    upgrades: 0,
    dropAll() {
      const n = pairs.size;
      for (const pair of [...pairs]) cut(pair);
      return n;
    },
    retarget(next) {
      target = next;
    },
    async close() {
      proxy.dropAll();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return proxy;
}
