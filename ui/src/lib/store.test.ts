// The store's actions call the shell's commands with the contract's names and arguments, and
// start up in the order the shell expects (listen, bootstrap, then events).
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { bootstrap } from "./fixtures";
import type { EngineEvent } from "./types";

type Handler = (e: { payload: unknown }) => void;

const calls: { command: string; args: Record<string, unknown> | undefined }[] = [];
const listeners = new Map<string, Handler>();
let replies: Record<string, unknown> = {};

/** A reply that makes the command fail with `error` (what Tauri rejects with). */
class Fails {
  constructor(readonly error: unknown) {}
}

vi.mock("@tauri-apps/api/core", () => ({
  invoke: async (command: string, args?: Record<string, unknown>) => {
    calls.push({ command, args });
    const reply = replies[command];
    if (reply instanceof Fails) throw reply.error;
    return typeof reply === "function" ? (reply as (a: unknown) => unknown)(args) : reply;
  },
  Channel: class {
    onmessage: (m: unknown) => void = () => {};
  },
}));

vi.mock("@tauri-apps/api/event", () => ({
  listen: async (name: string, handler: Handler) => {
    calls.push({ command: `listen:${name}`, args: undefined });
    listeners.set(name, handler);
    return () => listeners.delete(name);
  },
}));

function emit(event: EngineEvent): void {
  listeners.get("engine")?.({ payload: event });
}

async function freshStore() {
  vi.resetModules();
  const { app } = await import("./store.svelte");
  return app;
}

beforeEach(() => {
  vi.useFakeTimers({ toFake: ["setTimeout", "setInterval", "Date"] });
  vi.setSystemTime(1_700_001_000_000);
  calls.length = 0;
  listeners.clear();
  replies = { bootstrap: bootstrap(), mark_read: null, conversation: [], room_history: [] };
  Object.assign(globalThis, {
    window: { __TAURI_INTERNALS__: {} },
    document: { hasFocus: () => true },
  });
});

afterEach(() => {
  vi.useRealTimers();
});

describe("start-up", () => {
  it("listens before asking for the stored state, and folds events that came meanwhile", async () => {
    let answer: (v: unknown) => void = () => {};
    replies.bootstrap = () => new Promise((resolve) => (answer = resolve));
    const app = await freshStore();
    const started = app.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(calls.map((c) => c.command)).toEqual(["listen:engine", "listen:open-uri", "bootstrap"]);
    emit({ event: "account_state", account: 1, state: { state: "registered", expires_s: 600, outbound: true } });
    answer(bootstrap());
    await started;
    expect(app.state.booted).toBe(true);
    expect(app.state.accounts["1"]?.status).toBe("registered");
    // Later events are folded in small batches.
    emit({ event: "account_state", account: 2, state: { state: "connected" } });
    emit({ event: "xmpp_online", account: 2, jid: "alice@lyrebird.test/x", resumed: false });
    expect(app.state.accounts["2"]?.status).toBe("connecting");
    await vi.advanceTimersByTimeAsync(20);
    expect(app.state.accounts["2"]?.status).toBe("online");
    // Online XMPP accounts fetch the roster with presence.
    expect(calls.at(-1)).toEqual({ command: "xmpp", args: { account: 2, action: { cmd: "roster" } } });
  });

  it("says when the stored state cannot be read", async () => {
    replies.bootstrap = new Fails({ kind: "history", detail: "database is locked" });
    const app = await freshStore();
    await app.start();
    expect(app.bootError).toBe("Couldn't read or save history: database is locked.");
    expect(app.state.booted).toBe(true);
  });
});

describe("window focus", () => {
  it("marks the open conversation read when the window comes back, not before", async () => {
    const app = await freshStore();
    await app.start();
    await app.openChat(1, "sip:bob@lyrebird.test");
    app.windowFocus(false);
    const marks = () => calls.filter((c) => c.command === "mark_read").length;
    const before = marks();
    emit({ event: "message_received", account: 1, from: "sip:bob@lyrebird.test", content_type: "text/plain", body: "psst" });
    await vi.advanceTimersByTimeAsync(20);
    expect(app.state.conversations["1|sip:bob@lyrebird.test"]?.unread).toBe(1);
    expect(marks()).toBe(before);
    app.windowFocus(true);
    expect(app.state.conversations["1|sip:bob@lyrebird.test"]?.unread).toBe(0);
    await vi.advanceTimersByTimeAsync(0);
    expect(calls.filter((c) => c.command === "mark_read").at(-1)?.args).toEqual({ account: 1, peer: "sip:bob@lyrebird.test" });
    expect(marks()).toBe(before + 1);
  });
});

