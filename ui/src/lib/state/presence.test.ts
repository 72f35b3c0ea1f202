// The presence slice: merged contacts, resources' presence, subscription requests.
import { describe, expect, it } from "vitest";
import * as S from ".";
import type { EngineEvent } from "../types";
import { bootstrap, contact, bootedState as booted, onlineState as online, T0 } from "../fixtures";

describe("contacts and presence", () => {
  it("merges a person's SIP and XMPP entries into one item", () => {
    const bob = S.mergedContacts(online()).find((p) => p.key === "bob@lyrebird.test");
    expect(bob?.endpoints.map((e) => e.kind)).toEqual(["sip", "xmpp"]);
    expect(bob?.name).toBe("Bob");
  });

  it("shows the best resource: highest priority, then most available", () => {
    let s = online();
    const carol = "carol@lyrebird.test";
    const presence = (jid: string, available: boolean, show: string | null): EngineEvent => ({
      event: "presence",
      account: 2,
      jid,
      available,
      show,
      status: show ? `status ${show}` : null,
    });
    s = S.applyEvents(s, [presence(`${carol}/phone`, true, "dnd"), presence(`${carol}/desk`, true, "away")], T0);
    const view = () => S.mergedContacts(s).find((p) => p.key === carol);
    expect(view()?.presence).toBe("away");
    s = S.applyEvent(s, presence(`${carol}/laptop`, true, null), T0);
    expect(view()?.presence).toBe("available");
    s = S.applyEvent(s, presence(`${carol}/laptop`, false, null), T0);
    expect(view()?.presence).toBe("away");
    expect(view()?.statusText).toBe("status away");
    s = S.applyEvent(s, presence(carol, false, null), T0);
    expect(view()?.presence).toBe("offline");
  });

  it("uses roster priorities (RFC 6121 routes to the highest)", () => {
    const s = S.applyRoster(online(), 2, [
      {
        jid: "carol@lyrebird.test",
        name: "Carol",
        subscription: "both",
        pending_out: false,
        groups: [],
        resources: [
          { resource: "phone", show: "dnd", status: "driving", priority: 10 },
          { resource: "desk", show: null, status: null, priority: 0 },
        ],
      },
    ]);
    const carol = S.mergedContacts(s).find((p) => p.key === "carol@lyrebird.test");
    expect(carol?.presence).toBe("dnd");
    expect(carol?.statusText).toBe("driving");
  });

  it("says unknown, not offline, when presence cannot be known", () => {
    const s = online();
    const byKey = (k: string) => S.mergedContacts(s).find((p) => p.key === k)?.presence;
    expect(byKey("dave@lyrebird.test")).toBe("unknown"); // subscription none
    expect(byKey("carol@lyrebird.test")).toBe("offline"); // subscribed, online, no resource
    expect(byKey("carol@lyrebird.test")).not.toBe("unknown");
    const before = booted(); // account not online yet
    expect(S.mergedContacts(before).find((p) => p.key === "carol@lyrebird.test")?.presence).toBe("unknown");
  });

  it("lists available people first and filters by name or address", () => {
    let s = online();
    s = S.applyEvent(s, { event: "presence", account: 2, jid: "carol@lyrebird.test/x", available: true, show: null, status: null }, T0);
    expect(S.mergedContacts(s)[0]?.key).toBe("carol@lyrebird.test");
    expect(S.mergedContacts(s, "CAR").map((p) => p.key)).toEqual(["carol@lyrebird.test"]);
    expect(S.mergedContacts(s, "sip:bob").map((p) => p.key)).toEqual(["bob@lyrebird.test"]);
    expect(S.mergedContacts(s, "nobody")).toEqual([]);
  });

  it("finds a contact's name from any of its addresses", () => {
    const s = online();
    expect(S.contactName(s, "sip:carol@lyrebird.test;transport=ws")).toBe("Carol");
    expect(S.contactName(s, "Bob <sip:bob@lyrebird.test>")).toBe("Bob");
    expect(S.contactName(s, "dave@lyrebird.test")).toBeNull();
    expect(S.contactName(s, "nobody@x")).toBeNull();
  });

  it("adds, renames and removes roster entries from events", () => {
    let s = online();
    s = S.applyEvent(
      s,
      { event: "contact", account: 2, jid: "erin@lyrebird.test", name: null, subscription: "none", pending_out: true, groups: [] },
      T0,
    );
    expect(S.mergedContacts(s).find((p) => p.key === "erin@lyrebird.test")?.endpoints[0]?.pendingOut).toBe(true);
    s = S.applyEvent(
      s,
      { event: "contact", account: 2, jid: "erin@lyrebird.test", name: "Erin", subscription: "both", pending_out: false, groups: ["Work"] },
      T0,
    );
    expect(S.mergedContacts(s).find((p) => p.key === "erin@lyrebird.test")?.name).toBe("Erin");
    s = S.applyEvent(s, { event: "contact_removed", account: 2, jid: "erin@lyrebird.test" }, T0);
    expect(S.mergedContacts(s).some((p) => p.key === "erin@lyrebird.test")).toBe(false);
  });

  it("collects subscription requests once each", () => {
    let s = online();
    const ask: EngineEvent = { event: "subscription_request", account: 2, from: "frank@lyrebird.test" };
    s = S.applyEvents(s, [ask, ask], T0);
    expect(s.subscriptionRequests).toEqual([{ account: 2, from: "frank@lyrebird.test" }]);
  });
});

describe("contacts from a fresh start", () => {
  it("shows a SIP-only contact with unknown presence", () => {
    const s = S.applyBootstrap(S.emptyState(), bootstrap({ contacts: [contact(1, "sip", "sip:zoe@lyrebird.test")] }));
    expect(S.mergedContacts(s)).toMatchObject([{ key: "zoe@lyrebird.test", name: "zoe", presence: "unknown" }]);
  });
});
