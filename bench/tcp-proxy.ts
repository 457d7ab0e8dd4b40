// A TCP proxy on 127.0.0.1 in front of a bench server, so a "network drop" is a real TCP reset on both sides
// (no close handshake) and a client has to notice it the way it would notice a dead network.
import { type AddressInfo, type Server, type Socket, connect, createServer } from "node:net";
import { HOST } from "./servers/index.js";

export class TcpProxy {
  private readonly pairs = new Set<[Socket, Socket]>();

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  /** Listens on an ephemeral port and forwards every connection to `targetPort` on 127.0.0.1. */
  static async start(targetPort: number): Promise<TcpProxy> {
    let proxy: TcpProxy | null = null;
    const server = createServer((client) => proxy?.accept(client, targetPort));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, HOST, () => resolve());
    });
    proxy = new TcpProxy(server, (server.address() as AddressInfo).port);
    return proxy;
  }

  get base(): string {
    return `http://${HOST}:${this.port}`;
  }

  /** Open connection pairs (client side and server side). */
  get open(): number {
    return this.pairs.size;
  }

  /** Resets every open connection on both sides at once; returns how many there were. */
  resetAll(): number {
    const n = this.pairs.size;
    for (const pair of [...this.pairs]) this.cut(pair);
    return n;
  }

  async close(): Promise<void> {
    this.resetAll();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: Socket, targetPort: number): void {
    client.setNoDelay(true);
    const upstream = connect({ host: HOST, port: targetPort, noDelay: true });
    const pair: [Socket, Socket] = [client, upstream];
    this.pairs.add(pair);
    // Bytes the client sends before the upstream connects wait in the pipe's buffer.
    client.pipe(upstream);
    upstream.pipe(client);
    client.on("error", () => this.cut(pair));
    upstream.on("error", () => this.cut(pair));
    // A clean end travels through the pipes as a FIN; the pair is forgotten once both sides are gone.
    const settle = () => {
      if (client.destroyed && upstream.destroyed) this.pairs.delete(pair);
    };
    client.on("close", settle);
    upstream.on("close", settle);
  }

  private cut(pair: [Socket, Socket]): void {
    if (!this.pairs.delete(pair)) return;
    // RST, not FIN: what a client sees when a middlebox or the network drops the connection.
    for (const socket of pair) if (!socket.destroyed) socket.resetAndDestroy();
  }
}
