import { describe, expect, it } from "vitest";
import * as S from "./state";
import type { EngineEvent } from "./types";
import { bootstrap, chat, contact, record, SIP_ACCOUNT, XMPP_ACCOUNT } from "./fixtures";

const T0 = 1_700_001_000_000;

function booted(): S.AppState {
  return S.applyBootstrap(S.emptyState(), bootstrap());
}

function online(state: S.AppState = booted()): S.AppState {
  return S.applyEvents(
    state,
    [
      { event: "account_state", account: 1, state: { state: "connecting" } },
      { event: "account_state", account: 1, state: { state: "registered", expires_s: 600, outbound: true } },
      { event: "account_state", account: 2, state: { state: "connecting" } },
      { event: "account_state", account: 2, state: { state: "connected" } },
      { event: "xmpp_online", account: 2, jid: "alice@lyrebird.test/lyrebird", resumed: false },
    ],
    T0,
  );
}

describe("bootstrap", () => {
  it("shows stored contacts, conversations and calls before any event", () => {
    const s = booted();
    expect(s.booted).toBe(true);
    expect(Object.keys(s.accounts)).toEqual(["1", "2"]);
    expect(s.accounts["1"]?.status).toBe("connecting");
    expect(s.accounts["1"]?.label).toBe("Alice (sip:alice@lyrebird.test)");
    const people = S.mergedContacts(s);
    expect(people.map((p) => p.key)).toEqual(["bob@lyrebird.test", "carol@lyrebird.test", "dave@lyrebird.test"]);
    expect(S.conversationList(s).map((c) => c.peer)).toEqual(["carol@lyrebird.test", "sip:bob@lyrebird.test"]);
    expect(S.totalUnread(s)).toBe(2);
    expect(s.callHistory.map((h) => [h.direction, h.missed])).toEqual([
      ["in", true],
      ["out", false],
    ]);
    expect(s.downloadsDir).toBe("/home/alice/Downloads/Lyrebird");
  });

  it("shows transfers left unfinished by the last run as interrupted, with no actions", () => {
    const s = S.applyBootstrap(
      S.emptyState(),
      bootstrap({
        transfers: [
          {
            id: 3,
            account: 1,
            transfer_key: "abc",
            direction: "in",
            peer_address: "sip:bob@lyrebird.test",
            file_name: "report.pdf",
            size_bytes: 2000,
            mime_type: "application/pdf",
            sha256: null,
            local_path: null,
            state: "active",
            bytes_confirmed: 500,
            started_at_ms: T0,
            ended_at_ms: null,
            error: null,
          },
        ],
      }),
    );
    const t = S.transferList(s)[0];
    expect(t?.status).toBe("interrupted");
    expect(t?.past).toBe(true);
    expect(t?.id).toBeNull();
    expect(t?.percent).toBe(25);
  });

  it("keeps events that raced ahead of the bootstrap answer", () => {
    const early = S.applyEvent(S.emptyState(), chat({ id: "m1", body: "early" }), T0);
    const s = S.applyBootstrap(early, bootstrap());
    expect(s.messages["2|carol@lyrebird.test"]?.map((m) => m.body)).toEqual(["early"]);
    expect(s.conversations["2|carol@lyrebird.test"]?.unread).toBe(2);
  });
});

