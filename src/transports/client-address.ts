// Which address a request counts as for per-IP limits: its peer, or behind trusted proxies the client they name.
import { BlockList, isIP } from "node:net";

/** Parses `AGENTWIRE_TRUSTED_PROXIES` entries: addresses or CIDR ranges, IPv4 or IPv6. Throws on a bad one. */
export function trustedProxies(entries: readonly string[]): BlockList {
  const list = new BlockList();
  for (const entry of entries) {
    const [address = "", bits, extra] = entry.split("/");
    const family = isIP(address);
    if (family === 0 || extra !== undefined) throw new Error(`"${entry}" is not an IP address or CIDR range`);
    const type = family === 4 ? "ipv4" : "ipv6";
    if (bits === undefined) {
      list.addAddress(address, type);
      continue;
    }
    const prefix = Number(bits);
    if (!/^\d+$/.test(bits) || prefix > (family === 4 ? 32 : 128)) throw new Error(`"${entry}" has a bad prefix length`);
    list.addSubnet(address, prefix, type);
  }
  return list;
}

export class ClientAddress {
  /** `trusted`: proxies whose `X-Forwarded-For` is believed; null believes nobody (the default). */
  constructor(private readonly trusted: BlockList | null) {}

  /**
   * The client address for a request from `peer`. Only when the peer is a trusted proxy is
   * `X-Forwarded-For` read, from its right end: each trusted proxy appends who it heard from,
   * so the first hop that is not a trusted proxy is the client. Entries left of it may be
   * anything the client wrote and are never read.
   */
  of(peer: string, forwardedFor: string | undefined): string {
    if (!this.trusted || !forwardedFor || !this.isTrusted(peer)) return peer;
    const hops = forwardedFor.split(",");
    for (let i = hops.length - 1; i >= 0; i--) {
      const hop = (hops[i] as string).trim();
      // A hop a trusted proxy wrote must be an address; anything else means a misconfigured chain.
      if (isIP(hop) === 0) return peer;
      if (!this.isTrusted(hop)) return hop;
    }
    // Every hop is a trusted proxy: the request started inside; the oldest hop names it.
    return (hops[0] as string).trim();
  }

  private isTrusted(address: string): boolean {
    const family = isIP(address);
    if (family === 0) return false;
    return (this.trusted as BlockList).check(address, family === 4 ? "ipv4" : "ipv6");
  }
}
