// Baseline for latency: a child process that echoes TCP bytes back at once, so the bench can time two loopback hops through another process.
import { createServer } from "node:net";

const server = createServer({ noDelay: true }, (socket) => {
  socket.on("data", (chunk) => socket.write(chunk));
  socket.on("error", () => socket.destroy());
});
server.listen(0, "127.0.0.1", () => {
  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : 0;
  process.stdout.write(`${JSON.stringify({ listening: port, nativeUws: false })}\n`);
});
process.once("SIGTERM", () => process.exit(0));