describe("accounts", () => {
  it("follows SIP registration and XMPP login", () => {
    const s = online();
    expect(s.accounts["1"]?.status).toBe("registered");
    expect(s.accounts["2"]?.status).toBe("online");
    expect(s.accounts["1"]?.detail).toBe("Ready for calls");
  });

  it("says a refused password in words and asks for it", () => {
    const s = S.applyEvent(
      booted(),
      { event: "account_state", account: 1, state: { state: "registration_failed", status: 403, reason: "Forbidden" } },
      T0,
    );
    expect(s.accounts["1"]?.status).toBe("failed");
    expect(s.accounts["1"]?.needsPassword).toBe(true);
    expect(s.toasts.map((t) => t.text)).toEqual([
      "sip:alice@lyrebird.test: The server refused the password (403 Forbidden).",
    ]);
  });

  it("asks for a password that is not stored without an error toast", () => {
    const s = S.applyEvent(
      booted(),
      { event: "account_state", account: 2, state: { state: "authentication_failed", reason: "password needed" } },
      T0,
    );
    expect(s.accounts["2"]?.status).toBe("failed");
    expect(s.accounts["2"]?.needsPassword).toBe(true);
    expect(s.accounts["2"]?.detail).toBe("Password needed");
    expect(s.toasts).toEqual([]);
  });

  it("marks reconnecting and forgets presence it can no longer vouch for", () => {
    let s = online();
    s = S.applyEvent(s, { event: "presence", account: 2, jid: "carol@lyrebird.test/phone", available: true, show: null, status: null }, T0);
    expect(S.mergedContacts(s).find((p) => p.key === "carol@lyrebird.test")?.presence).toBe("available");
    s = S.applyEvent(
      s,
      { event: "account_state", account: 2, state: { state: "reconnecting", attempt: 1, delay_ms: 1500, reason: "connection reset" } },
      T0,
    );
    expect(s.accounts["2"]?.status).toBe("reconnecting");
    expect(s.accounts["2"]?.detail).toBe("Connection lost (connection reset); retrying in 2 s");
    expect(S.mergedContacts(s).find((p) => p.key === "carol@lyrebird.test")?.presence).toBe("unknown");
  });

  it("maps every engine state onto the contract's words", () => {
    const cases: [EngineEvent & { event: "account_state" }, S.AccountStatus][] = [
      [{ event: "account_state", account: 1, state: { state: "connected" } }, "connecting"],
      [{ event: "account_state", account: 1, state: { state: "unregistered" } }, "stopped"],
      [{ event: "account_state", account: 1, state: { state: "stopped" } }, "stopped"],
    ];
    for (const [ev, want] of cases) expect(S.accountStatus(ev.state)).toBe(want);
  });

  it("adds a saved account as connecting and removes one with its contacts", () => {
    let s = S.upsertAccount(S.emptyState(), SIP_ACCOUNT);
    expect(s.accounts["1"]?.status).toBe("connecting");
    s = S.upsertAccount(S.applyBootstrap(s, bootstrap()), XMPP_ACCOUNT);
    s = S.removeAccount(s, 2);
    expect(Object.keys(s.accounts)).toEqual(["1"]);
    expect(Object.values(s.contacts).every((c) => c.account === 1)).toBe(true);
  });
});

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

