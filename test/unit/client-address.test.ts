import { describe, expect, it } from "vitest";
import { ClientAddress, trustedProxies } from "../../src/transports/client-address.js";

const behind = (...entries: string[]) => new ClientAddress(trustedProxies(entries));

describe("ClientAddress", () => {
  it("uses the peer when no proxy is trusted, whatever the header says", () => {
    const none = new ClientAddress(null);
    expect(none.of("203.0.113.7", "10.0.0.1")).toBe("203.0.113.7");
  });

  it("reads X-Forwarded-For only from a trusted peer", () => {
    const a = behind("127.0.0.1");
    expect(a.of("127.0.0.1", "198.51.100.4")).toBe("198.51.100.4");
    expect(a.of("203.0.113.7", "198.51.100.4")).toBe("203.0.113.7");
    expect(a.of("127.0.0.1", undefined)).toBe("127.0.0.1");
  });

  it("takes the first untrusted hop from the right, so a client cannot choose its own address", () => {
    const a = behind("10.0.0.0/8", "127.0.0.1");
    // The client wrote "1.2.3.4"; the edge proxy appended the address it saw, an inner proxy its own.
    expect(a.of("127.0.0.1", "1.2.3.4, 198.51.100.4, 10.1.2.3")).toBe("198.51.100.4");
    expect(a.of("10.9.9.9", " 198.51.100.4 ,10.1.2.3")).toBe("198.51.100.4");
  });

  it("falls back to the peer when a proxy-written hop is not an address", () => {
    expect(behind("127.0.0.1").of("127.0.0.1", "1.2.3.4, unknown")).toBe("127.0.0.1");
  });

  it("names the oldest hop when every hop is a trusted proxy", () => {
    expect(behind("10.0.0.0/8").of("10.0.0.1", "10.0.0.3, 10.0.0.2")).toBe("10.0.0.3");
  });

  it("handles IPv6 and IPv4-mapped peers", () => {
    const a = behind("::1", "fd00::/8", "127.0.0.1");
    expect(a.of("::1", "2001:db8::5")).toBe("2001:db8::5");
    expect(a.of("::ffff:127.0.0.1", "198.51.100.4")).toBe("198.51.100.4");
    expect(a.of("fd12::1", "2001:db8::5, fd00::9")).toBe("2001:db8::5");
  });

  it("refuses entries that are not addresses or ranges", () => {
    for (const bad of ["localhost", "10.0.0.0/33", "10.0.0.0/8/1", "::1/129", "10.0.0.0/x", ""]) {
      expect(() => trustedProxies([bad])).toThrow();
    }
  });
});