describe("commands", () => {
  it("sends SIP messages, XMPP chats and room messages through the right command", async () => {
    const app = await freshStore();
    await app.start();
    replies.send_sip_message = 31;
    replies.xmpp = { message: "stanza-1" };
    await app.openChat(1, "sip:bob@lyrebird.test");
    const sipConv = app.state.conversations["1|sip:bob@lyrebird.test"]!;
    expect(await app.send(sipConv, "  hi bob ")).toBe(true);
    expect(calls.find((c) => c.command === "send_sip_message")?.args).toEqual({
      account: 1,
      to: "sip:bob@lyrebird.test",
      body: "hi bob",
    });
    expect(app.state.messages["1|sip:bob@lyrebird.test"]?.at(-1)).toMatchObject({ id: "sip-31", body: "hi bob", state: "queued" });

    await app.openChat(2, "carol@lyrebird.test");
    const xmppConv = app.state.conversations["2|carol@lyrebird.test"]!;
    await app.send(xmppConv, "hi carol");
    expect(calls.filter((c) => c.command === "xmpp").at(-1)?.args).toEqual({
      account: 2,
      action: { cmd: "message", to: "carol@lyrebird.test", body: "hi carol" },
    });
    expect(calls.find((c) => c.command === "mark_read")?.args).toEqual({ account: 1, peer: "sip:bob@lyrebird.test" });
    expect(calls.find((c) => c.command === "conversation")?.args).toEqual({ account: 1, peer: "sip:bob@lyrebird.test", limit: 200 });

    await app.joinRoom(2, "team@conference.lyrebird.test", "alice");
    expect(calls.filter((c) => c.command === "xmpp").at(-1)?.args).toMatchObject({
      action: { cmd: "join", room: "team@conference.lyrebird.test", nick: "alice" },
    });
    expect(calls.at(-1)).toMatchObject({ command: "room_history", args: { room: "team@conference.lyrebird.test" } });
    const room = app.state.conversations["2|team@conference.lyrebird.test"]!;
    await app.send(room, "hello room");
    expect(calls.filter((c) => c.command === "xmpp").at(-1)?.args).toEqual({
      account: 2,
      action: { cmd: "room_message", room: "team@conference.lyrebird.test", body: "hello room" },
    });
  });

  it("corrects the last message and sends typing notifications only on XMPP 1:1", async () => {
    const app = await freshStore();
    await app.start();
    replies.xmpp = { message: "m-1" };
    await app.openChat(2, "carol@lyrebird.test");
    const conv = app.state.conversations["2|carol@lyrebird.test"]!;
    await app.send(conv, "teh");
    replies.xmpp = {};
    await app.correct(conv, "m-1", "the");
    expect(calls.at(-1)?.args).toEqual({ account: 2, action: { cmd: "correct", to: "carol@lyrebird.test", message: "m-1", body: "the", room: false } });
    expect(app.state.messages[conv.key]?.at(-1)).toMatchObject({ body: "the", corrected: true });
    await app.chatState(conv, "composing");
    expect(calls.at(-1)?.args).toEqual({ account: 2, action: { cmd: "chat_state", to: "carol@lyrebird.test", state: "composing" } });
    const before = calls.length;
    await app.openChat(1, "sip:bob@lyrebird.test");
    const n = calls.length;
    await app.chatState(app.state.conversations["1|sip:bob@lyrebird.test"]!, "composing");
    expect(calls.length).toBe(n);
    expect(before).toBeLessThan(n);
  });

  it("sends dropped files over MSRP to SIP peers and by HTTP upload to XMPP peers", async () => {
    const app = await freshStore();
    await app.start();
    replies.send_file = 8;
    replies.xmpp = { transfer: 3 };
    await app.openChat(1, "sip:bob@lyrebird.test");
    await app.sendFiles(app.state.conversations["1|sip:bob@lyrebird.test"]!, ["/tmp/a.txt", "/tmp/b.txt"]);
    expect(calls.filter((c) => c.command === "send_file").map((c) => c.args)).toEqual([
      { account: 1, to: "sip:bob@lyrebird.test", path: "/tmp/a.txt" },
      { account: 1, to: "sip:bob@lyrebird.test", path: "/tmp/b.txt" },
    ]);
    await app.openChat(2, "carol@lyrebird.test");
    await app.sendFiles(app.state.conversations["2|carol@lyrebird.test"]!, ["/home/alice/photo.jpg"]);
    expect(calls.at(-1)?.args).toEqual({
      account: 2,
      action: { cmd: "share_file", to: "carol@lyrebird.test", path: "/home/alice/photo.jpg", room: false, content_type: null },
    });
    expect(app.state.transfers["x2-3"]).toMatchObject({ fileName: "photo.jpg", status: "active", direction: "outgoing" });
  });

  it("places, answers, mutes and hangs up calls by id", async () => {
    const app = await freshStore();
    await app.start();
    replies.start_call = 77;
    replies.set_muted = null;
    await app.startCall(1, "sip:echo@lyrebird.test");
    expect(calls.at(-1)).toEqual({ command: "start_call", args: { account: 1, target: "sip:echo@lyrebird.test" } });
    const call = app.state.calls["77"]!;
    expect(call.status).toBe("dialing");
    await app.toggleMute(call);
    expect(calls.at(-1)).toEqual({ command: "set_muted", args: { call: 77, muted: true } });
    expect(app.state.calls["77"]?.muted).toBe(true);
    replies.set_muted = new Fails({ kind: "unknown_call", detail: 77 });
    await app.toggleMute(app.state.calls["77"]!);
    expect(app.state.calls["77"]?.muted).toBe(true); // rolled back after the failure
    expect(app.state.toasts.at(-1)?.text).toBe("That call has already ended.");
    await app.hangup(call);
    expect(calls.at(-1)).toEqual({ command: "hangup_call", args: { call: 77 } });
  });

  it("turns links into a dialpad number or a chat", async () => {
    const app = await freshStore();
    await app.start();
    app.openLink("tel:+1 555 0100");
    expect(app.view).toBe("calls");
    expect(app.dialPrefill).toBe("+15550100");
    app.openLink("xmpp:carol@lyrebird.test");
    await vi.advanceTimersByTimeAsync(0);
    expect(app.view).toBe("chats");
    expect(app.state.openConversation).toBe("2|carol@lyrebird.test");
    app.openLink("https://evil.example");
    expect(app.state.toasts.at(-1)?.text).toBe("Lyrebird cannot open https://evil.example.");
  });

  it("turns engine errors into toasts in words, and forgets accounts", async () => {
    const app = await freshStore();
    await app.start();
    replies.start_call = new Fails({ kind: "transport", detail: "connection refused" });
    await app.startCall(1, "sip:bob@lyrebird.test");
    expect(app.state.calls).toEqual({});
    expect(app.state.toasts.at(-1)?.text).toBe("Can't reach the server: connection refused.");
    replies.forget_account = null;
    await app.forgetAccount(2);
    expect(calls.at(-1)).toEqual({ command: "forget_account", args: { account: 2 } });
    expect(app.state.accounts["2"]).toBeUndefined();
  });
});