describe("conversations and messages", () => {
  const carol = "2|carol@lyrebird.test";

  it("counts unread messages in conversations that are not open", () => {
    let s = online();
    s = S.applyEvent(s, chat({ id: "m1", body: "hello" }), T0);
    expect(s.conversations[carol]?.unread).toBe(3);
    expect(s.conversations[carol]?.lastBody).toBe("hello");
    s = S.openConversation(s, 2, "carol@lyrebird.test");
    expect(s.conversations[carol]?.unread).toBe(0);
    s = S.applyEvent(s, chat({ id: "m2", body: "are you there?" }), T0 + 1);
    expect(s.conversations[carol]?.unread).toBe(0);
    expect(S.conversationList(s)[0]?.key).toBe(carol);
  });

  it("keeps a message unread in the open conversation until the window is focused", () => {
    let s = S.openConversation(online(), 2, "carol@lyrebird.test");
    s = S.setWindowFocused(s, false);
    s = S.applyEvent(s, chat({ id: "m1", body: "still there?" }), T0);
    expect(s.conversations[carol]?.unread).toBe(1);
    expect(S.totalUnread(s)).toBe(1);
    s = S.setWindowFocused(s, true);
    expect(s.conversations[carol]?.unread).toBe(0);
    s = S.applyEvent(s, chat({ id: "m2", body: "ok" }), T0 + 1);
    expect(s.conversations[carol]?.unread).toBe(0);
  });

  it("never lets a correction rewrite someone else's message", () => {
    let s = S.openConversation(online(), 2, "carol@lyrebird.test");
    s = S.addOutgoing(s, 2, "carol@lyrebird.test", false, "ours", "I owe you 10", T0);
    s = S.applyEvent(s, chat({ id: "spoof", body: "I owe you 1000", replaces: "ours" }), T0 + 1);
    const bodies = s.messages[carol]?.map((m) => m.body);
    expect(bodies).toEqual(["I owe you 10", "I owe you 1000"]);
    expect(s.messages[carol]?.find((m) => m.id === "ours")?.corrected).toBe(false);
  });

  it("shows each message once, whatever path it came by", () => {
    let s = online();
    s = S.applyEvents(s, [chat({ id: "m1", body: "hi" }), chat({ id: "m1", body: "hi", origin: "archive" })], T0);
    expect(s.messages[carol]?.length).toBe(1);
    expect(s.conversations[carol]?.unread).toBe(3);
  });

  it("sorts archive messages by their time", () => {
    let s = online();
    s = S.applyEvents(
      s,
      [
        chat({ id: "b", body: "second", origin: "archive", sent_at_ms: T0 - 1000 }),
        chat({ id: "a", body: "first", origin: "archive", sent_at_ms: T0 - 2000 }),
        chat({ id: "c", body: "third", sent_at_ms: null }),
      ],
      T0,
    );
    expect(s.messages[carol]?.map((m) => m.body)).toEqual(["first", "second", "third"]);
  });

  it("follows our message from queued to delivered, never backwards", () => {
    let s = S.openConversation(online(), 2, "carol@lyrebird.test");
    s = S.addOutgoing(s, 2, "carol@lyrebird.test", false, "out-1", "lunch?", T0);
    const stateOf = () => s.messages[carol]?.find((m) => m.id === "out-1");
    expect(stateOf()?.state).toBe("queued");
    const update = (state: string): EngineEvent => ({
      event: "chat_message_state",
      account: 2,
      id: "out-1",
      peer: "carol@lyrebird.test",
      state,
      reason: null,
    });
    s = S.applyEvent(s, update("sent"), T0);
    expect(stateOf()?.state).toBe("sent");
    s = S.applyEvent(s, update("delivered"), T0);
    s = S.applyEvent(s, update("sent"), T0); // a late duplicate
    expect(stateOf()?.state).toBe("delivered");
    expect(S.messageDomState(stateOf()!)).toBe("delivered");
    s = S.applyEvent(s, update("failed"), T0); // cannot fail once delivered
    expect(stateOf()?.state).toBe("delivered");
    expect(S.deliveryWords(stateOf()!)).toBe("Delivered");
  });

  it("applies a delivery state that arrived before the send command answered", () => {
    let s = online();
    s = S.applyEvent(
      s,
      { event: "chat_message_state", account: 2, id: "out-9", peer: "carol@lyrebird.test", state: "sent", reason: null },
      T0,
    );
    s = S.addOutgoing(s, 2, "carol@lyrebird.test", false, "out-9", "quick", T0);
    expect(s.messages[carol]?.find((m) => m.id === "out-9")?.state).toBe("sent");
    expect(s.earlyStates).toEqual({});
  });

  it("tracks SIP MESSAGE delivery by the engine's message id", () => {
    let s = online();
    s = S.addOutgoingSip(s, 1, "sip:bob@lyrebird.test", 77, "ping", T0);
    s = S.addOutgoingSip(s, 1, "sip:bob@lyrebird.test", 78, "pong?", T0);
    s = S.applyEvent(s, { event: "message_delivered", account: 1, message: 77 }, T0);
    s = S.applyEvent(s, { event: "message_failed", account: 1, message: 78, status: 404, reason: "Not Found" }, T0);
    const list = s.messages["1|sip:bob@lyrebird.test"] ?? [];
    expect(list.map((m) => [m.body, S.messageDomState(m)])).toEqual([
      ["ping", "sent"],
      ["pong?", "failed"],
    ]);
    expect(list[1]?.failure).toBe("404 Not Found");
    expect(s.toasts.at(-1)?.text).toBe("Message to sip:bob@lyrebird.test not delivered: 404 Not Found.");
  });

  it("receives SIP messages as separate items even with the same text", () => {
    let s = online();
    const msg: EngineEvent = { event: "message_received", account: 1, from: "sip:bob@lyrebird.test", content_type: "text/plain", body: "ok" };
    s = S.applyEvents(s, [msg, msg], T0);
    expect(s.messages["1|sip:bob@lyrebird.test"]?.length).toBe(2);
    expect(s.conversations["1|sip:bob@lyrebird.test"]?.unread).toBe(2);
  });

  it("applies corrections to the message they correct (XEP-0308)", () => {
    let s = online();
    s = S.applyEvents(
      s,
      [
        chat({ id: "m1", body: "teh plan" }),
        chat({ id: "m2", body: "the plan", replaces: "m1" }),
      ],
      T0,
    );
    const list = s.messages[carol] ?? [];
    expect(list.map((m) => [m.id, m.body, m.corrected])).toEqual([["m1", "the plan", true]]);
    expect(s.conversations[carol]?.unread).toBe(3); // a correction is not a new message
    s = S.applyEvent(s, chat({ id: "m4", body: "fixed", replaces: "unknown" }), T0);
    expect(s.messages[carol]?.map((m) => m.body)).toEqual(["the plan", "fixed"]);
  });

  it("edits our last message with the Up arrow's correction", () => {
    let s = S.openConversation(online(), 2, "carol@lyrebird.test");
    s = S.addOutgoing(s, 2, "carol@lyrebird.test", false, "o1", "first", T0);
    s = S.applyEvent(s, chat({ id: "i1", body: "reply" }), T0 + 1);
    s = S.addOutgoing(s, 2, "carol@lyrebird.test", false, "o2", "secnod", T0 + 2);
    const last = S.lastOutgoing(s, carol);
    expect(last?.id).toBe("o2");
    s = S.applyOwnCorrection(s, carol, "o2", "second");
    expect(s.messages[carol]?.at(-1)).toMatchObject({ id: "o2", body: "second", corrected: true });
    expect(s.conversations[carol]?.lastBody).toBe("second");
  });

  it("does not offer to correct SIP messages (no correction in RFC 3428)", () => {
    let s = online();
    s = S.addOutgoingSip(s, 1, "sip:bob@lyrebird.test", 5, "hello", T0);
    expect(S.lastOutgoing(s, "1|sip:bob@lyrebird.test")).toBeNull();
  });

  it("merges stored history with what arrived live", () => {
    let s = S.openConversation(online(), 2, "carol@lyrebird.test");
    s = S.applyEvent(s, chat({ id: "live-1", body: "new one", sent_at_ms: T0 + 5000 }), T0 + 5000);
    s = S.applyHistory(s, carol, [
      record({ stable_id: "h1", body: "old", sent_at_ms: T0 - 3000 }),
      record({ stable_id: "h2", body: "odl typo", direction: "out", sender: "alice@lyrebird.test", sent_at_ms: T0 - 2000, state: "read" }),
      record({ stable_id: "h3", body: "old typo fixed", direction: "out", sent_at_ms: T0 - 1000, corrects_stable_id: "h2" }),
      record({ stable_id: "live-1", body: "new one", sent_at_ms: T0 + 5000 }),
    ]);
    const list = s.messages[carol] ?? [];
    expect(list.map((m) => [m.id, m.body])).toEqual([
      ["h1", "old"],
      ["h2", "old typo fixed"],
      ["live-1", "new one"],
    ]);
    expect(list[1]?.state).toBe("read");
    expect(S.messageDomState(list[1]!)).toBe("delivered");
    expect(s.conversations[carol]?.loaded).toBe(true);
  });

  it("does not show a SIP message twice when history catches up with it", () => {
    let s = S.openConversation(online(), 1, "sip:bob@lyrebird.test");
    const key = "1|sip:bob@lyrebird.test";
    s = S.addOutgoingSip(s, 1, "sip:bob@lyrebird.test", 3, "hello bob", T0);
    s = S.applyHistory(s, key, [
      record({ stable_id: "callid-xyz", body: "hello bob", direction: "out", sender: "sip:alice@lyrebird.test", sent_at_ms: T0, state: "sent" }),
    ]);
    expect(s.messages[key]?.map((m) => m.id)).toEqual(["sip-3"]);
    s = S.applyEvent(s, { event: "message_delivered", account: 1, message: 3 }, T0);
    expect(s.messages[key]?.[0]?.state).toBe("sent");
  });
});

