// A TCP proxy on 127.0.0.1 in front of a server, so a "network drop" is a real TCP reset on both sides (no close
// handshake) and a client has to notice it the way it would notice a dead network. For the client tests it can
// also refuse WebSocket upgrades (as a proxy that strips them would), cut a connection on what the server sends,
// and point new connections elsewhere.
import { type AddressInfo, type Server, type Socket, connect, createServer } from "node:net";
import { HOST } from "./servers/index.js";

const UPGRADE = /^GET [^\r\n]*\r\n(?:[^\r\n]+\r\n)*?upgrade:\s*websocket/im;

export class TcpProxy {
  /** Refuse WebSocket upgrades with 403. */
  blockUpgrades = false;
  /** Called with each chunk the server sends to a client; true cuts that connection before the chunk is forwarded. */
  cutOnServerData: ((chunk: Buffer) => boolean) | null = null;
  /** Upgrade requests seen, refused ones included. */
  upgrades = 0;
  private readonly pairs = new Set<[Socket, Socket | null]>();

  private constructor(
    private readonly server: Server,
    readonly port: number,
    private target: number,
  ) {}

  /** Listens on an ephemeral port and forwards every connection to `targetPort` on 127.0.0.1. */
  static async start(targetPort: number): Promise<TcpProxy> {
    let proxy: TcpProxy | null = null;
    const server = createServer((client) => proxy?.accept(client));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, HOST, () => resolve());
    });
    proxy = new TcpProxy(server, (server.address() as AddressInfo).port, targetPort);
    return proxy;
  }

  get base(): string {
    return `http://${HOST}:${this.port}`;
  }

  /** Open connection pairs. */
  get open(): number {
    return this.pairs.size;
  }

  /** New connections go to this port from now on; open ones stay where they are. */
  retarget(port: number): void {
    this.target = port;
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

  private accept(client: Socket): void {
    client.setNoDelay(true);
    const pair: [Socket, Socket | null] = [client, null];
    this.pairs.add(pair);
    client.on("error", () => this.cut(pair));
    // The request's first bytes decide whether it is an upgrade; the upstream connection is made after them.
    client.once("data", (first: Buffer) => {
      const upgrade = UPGRADE.test(first.toString("latin1"));
      if (upgrade) this.upgrades++;
      if (upgrade && this.blockUpgrades) {
        this.pairs.delete(pair);
        client.end("HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        return;
      }
      const upstream = connect({ host: HOST, port: this.target, noDelay: true });
      pair[1] = upstream;
      upstream.on("error", () => this.cut(pair));
      upstream.write(first);
      client.pipe(upstream);
      upstream.on("data", (chunk: Buffer) => {
        if (this.cutOnServerData?.(chunk)) this.cut(pair);
        else if (!client.write(chunk)) {
          upstream.pause();
          client.once("drain", () => upstream.resume());
        }
      });
      upstream.on("end", () => client.end());
      // A clean end travels through as a FIN; the pair is forgotten once both sides are gone.
      const settle = () => {
        if (client.destroyed && upstream.destroyed) this.pairs.delete(pair);
      };
      client.on("close", settle);
      upstream.on("close", settle);
    });
    client.on("close", () => {
      if (pair[1] === null) this.pairs.delete(pair);
    });
  }

  private cut(pair: [Socket, Socket | null]): void {
    if (!this.pairs.delete(pair)) return;
    // RST, not FIN: what a client sees when a middlebox or the network drops the connection.
    for (const socket of pair) if (socket && !socket.destroyed) socket.resetAndDestroy();
  }
}
