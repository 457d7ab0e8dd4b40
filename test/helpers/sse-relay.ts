// A TCP relay in front of the server that can cut every open connection at once, like a network blink.
import net from "node:net";

export class TcpRelay {
  private readonly pairs = new Set<[net.Socket, net.Socket]>();
  /** Connections accepted so far. */
  accepted = 0;

  private constructor(
    private readonly server: net.Server,
    readonly port: number,
  ) {}

  static async start(targetPort: number): Promise<TcpRelay> {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const relay = new TcpRelay(server, (server.address() as net.AddressInfo).port);
    server.on("connection", (client) => {
      relay.accepted++;
      const upstream = net.connect(targetPort, "127.0.0.1");
      const pair: [net.Socket, net.Socket] = [client, upstream];
      relay.pairs.add(pair);
      client.pipe(upstream);
      upstream.pipe(client);
      const drop = () => {
        relay.pairs.delete(pair);
        client.destroy();
        upstream.destroy();
      };
      client.on("error", drop).on("close", drop);
      upstream.on("error", drop).on("close", drop);
    });
    return relay;
  }

  /** Resets every open connection on both sides; new connections still go through. */
  cut(): void {
    for (const [client, upstream] of [...this.pairs]) {
      client.resetAndDestroy();
      upstream.resetAndDestroy();
    }
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