describe("typing", () => {
  const carol = "2|carol@lyrebird.test";
  const typing = (state: string): EngineEvent => ({ event: "chat_state", account: 2, from: "carol@lyrebird.test/phone", state });

  it("shows composing until paused, a message, or the timeout", () => {
    let s = S.applyEvent(online(), typing("composing"), T0);
    expect(S.isTyping(s, carol, T0 + 1000)).toBe(true);
    expect(S.isTyping(s, carol, T0 + S.TYPING_TIMEOUT_MS + 1)).toBe(false);
    s = S.applyEvent(s, typing("paused"), T0 + 2000);
    expect(S.isTyping(s, carol, T0 + 2001)).toBe(false);
    s = S.applyEvent(s, typing("composing"), T0 + 3000);
    s = S.applyEvent(s, chat({ id: "x", body: "done" }), T0 + 4000);
    expect(S.isTyping(s, carol, T0 + 4001)).toBe(false);
    s = S.applyEvent(s, typing("composing"), T0 + 5000);
    s = S.expireTyping(s, T0 + 5000 + S.TYPING_TIMEOUT_MS);
    expect(s.typing).toEqual({});
  });
});

describe("rooms", () => {
  const room = "team@conference.lyrebird.test";
  const key = `2|${room}`;

  it("joins, tracks occupants and subject, and shows room messages with nicks", () => {
    let s = S.roomJoining(online(), 2, room, "alice");
    expect(s.conversations[key]?.room).toBe(true);
    s = S.applyEvents(
      s,
      [
        { event: "occupant", account: 2, room, nick: "bob", jid: null, available: true, role: "participant", is_self: false },
        { event: "occupant", account: 2, room, nick: "alice", jid: null, available: true, role: "participant", is_self: true },
        { event: "room_joined", account: 2, room, nick: "alice" },
        { event: "room_subject", account: 2, room, subject: "Release day" },
        chat({ id: "r1", peer: room, from: `${room}/bob`, nick: "bob", room: true, body: "old news", origin: "room_history" }),
        chat({ id: "r2", peer: room, from: `${room}/bob`, nick: "bob", room: true, body: "morning!" }),
        { event: "occupant", account: 2, room, nick: "carol", jid: null, available: true, role: null, is_self: false },
        { event: "occupant", account: 2, room, nick: "bob", jid: null, available: false, role: null, is_self: false },
      ],
      T0,
    );
    const r = s.rooms[key];
    expect(r?.joined).toBe(true);
    expect(r?.subject).toBe("Release day");
    expect(S.occupantList(r!).map((o) => o.nick)).toEqual(["alice", "carol"]);
    expect(s.messages[key]?.map((m) => [m.nick, m.body])).toEqual([
      ["bob", "old news"],
      ["bob", "morning!"],
    ]);
    expect(s.conversations[key]?.unread).toBe(1); // history on join is not unread
  });

  it("dedupes our own room message when the room reflects it", () => {
    let s = S.roomJoining(online(), 2, room, "alice");
    s = S.addOutgoing(s, 2, room, true, "mine-1", "hello room", T0);
    s = S.applyEvent(s, chat({ id: "mine-1", peer: room, from: `${room}/alice`, nick: "alice", room: true, outgoing: true, body: "hello room" }), T0);
    expect(s.messages[key]?.length).toBe(1);
    expect(s.messages[key]?.[0]?.state).toBe("sent");
  });

  it("says why joining failed", () => {
    const s = S.applyEvent(online(), { event: "room_error", account: 2, room, reason: "nickname in use" }, T0);
    expect(s.rooms[key]?.error).toBe("nickname in use");
    expect(s.toasts.at(-1)?.text).toBe(`Room ${room}: nickname in use.`);
  });
});

