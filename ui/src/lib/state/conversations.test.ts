// The conversations slice: messages, delivery states, corrections, history, typing, rooms.
import { describe, expect, it } from "vitest";
import * as S from ".";
import type { EngineEvent } from "../types";
import { chat, record, onlineState as online, T0 } from "../fixtures";

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
    expect(s.toasts.at(-1)?.text).toBe("Message to Bob not delivered: 404 Not Found."); // named as a contact
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
