import { MemoryBroker, MemoryStore } from "../../src/broker/broker-memory.js";
import { brokerContract } from "../helpers/broker-contract.js";

brokerContract("memory", async () => {
  const store = new MemoryStore();
  const a = new MemoryBroker(store, "n_a");
  const b = new MemoryBroker(store, "n_b");
  return { a, b, close: async () => void (await Promise.all([a.close(), b.close()])) };
});