describe("calls", () => {
  it("rings, is answered, connects and ends into history", () => {
    let s = online();
    s = S.applyEvent(s, { event: "incoming_call", account: 1, call: 41, from: "sip:bob@lyrebird.test", display_name: "Bob" }, T0);
    expect(S.ringingIncoming(s)?.displayName).toBe("Bob");
    expect(S.currentCall(s)).toBeNull();
    s = S.applyEvent(s, { event: "call_state", account: 1, call: 41, state: { state: "answered" } }, T0 + 2000);
    expect(S.ringingIncoming(s)).toBeNull();
    expect(S.currentCall(s)?.status).toBe("answered");
    s = S.applyEvent(s, { event: "call_state", account: 1, call: 41, state: { state: "media_connected" } }, T0 + 2100);
    s = S.applyEvent(s, { event: "call_state", account: 1, call: 41, state: { state: "audio_flowing" } }, T0 + 2200);
    expect(S.currentCall(s)?.status).toBe("audio");
    s = S.applyEvent(s, { event: "call_state", account: 1, call: 41, state: { state: "ended", reason: "remote hangup", status: null } }, T0 + 62_000);
    expect(S.currentCall(s)?.status).toBe("ended");
    expect(s.callHistory[0]).toMatchObject({ direction: "in", missed: false, durationMs: 60_000, peer: "sip:bob@lyrebird.test" });
    expect(S.dropEndedCalls(s, T0 + 62_000 + S.ENDED_CALL_LINGER_MS).calls).toEqual({});
  });

  it("calls an incoming call that was never answered missed", () => {
    let s = online();
    s = S.applyEvent(s, { event: "incoming_call", account: 1, call: 42, from: "sip:carol@lyrebird.test", display_name: null }, T0);
    s = S.applyEvent(s, { event: "call_state", account: 1, call: 42, state: { state: "ended", reason: "remote cancel", status: 487 } }, T0 + 9000);
    expect(S.ringingIncoming(s)).toBeNull();
    expect(s.callHistory[0]).toMatchObject({ direction: "in", missed: true, durationMs: null });
  });

  it("follows an outgoing call whether the reply or the Dialing event comes first", () => {
    const dialing: EngineEvent = {
      event: "call_state",
      account: 1,
      call: 7,
      state: { state: "dialing", direction: "outgoing", peer: "sip:echo@lyrebird.test" },
    };
    const a = S.callStarted(S.applyEvent(online(), dialing, T0), 1, 7, "sip:echo@lyrebird.test", T0);
    const b = S.applyEvent(S.callStarted(online(), 1, 7, "sip:echo@lyrebird.test", T0), dialing, T0);
    for (let s of [a, b]) {
      expect(Object.keys(s.calls)).toEqual(["7"]);
      expect(S.currentCall(s)?.status).toBe("dialing");
      s = S.applyEvent(s, { event: "call_state", account: 1, call: 7, state: { state: "ringing", status: 180 } }, T0);
      expect(S.currentCall(s)?.status).toBe("ringing");
      expect(S.currentCall(s)?.answeredAt).toBeNull();
    }
  });

  it("recognises busy and says why a call ended", () => {
    let s = S.callStarted(online(), 1, 8, "sip:busy@lyrebird.test", T0);
    s = S.applyEvent(s, { event: "call_state", account: 1, call: 8, state: { state: "ended", reason: "busy here", status: 486 } }, T0);
    const c = S.currentCall(s)!;
    expect(S.isBusy(c)).toBe(true);
    expect(S.endReasonWords(c.endReason, c.endStatus)).toBe("Busy");
    expect(S.endReasonWords("remote_hangup", null)).toBe("Remote hangup");
    expect(s.callHistory[0]).toMatchObject({ direction: "out", missed: false });
  });

  it("ignores late states after the end, and keeps mute per call", () => {
    let s = S.callStarted(online(), 1, 9, "sip:x@lyrebird.test", T0);
    s = S.setMuted(s, "9", true);
    expect(s.calls["9"]?.muted).toBe(true);
    s = S.applyEvent(s, { event: "call_state", account: 1, call: 9, state: { state: "ended", reason: "x", status: null } }, T0);
    s = S.applyEvent(s, { event: "call_state", account: 1, call: 9, state: { state: "audio_flowing" } }, T0);
    expect(s.calls["9"]?.status).toBe("ended");
  });

  it("replaces session history with the store's records", () => {
    const s = S.setCallHistory(online(), [
      { id: 1, account: 1, call_key: "k", direction: "out", peer_address: "sip:z@x", started_at_ms: 5, answered_at_ms: null, ended_at_ms: 6, end_reason: "busy", duration_ms: null, missed: false },
    ]);
    expect(s.callHistory.map((h) => h.peer)).toEqual(["sip:z@x"]);
  });
});

