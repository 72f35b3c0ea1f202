import { describe, expect, it } from "vitest";
import { bareAddress, bareJid, dialTarget, domainOf, isLoopbackUrl, jidResource, shortName, sipAor } from "./address";

describe("addresses", () => {
  it("reduces SIP URIs and JIDs to user@domain", () => {
    expect(bareAddress("sip:Bob@Example.com;transport=ws")).toBe("bob@example.com");
    expect(bareAddress('"Bob" <sip:bob@example.com>;tag=1')).toBe("bob@example.com");
    expect(bareAddress("bob@example.com/phone")).toBe("bob@example.com");
    expect(bareAddress("xmpp:bob@example.com?message")).toBe("bob@example.com");
    expect(bareJid("a@b/c/d")).toBe("a@b");
    expect(jidResource("a@b/c/d")).toBe("c/d");
    expect(jidResource("a@b")).toBe("");
    expect(domainOf("sip:alice@lyrebird.test")).toBe("lyrebird.test");
    expect(shortName("sip:alice@lyrebird.test")).toBe("alice");
  });

  it("turns what was dialled into a SIP URI on the account's domain", () => {
    const aor = "sip:alice@lyrebird.test";
    expect(dialTarget("1000", aor)).toBe("sip:1000@lyrebird.test");
    expect(dialTarget("+1 (555) 010-2030", aor)).toBe("sip:+15550102030@lyrebird.test");
    expect(dialTarget("echo", aor)).toBe("sip:echo@lyrebird.test");
    expect(dialTarget("bob@other.test", aor)).toBe("sip:bob@other.test");
    expect(dialTarget("sips:bob@x", aor)).toBe("sips:bob@x");
    expect(dialTarget("tel:+123", aor)).toBe("tel:+123");
    expect(dialTarget("   ", aor)).toBe("");
  });

  it("adds the sip: scheme to an address of record", () => {
    expect(sipAor("alice@x")).toBe("sip:alice@x");
    expect(sipAor("sip:alice@x")).toBe("sip:alice@x");
    expect(sipAor(" ")).toBe("");
  });

  it("recognises loopback WebSocket URLs", () => {
    expect(isLoopbackUrl("ws://127.0.0.1:5280/xmpp-websocket")).toBe(true);
    expect(isLoopbackUrl("ws://localhost/ws")).toBe(true);
    expect(isLoopbackUrl("ws://[::1]:80/")).toBe(true);
    expect(isLoopbackUrl("ws://example.com/")).toBe(false);
    expect(isLoopbackUrl("http://127.0.0.1/")).toBe(false);
  });
});
