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

describe("who can take a call", () => {
  const carol = "carol@lyrebird.test";
  const presence = (account: number, jid: string, available: boolean): EngineEvent => ({
    event: "presence",
    account,
    jid,
    available,
    show: null,
    status: null,
  });
  const peerFeatures = (account: number, jid: string, features: readonly string[]): EngineEvent => ({
    event: "peer_features",
    account,
    jid,
    features: [...features],
  });

  it("counts a device whose features have Jingle audio over ICE with DTLS", () => {
    let s = S.applyEvent(online(), presence(2, `${carol}/phone`, true), T0);
    expect(S.canTakeCall(s, 2, carol)).toBe(false);
    s = S.applyEvent(s, peerFeatures(2, `${carol}/phone`, ["http://jabber.org/protocol/disco#info", ...S.AUDIO_CALL_FEATURES]), T0);
    expect(S.canTakeCall(s, 2, carol)).toBe(true);
    expect(S.canTakeCall(s, 2, `${carol}/phone`)).toBe(true);
  });

  it("does not count a device that lacks one of them (RTP without DTLS)", () => {
    let s = S.applyEvent(online(), presence(2, `${carol}/desk`, true), T0);
    const noDtls = S.AUDIO_CALL_FEATURES.filter((f) => f !== "urn:xmpp:jingle:apps:dtls:0");
    s = S.applyEvent(s, peerFeatures(2, `${carol}/desk`, noDtls), T0);
    expect(S.canTakeCall(s, 2, carol)).toBe(false);
  });

  it("stops counting a device once it goes unavailable, and counts it again when it is back", () => {
    let s = S.applyEvents(
      online(),
      [
        presence(2, `${carol}/phone`, true),
        peerFeatures(2, `${carol}/phone`, S.AUDIO_CALL_FEATURES),
        presence(2, `${carol}/desk`, true),
        peerFeatures(2, `${carol}/desk`, ["urn:xmpp:jingle:1"]),
      ],
      T0,
    );
    expect(S.canTakeCall(s, 2, carol)).toBe(true);
    s = S.applyEvent(s, presence(2, `${carol}/phone`, false), T0);
    expect(S.canTakeCall(s, 2, carol)).toBe(false);
    // The engine describes a client version once: a device that comes back is not described again.
    s = S.applyEvent(s, presence(2, `${carol}/phone`, true), T0);
    expect(S.canTakeCall(s, 2, carol)).toBe(true);
    s = S.applyEvent(s, presence(2, carol, false), T0);
    expect(S.canTakeCall(s, 2, carol)).toBe(false);
  });

  it("knows it per account", () => {
    const s = S.applyEvents(
      online(),
      [presence(3, `${carol}/phone`, true), peerFeatures(3, `${carol}/phone`, S.AUDIO_CALL_FEATURES)],
      T0,
    );
    expect(S.canTakeCall(s, 3, carol)).toBe(true);
    expect(S.canTakeCall(s, 2, carol)).toBe(false);
    expect(S.canTakeCall(S.forgetAccountContacts(s, 3), 3, carol)).toBe(false);
  });

  it("calls a person's SIP address first, else over XMPP when they can take a call, else dials SIP", () => {
    let s = S.applyEvents(
      online(),
      [
        presence(2, `${carol}/phone`, true),
        presence(2, "bob@lyrebird.test/phone", true),
        peerFeatures(2, `${carol}/phone`, S.AUDIO_CALL_FEATURES),
        peerFeatures(2, "bob@lyrebird.test/phone", S.AUDIO_CALL_FEATURES),
      ],
      T0,
    );
    const target = (key: string) => {
      const person = S.mergedContacts(s).find((p) => p.key === key);
      return person ? S.callTargetOf(s, person) : undefined;
    };
    expect(target("bob@lyrebird.test")).toEqual({ account: 1, kind: "sip", target: "sip:bob@lyrebird.test" });
    expect(target(carol)).toEqual({ account: 2, kind: "xmpp", target: carol });
    expect(target("dave@lyrebird.test")).toEqual({ account: 1, kind: "sip", target: "sip:dave@lyrebird.test" });
    s = S.applyEvent(s, presence(2, `${carol}/phone`, false), T0);
    expect(target(carol)).toEqual({ account: 1, kind: "sip", target: "sip:carol@lyrebird.test" });
    // With no SIP account, only a contact that can take a call can be called.
    s = S.applyEvent(S.removeAccount(s, 1), presence(2, `${carol}/phone`, true), T0);
    expect(target(carol)).toEqual({ account: 2, kind: "xmpp", target: carol });
    expect(target("dave@lyrebird.test")).toBeNull();
  });
});