describe("transfers", () => {
  it("offers an incoming file, then shows progress to completion", () => {
    let s = online();
    s = S.applyEvent(
      s,
      {
        event: "transfer_offered",
        account: 1,
        transfer: 5,
        from: "sip:bob@lyrebird.test",
        display_name: "Bob",
        file_name: "photo.jpg",
        size: 4_000_000,
        mime_type: "image/jpeg",
        sha256: null,
      },
      T0,
    );
    expect(S.pendingOffers(s)).toBe(1);
    expect(S.transferList(s)[0]).toMatchObject({ status: "offered", direction: "incoming", fileName: "photo.jpg", peer: "Bob <sip:bob@lyrebird.test>" });
    s = S.applyEvent(s, { event: "transfer_state", account: 1, transfer: 5, state: { state: "active", from_byte: 0 } }, T0);
    s = S.applyEvent(
      s,
      { event: "transfer_progress", account: 1, transfer: 5, bytes: 1_000_000, total: 4_000_000, percent: 25, rate_bps: 500_000, eta_ms: 6000 },
      T0,
    );
    expect(S.transferList(s)[0]).toMatchObject({ status: "active", percent: 25, rateBps: 500_000, etaMs: 6000 });
    s = S.applyEvent(
      s,
      {
        event: "transfer_state",
        account: 1,
        transfer: 5,
        state: { state: "completed", bytes: 4_000_000, sha256: "ab", path: "/dl/photo.jpg", duplicate_bytes: 0, out_of_order_writes: 0 },
      },
      T0,
    );
    // A progress event that was queued behind the completion does not undo it.
    s = S.applyEvent(
      s,
      { event: "transfer_progress", account: 1, transfer: 5, bytes: 3_000_000, total: 4_000_000, percent: 75, rate_bps: 1, eta_ms: 1 },
      T0,
    );
    expect(S.transferList(s)[0]).toMatchObject({ status: "completed", percent: 100, path: "/dl/photo.jpg", rateBps: 0 });
    expect(S.pendingOffers(s)).toBe(0);
  });

  it("follows an outgoing MSRP transfer from offering to cancelled by the peer", () => {
    let s = online();
    s = S.applyEvent(
      s,
      { event: "transfer_state", account: 1, transfer: 6, state: { state: "offering", peer: "sip:bob@lyrebird.test", file_name: "notes.txt", size: 1234 } },
      T0,
    );
    expect(S.transferList(s)[0]).toMatchObject({ direction: "outgoing", status: "offering", total: 1234 });
    s = S.applyEvent(s, { event: "transfer_state", account: 1, transfer: 6, state: { state: "interrupted", reason: "relay gone", confirmed: 600 } }, T0);
    expect(S.transferList(s)[0]).toMatchObject({ status: "interrupted", bytes: 600, detail: "relay gone" });
    s = S.applyEvent(s, { event: "transfer_state", account: 1, transfer: 6, state: { state: "cancelled", by_peer: true } }, T0);
    expect(S.transferList(s)[0]).toMatchObject({ status: "cancelled", detail: "Cancelled by the other side" });
  });

  it("reports a failed or declined transfer", () => {
    let s = online();
    s = S.applyEvent(s, { event: "transfer_state", account: 1, transfer: 7, state: { state: "offering", peer: "sip:b@x", file_name: "a.bin", size: 1 } }, T0);
    s = S.applyEvent(s, { event: "transfer_state", account: 1, transfer: 7, state: { state: "declined", status: 603 } }, T0);
    expect(s.transfers["7"]?.status).toBe("declined");
    s = S.applyEvent(s, { event: "transfer_state", account: 1, transfer: 7, state: { state: "failed", reason: "hash mismatch" } }, T0);
    expect(s.toasts.at(-1)?.text).toBe("Transfer of a.bin failed: hash mismatch.");
  });

  it("measures rate and time left for HTTP uploads, then shows the link in the chat", () => {
    let s = S.httpTransferStarted(online(), 2, 1, "carol@lyrebird.test", "big.iso", T0);
    const key = "x2-1";
    const progress = (bytes: number, at: number) =>
      (s = S.applyEvent(s, { event: "file_progress", account: 2, transfer: 1, direction: "upload", bytes, total: 10_000_000 }, at));
    progress(0, T0);
    progress(1_000_000, T0 + 1000);
    expect(s.transfers[key]?.rateBps).toBe(1_000_000);
    expect(s.transfers[key]?.etaMs).toBe(9000);
    expect(s.transfers[key]?.percent).toBe(10);
    progress(3_000_000, T0 + 2000); // 2 MB/s now, smoothed with the earlier 1 MB/s
    expect(s.transfers[key]?.rateBps).toBe(1_700_000);
    s = S.applyEvent(
      s,
      { event: "file_shared", account: 2, transfer: 1, to: "carol@lyrebird.test", url: "https://up.lyrebird.test/abc/big.iso", sha256: "00", message: "share-1" },
      T0 + 3000,
    );
    expect(s.transfers[key]).toMatchObject({ status: "completed", percent: 100 });
    expect(s.messages["2|carol@lyrebird.test"]?.at(-1)).toMatchObject({ id: "share-1", direction: "out", url: "https://up.lyrebird.test/abc/big.iso" });
  });

  it("shows downloads of shared links and their failures", () => {
    let s = online();
    s = S.applyEvent(s, { event: "file_progress", account: 2, transfer: 4, direction: "download", bytes: 10, total: null }, T0);
    expect(s.transfers["x2-4"]).toMatchObject({ direction: "incoming", status: "active", percent: 0 });
    s = S.applyEvent(s, { event: "file_downloaded", account: 2, transfer: 4, url: "https://x/y.png", path: "/dl/y.png", sha256: "00", bytes: 20 }, T0);
    expect(s.transfers["x2-4"]).toMatchObject({ status: "completed", fileName: "y.png", path: "/dl/y.png" });
    s = S.applyEvent(s, { event: "file_failed", account: 2, transfer: 9, reason: "404 from the upload server" }, T0);
    expect(s.toasts.at(-1)?.text).toBe("File transfer failed: 404 from the upload server.");
  });

  it("puts offers waiting for a decision first", () => {
    let s = S.httpTransferStarted(online(), 2, 1, "carol@lyrebird.test", "a", T0 + 10);
    s = S.applyEvent(
      s,
      { event: "transfer_offered", account: 1, transfer: 2, from: "sip:b@x", display_name: null, file_name: "b", size: null, mime_type: null, sha256: null },
      T0,
    );
    expect(S.transferList(s).map((t) => t.fileName)).toEqual(["b", "a"]);
  });
});