describe("what leaves the screen by itself", () => {
  it("lets information toasts go when due, even without the tick, and keeps errors", async () => {
    const app = await freshStore(); // not started: no once-a-second tick
    app.info("Asked bob@localhost to share presence.");
    app.fail({ kind: "transport", detail: "connection refused" });
    await vi.advanceTimersByTimeAsync(4_000);
    expect(app.state.toasts.length).toBe(2);
    await vi.advanceTimersByTimeAsync(1_100);
    expect(app.state.toasts.map((t) => t.level)).toEqual(["error"]);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(app.state.toasts.length).toBe(1);
  });

  it("folds an ended call's summary into history a few seconds after it ended", async () => {
    const app = await freshStore();
    await app.start();
    replies.start_call = 5;
    await app.startCall(1, "sip:bob@lyrebird.test");
    emit({ event: "call_state", account: 1, call: 5, state: { state: "audio_flowing" } });
    await vi.advanceTimersByTimeAsync(3_000);
    replies.recent_calls = [];
    emit({ event: "call_state", account: 1, call: 5, state: { state: "ended", reason: "local hangup", status: null } });
    await vi.advanceTimersByTimeAsync(20);
    expect(app.state.calls["5"]?.status).toBe("ended");
    await vi.advanceTimersByTimeAsync(4_000);
    expect(app.state.calls).toEqual({});
  });
});