describe("toasts", () => {
  it("shows the same words once, keeps the newest few, and expires them", () => {
    let s = S.emptyState();
    s = S.addToast(s, "one", T0);
    s = S.addToast(s, "one", T0 + 10);
    expect(s.toasts.length).toBe(1);
    for (const w of ["two", "three", "four", "five"]) s = S.addToast(s, w, T0 + 20);
    expect(s.toasts.map((t) => t.text)).toEqual(["two", "three", "four", "five"]);
    s = S.dismissToast(s, s.toasts[0]!.id);
    expect(s.toasts.length).toBe(3);
    expect(S.expireToasts(s, T0 + 20 + S.TOAST_LIFETIME_MS).toasts).toEqual([]);
  });

  it("turns command failures into words", () => {
    const s = S.addErrorToast(S.emptyState(), { kind: "transport", detail: "connection refused" }, T0);
    expect(s.toasts[0]?.text).toBe("Can't reach the server: connection refused.");
  });

  it("ignores engine warnings except the keyring one", () => {
    let s = S.applyEvent(S.emptyState(), { event: "warning", account: 1, detail: "bad SDP line ignored" }, T0);
    expect(s.toasts).toEqual([]);
    s = S.applyEvent(s, { event: "warning", account: null, detail: "no keyring: the password is kept in memory" }, T0);
    expect(s.toasts[0]?.level).toBe("info");
  });
});

describe("contacts from a fresh start", () => {
  it("shows a SIP-only contact with unknown presence", () => {
    const s = S.applyBootstrap(S.emptyState(), bootstrap({ contacts: [contact(1, "sip", "sip:zoe@lyrebird.test")] }));
    expect(S.mergedContacts(s)).toMatchObject([{ key: "zoe@lyrebird.test", name: "zoe", presence: "unknown" }]);
  });
});
