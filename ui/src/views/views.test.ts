// The views render the DOM contract (notes/desktop-contract.md) the window tests click by:
// rendered on the server side from a realistic state, the attributes must be there and right.
import { render } from "svelte/server";
import { beforeEach, describe, expect, it } from "vitest";
import App from "../App.svelte";
import InCall from "../components/InCall.svelte";
import IncomingCall from "../components/IncomingCall.svelte";
import TransferDialog from "../components/TransferDialog.svelte";
import { features } from "../lib/features";
import { bootstrap, chat } from "../lib/fixtures";
import * as S from "../lib/state";
import { app } from "../lib/store.svelte";
import Calls from "./Calls.svelte";
import Chats from "./Chats.svelte";
import Contacts from "./Contacts.svelte";
import Settings from "./Settings.svelte";
import Transfers from "./Transfers.svelte";

const NOW = 1_700_001_000_000;

/** The text of the element with this `data-testid`, tags dropped and spaces squeezed. */
function textOf(html: string, testid: string): string {
  const start = html.search(new RegExp(`<(\\w+)[^>]*data-testid="${testid}"`));
  if (start < 0) return "";
  const tag = /^<(\w+)/.exec(html.slice(start))?.[1] ?? "div";
  // The element ends where its tag closes at the same depth.
  let depth = 0;
  const re = new RegExp(`<(/?)${tag}\\b[^>]*>`, "g");
  re.lastIndex = start;
  let end = html.length;
  for (let m = re.exec(html); m; m = re.exec(html)) {
    depth += m[1] ? -1 : 1;
    if (depth === 0) {
      end = m.index + m[0].length;
      break;
    }
  }
  return html
    .slice(start, end)
    .replace(/<!--[^]*?-->/g, "")
    .replace(/<[^>]*>/g, " ")
    .replace(/\s+/g, " ")
    .trim();
}

/** Alice in a call with Bob (call 1), answered 65 s ago. */
function inCallWithBob(): S.AppState {
  const s = S.callStarted(app.state, 1, 1, "sip:bob@lyrebird.test", NOW - 65_000);
  return S.applyEvent(s, { event: "call_state", account: 1, call: 1, state: { state: "audio_flowing" } }, NOW - 65_000);
}

function attrs(html: string, testid: string): string[] {
  const re = new RegExp(`<[^>]*data-testid="${testid}"[^>]*>`, "g");
  return html.match(re) ?? [];
}

beforeEach(() => {
  let s = S.applyBootstrap(S.emptyState(), bootstrap());
  s = S.applyEvents(
    s,
    [
      { event: "account_state", account: 1, state: { state: "registered", expires_s: 600, outbound: true } },
      { event: "xmpp_online", account: 2, jid: "alice@lyrebird.test/desk", resumed: false },
      { event: "presence", account: 2, jid: "carol@lyrebird.test/phone", available: true, show: "dnd", status: null },
      { event: "subscription_request", account: 2, from: "frank@lyrebird.test" },
    ],
    NOW,
  );
  app.state = s;
  app.now = NOW;
  app.detached = false;
  app.view = "contacts";
});

describe("contacts view", () => {
  it("lists merged contacts with presence, and subscription requests", () => {
    const { body } = render(Contacts);
    const items = attrs(body, "contact-item");
    expect(items.length).toBe(3);
    expect(items[0]).toContain('data-address="carol@lyrebird.test"');
    expect(items[0]).toContain('data-presence="dnd"');
    expect(body).toContain('data-addresses="sip:bob@lyrebird.test bob@lyrebird.test"');
    expect(attrs(body, "contact-call").length).toBe(3);
    expect(attrs(body, "contact-chat").length).toBe(3);
    expect(attrs(body, "subscription-request")[0]).toContain('data-from="frank@lyrebird.test"');
    for (const id of ["contact-search", "contact-add-address", "contact-add", "subscription-approve", "subscription-deny"]) {
      expect(attrs(body, id).length, id).toBe(1);
    }
    expect(body).toContain("Do not disturb");
  });

  it("calls over XMPP a contact with no SIP address whose device can take a call, and says so", () => {
    const callLabels = () =>
      attrs(render(Contacts).body, "contact-call").map((a) => [/aria-label="([^"]*)"/.exec(a)?.[1], /title="([^"]*)"/.exec(a)?.[1]]);
    expect(callLabels()[0]).toEqual(["Call Carol", "Call"]);
    app.state = S.applyEvent(
      app.state,
      { event: "peer_features", account: 2, jid: "carol@lyrebird.test/phone", features: [...S.AUDIO_CALL_FEATURES] },
      NOW,
    );
    expect(callLabels()).toEqual([
      ["Call Carol (XMPP)", "Call (XMPP)"],
      ["Call Bob", "Call"],
      ["Call dave", "Call"],
    ]);
  });
});

describe("chats view", () => {
  it("shows conversations with unread badges and the open one's messages", () => {
    let s = S.applyEvent(app.state, chat({ id: "m1", peer: "carol@lyrebird.test", body: "<script>x()</script>" }), NOW);
    s = S.openConversation(s, 1, "sip:bob@lyrebird.test");
    s = S.addOutgoingSip(s, 1, "sip:bob@lyrebird.test", 4, "hello", NOW);
    s = S.applyEvent(s, { event: "message_delivered", account: 1, message: 4 }, NOW);
    app.state = s;
    const { body } = render(Chats);
    const convs = attrs(body, "conversation-item");
    expect(convs.length).toBe(2);
    expect(convs[0]).toContain('data-peer="sip:bob@lyrebird.test"');
    expect(convs[0]).toContain('data-account="1"');
    expect(attrs(body, "unread-badge").length).toBe(1);
    expect(body).toMatch(/data-testid="unread-badge"[^>]*>3</);
    const msgs = attrs(body, "message-item");
    expect(msgs.length).toBe(1);
    expect(msgs[0]).toContain('data-direction="out"');
    expect(msgs[0]).toContain('data-state="sent"');
    expect(msgs[0]).toContain('data-id="sip-4"');
    expect(body).not.toContain("<script>x()");
    // People by name, with an initials avatar; the address only where it helps.
    expect(body).toMatch(/data-testid="conversation-item"[^>]*data-peer="sip:bob@lyrebird.test"[^>]*>[^]*?aria-hidden="true">B<\/span>[^]*?>Bob</);
    expect(body).not.toMatch(/>sip:bob@lyrebird.test</);
    for (const id of ["message-list", "composer-input", "composer-send", "composer-attach", "chat-search", "room-join-address", "room-join-nick", "room-join"]) {
      expect(attrs(body, id).length, id).toBe(1);
    }
  });

  it("shows a room's occupants and the typing indicator", () => {
    const room = "team@conference.lyrebird.test";
    let s = S.roomJoining(app.state, 2, room, "alice");
    s = S.applyEvents(
      s,
      [
        { event: "room_joined", account: 2, room, nick: "alice" },
        { event: "occupant", account: 2, room, nick: "alice", jid: null, available: true, role: null, is_self: true },
        { event: "occupant", account: 2, room, nick: "bob", jid: null, available: true, role: null, is_self: false },
      ],
      NOW,
    );
    app.state = S.openConversation(s, 2, room, true);
    let { body } = render(Chats);
    expect(attrs(body, "occupant-item").map((a) => /data-nick="([^"]*)"/.exec(a)?.[1])).toEqual(["alice", "bob"]);
    expect(attrs(body, "typing-indicator")).toEqual([]);
    s = S.openConversation(app.state, 2, "carol@lyrebird.test");
    app.state = S.applyEvent(s, { event: "chat_state", account: 2, from: "carol@lyrebird.test/phone", state: "composing" }, NOW);
    ({ body } = render(Chats));
    expect(attrs(body, "typing-indicator").length).toBe(1);
  });
});

describe("calls", () => {
  it("shows the call in progress at the top of history, by name", () => {
    app.state = inCallWithBob();
    const { body } = render(Calls);
    expect(body).not.toContain("No calls yet");
    const items = attrs(body, "call-history-item");
    expect(items.length).toBe(3);
    expect(items[0]).toContain('data-in-progress="true"');
    expect(items[0]).toContain('aria-label="Outgoing, in progress: Bob"');
    expect(items[1]).toContain('data-in-progress="false"');
    expect(body).not.toMatch(/>sip:bob@lyrebird.test</);
    expect(body).toContain('aria-label="Call Bob back"');
  });

  it("has the dialpad and history with missed calls marked", () => {
    const { body } = render(Calls);
    for (const id of ["dial-account", "dial-input", "dial-call"]) expect(attrs(body, id).length, id).toBe(1);
    const items = attrs(body, "call-history-item");
    expect(items.length).toBe(2);
    expect(items[0]).toContain('data-missed="true"');
    expect(items[0]).toContain('data-direction="in"');
    expect(items[0]).toContain('data-peer="sip:bob@lyrebird.test"');
    expect(items[1]).toContain('data-missed="false"');
    // Where recorded calls are, and a way to open that folder.
    expect(body).toContain("Recorded calls go to /home/alice/.local/share/lyrebird/recordings");
    expect(attrs(body, "calls-open-recordings").length).toBe(1);
  });

  it("shows the incoming call screen with the caller's name, escaped", () => {
    let s = S.applyEvent(app.state, { event: "incoming_call", account: 1, call: 12, from: "sip:zoe@lyrebird.test", display_name: "<b>Zoe</b>" }, NOW);
    app.state = s;
    let { body } = render(IncomingCall, { props: { call: S.ringingIncoming(s)! } });
    expect(attrs(body, "incoming-call")[0]).toContain('data-call="12"');
    expect(textOf(body, "incoming-caller")).toBe("Z &lt;b>Zoe&lt;/b> zoe@lyrebird.test");
    for (const id of ["incoming-caller", "incoming-answer", "incoming-decline"]) expect(attrs(body, id).length, id).toBe(1);
    expect(attrs(body, "incoming-while-in-call")).toEqual([]);
    expect(textOf(body, "incoming-answer")).toBe("Answer");
    // A contact is named as the person saved them, whatever name the call carries.
    s = S.applyEvent(app.state, { event: "incoming_call", account: 1, call: 13, from: "sip:bob@lyrebird.test", display_name: "Robert" }, NOW);
    ({ body } = render(IncomingCall, { props: { call: s.calls["13"]! } }));
    expect(textOf(body, "incoming-caller")).toBe("B Bob bob@lyrebird.test");
  });

  it("offers hold-and-answer and decline to a second caller while in a call", () => {
    app.state = inCallWithBob();
    app.state = S.applyEvent(app.state, { event: "incoming_call", account: 1, call: 2, from: "sip:carol@lyrebird.test", display_name: null }, NOW);
    const { body } = render(App);
    expect(attrs(body, "incoming-call")[0]).toContain('data-call="2"');
    expect(textOf(body, "incoming-caller")).toContain("Carol");
    expect(textOf(body, "incoming-while-in-call")).toBe("You are in a call with Bob; answering puts it on hold.");
    expect(textOf(body, "incoming-answer")).toBe("Hold and answer");
    expect(attrs(body, "incoming-answer")[0]).toContain('aria-describedby="incoming-while-in-call"');
    expect(textOf(body, "incoming-decline")).toBe("Decline");
    // The call with Bob is still shown, as it was.
    expect(attrs(body, "in-call").map((a) => /data-call="(\d+)"/.exec(a)?.[1])).toEqual(["1"]);
  });

  it("shows the in-call view with timer, mute state, keypad and meters", () => {
    let s = S.callStarted(app.state, 1, 7, "sip:echo@lyrebird.test", NOW - 65_000);
    s = S.applyEvent(s, { event: "call_state", account: 1, call: 7, state: { state: "audio_flowing" } }, NOW - 65_000);
    s = S.setMuted(s, "7", true);
    app.state = s;
    const { body } = render(InCall, { props: { call: S.currentCall(s)! } });
    expect(textOf(body, "call-peer")).toBe("echo");
    const root = attrs(body, "in-call")[0] ?? "";
    expect(root).toContain('data-call="7"');
    expect(root).toContain('data-state="audio"');
    expect(body).toMatch(/data-testid="call-timer"[^>]*>1:05</);
    expect(attrs(body, "call-mute")[0]).toContain('aria-pressed="true"');
    for (const d of ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "*", "#"]) {
      expect(attrs(body, `call-dtmf-${d.replace("*", "\\*")}`).length, d).toBe(1);
    }
    expect(attrs(body, "level-in")[0]).toMatch(/^<meter[^>]*data-level="0"/);
    expect(attrs(body, "level-out")[0]).toMatch(/^<meter/);
    expect(attrs(body, "call-quality")[0]).toContain('data-quality="unknown"');
    expect(attrs(body, "call-hangup").length).toBe(1);
  });
});

describe("calls with XMPP contacts", () => {
  /** Alice (account 2) talking with Bob over XMPP, Carol's call on hold. */
  function xmppCalls(): S.AppState {
    return S.applyEvents(
      app.state,
      [
        { event: "incoming_call", account: 2, call: 21, from: "carol@lyrebird.test", display_name: null },
        { event: "call_state", account: 2, call: 21, state: { state: "audio_flowing" } },
        { event: "call_state", account: 2, call: 22, state: { state: "dialing", direction: "outgoing", peer: "bob@lyrebird.test" } },
        { event: "call_state", account: 2, call: 22, state: { state: "audio_flowing" } },
        { event: "call_hold", account: 2, call: 21, local: true, remote: false },
      ],
      NOW - 10_000,
    );
  }

  it("shows the caller of an incoming XMPP call by name", () => {
    app.state = S.applyEvent(app.state, { event: "incoming_call", account: 2, call: 20, from: "carol@lyrebird.test", display_name: null }, NOW);
    const { body } = render(IncomingCall, { props: { call: S.ringingIncoming(app.state)! } });
    expect(textOf(body, "incoming-caller")).toBe("C Carol carol@lyrebird.test");
    expect(body).toContain("to alice@lyrebird.test");
  });

  it("offers hold, record and merge but no transfer, and leaving ends the conference for everyone", () => {
    app.state = xmppCalls();
    let { body } = render(App);
    expect(attrs(body, "in-call").map((a) => /aria-label="([^"]*)"/.exec(a)?.[1])).toEqual(["Call with Bob", "Call with Carol"]);
    expect(attrs(body, "call-hold").length).toBe(2);
    expect(attrs(body, "call-record").length).toBe(2);
    expect(attrs(body, "call-merge").length).toBe(1);
    expect(attrs(body, "call-transfer")).toEqual([]);
    // Connecting the other two would be a transfer: the engine hangs up both instead.
    app.state = S.applyEvent(app.state, { event: "conference", calls: [22, 21] }, NOW);
    ({ body } = render(App));
    expect(textOf(body, "conference-leave")).toBe("End the conference for everyone");
  });

  it("calls an XMPP call back over its XMPP account, even with no SIP account", () => {
    app.state = S.applyEvent(
      S.removeAccount(xmppCalls(), 1),
      { event: "call_state", account: 2, call: 21, state: { state: "ended", reason: "answered on another of your devices", status: null } },
      NOW,
    );
    const { body } = render(Calls);
    expect(attrs(body, "call-history-item").map((a) => /data-peer="([^"]*)"/.exec(a)?.[1])).toEqual([
      "bob@lyrebird.test",
      "carol@lyrebird.test",
      "sip:bob@lyrebird.test",
      "sip:bob@lyrebird.test",
    ]);
    const callBack = body.match(/<button[^>]*aria-label="Call [^"]* back"[^>]*>/g) ?? [];
    expect(callBack.map((b) => [/aria-label="Call ([^"]*) back"/.exec(b)?.[1], b.includes("disabled")])).toEqual([
      ["Carol", false],
      ["Bob B.", true],
      ["Bob B.", true],
    ]);
  });
});

describe("several calls", () => {
  /** In a call with Carol (answered, active) while the call with Bob goes on. */
  function twoCalls(): S.AppState {
    let s = inCallWithBob();
    s = S.applyEvents(
      s,
      [
        { event: "incoming_call", account: 1, call: 2, from: "sip:carol@lyrebird.test", display_name: null },
        { event: "call_state", account: 1, call: 2, state: { state: "audio_flowing" } },
      ],
      NOW - 10_000,
    );
    return S.applyEvent(s, { event: "dtmf_received", account: 1, call: 2, digit: "4" }, NOW);
  }

  it("lists every call with its state, timer and hang-up, the active one first", () => {
    app.state = twoCalls();
    const { body } = render(App);
    expect(body).toMatch(/<ul[^>]*aria-label="Calls"[^>]*data-testid="call-list"/);
    const cards = attrs(body, "in-call");
    expect(cards.map((a) => [/data-call="(\d+)"/.exec(a)?.[1], /data-active="(\w+)"/.exec(a)?.[1]])).toEqual([
      ["2", "true"],
      ["1", "false"],
    ]);
    expect(cards[0]).toContain('aria-label="Call with Carol"');
    expect(cards[1]).toContain('aria-label="Call with Bob"');
    expect(attrs(body, "call-peer").length).toBe(2);
    expect(body).not.toMatch(/data-testid="call-peer"[^>]*>sip:/);
    expect(body).toMatch(/data-testid="call-timer"[^>]*>0:10</);
    expect(body).toMatch(/data-testid="call-timer"[^>]*>1:05</);
    expect(attrs(body, "call-hangup").map((a) => /aria-label="([^"]*)"/.exec(a)?.[1])).toEqual([
      "Hang up the call with Carol",
      "Hang up the call with Bob",
    ]);
    // The keypad and meters are the active call's; the other can be switched to.
    expect(attrs(body, "call-dtmf-1").length).toBe(1);
    expect(attrs(body, "level-out").length).toBe(1);
    expect(attrs(body, "call-switch")[0]).toContain('aria-label="Switch to the call with Bob"');
    expect(textOf(body, "call-dtmf-received")).toBe("Carol pressed 4");
  });

  it("offers hold, transfer and record on every call, and merge on the active one", () => {
    app.state = S.applyEvent(twoCalls(), { event: "call_hold", account: 1, call: 1, local: true, remote: false }, NOW);
    const { body } = render(App);
    expect(attrs(body, "call-hold").map((a) => /aria-label="([^"]*)"/.exec(a)?.[1])).toEqual([
      "Put Carol on hold",
      "Resume the call with Bob",
    ]);
    expect(attrs(body, "call-transfer").length).toBe(2);
    expect(attrs(body, "call-record").length).toBe(2);
    expect(attrs(body, "call-merge").map((a) => /aria-label="([^"]*)"/.exec(a)?.[1])).toEqual([
      "Merge the call with Carol and the calls on hold into a conference",
    ]);
    expect(attrs(body, "in-call")[1]).toContain('data-held="true"');
    expect(textOf(body, "in-call")).toContain("In call");
    expect(body).toMatch(/data-testid="in-call"[^>]*data-call="1"[^]*On hold/);
  });

  it("hides merge and record while the engine cannot do them", () => {
    app.state = twoCalls();
    Object.assign(features, { merge: false, record: false });
    try {
      const { body } = render(App);
      for (const id of ["call-merge", "call-record"]) expect(attrs(body, id), id).toEqual([]);
      expect(attrs(body, "call-hold").length).toBe(2);
    } finally {
      Object.assign(features, { merge: true, record: true });
    }
  });

  it("shows the conference's calls, each with split, and no merge once all are in it", () => {
    app.state = S.applyEvent(twoCalls(), { event: "conference", calls: [2, 1] }, NOW);
    const { body } = render(App);
    expect(attrs(body, "conference").length).toBe(1);
    expect(textOf(body, "conference")).toContain("Conference · you and 2 others C Carol Split B Bob Split");
    expect(attrs(body, "conference-member").map((a) => /data-call="(\d+)"/.exec(a)?.[1])).toEqual(["2", "1"]);
    expect(attrs(body, "conference-split").map((a) => /aria-label="([^"]*)"/.exec(a)?.[1])).toEqual([
      "Split Carol out of the conference",
      "Split Bob out of the conference",
    ]);
    expect(attrs(body, "call-merge")).toEqual([]);
    expect(body).toContain("In conference with Bob");
  });

  it("offers blind transfer to an address, or attended transfer to another call", () => {
    const start = app.state;
    app.state = twoCalls();
    const carol = S.currentCall(app.state)!;
    expect(attrs(render(InCall, { props: { call: carol } }).body, "call-transfer-dialog")).toEqual([]);
    let { body } = render(TransferDialog, { props: { call: carol, onclose: () => undefined } });
    expect(attrs(body, "call-transfer-dialog")[0]).toMatch(/role="dialog"[^>]*aria-modal="true"[^>]*aria-label="Transfer the call with Carol"/);
    expect(attrs(body, "call-transfer-target")[0]).toContain('aria-label="Number or address to transfer Carol to"');
    expect(attrs(body, "call-transfer-blind")[0]).toMatch(/disabled/);
    expect(attrs(body, "call-transfer-attended").map((a) => /data-to="(\d+)"/.exec(a)?.[1])).toEqual(["1"]);
    expect(textOf(body, "call-transfer-attended")).toBe("Connect with Bob");
    // The other call is shown by name with its avatar, never as its address.
    expect(body).toMatch(/class="avatar[^"]*"[^>]*>B<\/span>/);
    expect(body).not.toContain(">sip:");
    expect(attrs(body, "call-transfer-cancel").length).toBe(1);
    // With no other call, only an address can be given.
    app.state = start;
    app.state = inCallWithBob();
    ({ body } = render(TransferDialog, { props: { call: S.currentCall(app.state)!, onclose: () => undefined } }));
    expect(attrs(body, "call-transfer-target").length).toBe(1);
    expect(attrs(body, "call-transfer-attended")).toEqual([]);
  });

  it("names the file a recorded call goes into", () => {
    app.state = S.applyEvent(twoCalls(), { event: "call_recording", account: 1, call: 2, path: "/data/recordings/call-2.wav" }, NOW);
    const { body } = render(App);
    expect(textOf(body, "call-recording")).toBe("· Recording to call-2.wav");
    expect(attrs(body, "call-recording")[0]).toContain('title="/data/recordings/call-2.wav"');
    expect(attrs(body, "call-record")[0]).toContain('aria-pressed="true"');
    expect(attrs(body, "call-record")[0]).toContain('aria-label="Stop recording the call with Carol"');
  });

  it("says which sound-card device a call goes on without", () => {
    let s = S.applyEvent(twoCalls(), { event: "call_device_unavailable", account: 1, call: 2, device: "microphone", reason: "no input device (default)" }, NOW);
    app.state = s;
    let { body } = render(App);
    expect(textOf(body, "call-no-microphone")).toContain("No microphone: Carol hears silence.");
    expect(textOf(body, "call-no-microphone")).toContain("(no input device (default))");
    expect(attrs(body, "call-no-speaker")).toEqual([]);
    s = S.applyEvent(s, { event: "call_device_unavailable", account: 1, call: 2, device: "speaker", reason: "<b>busy</b>" }, NOW);
    app.state = s;
    ({ body } = render(App));
    expect(textOf(body, "call-no-speaker")).toContain("No speaker: you cannot hear Carol.");
    expect(body).not.toContain("<b>busy</b>");
  });

  it("sums up an ended call for a few seconds, then folds it into history", () => {
    let s = S.applyEvent(inCallWithBob(), { event: "call_state", account: 1, call: 1, state: { state: "ended", reason: "remote_hangup", status: null } }, NOW);
    app.state = s;
    app.view = "transfers";
    let { body } = render(App);
    expect(attrs(body, "in-call")).toEqual([]);
    expect(attrs(body, "call-summary")[0]).toContain('aria-label="Call with Bob ended"');
    expect(body).toMatch(/Call ended · <span data-testid="call-summary-duration">1:05<\/span> · Remote hangup/);
    expect(body).not.toMatch(/<button[^>]*disabled/);
    s = S.dropEndedCalls(s, NOW + S.ENDED_CALL_LINGER_MS);
    app.state = s;
    app.view = "calls";
    ({ body } = render(App));
    expect(attrs(body, "call-summary")).toEqual([]);
    expect(attrs(body, "call-history-item")[0]).toContain('data-in-progress="false"');
    expect(attrs(body, "call-history-item")[0]).toContain('data-peer="sip:bob@lyrebird.test"');
  });
});

describe("toasts", () => {
  it("lets information go after a few seconds, and keeps errors until dismissed", () => {
    let s = S.addToast(app.state, "Asked bob@localhost to share presence.", NOW, "info");
    s = S.addErrorToast(s, { kind: "transport", detail: "refused" }, NOW);
    app.state = s;
    let { body } = render(App);
    expect(attrs(body, "toast").length).toBe(2);
    app.state = S.expireToasts(s, NOW + S.TOAST_LIFETIME_MS);
    ({ body } = render(App));
    expect(attrs(body, "toast").length).toBe(1);
    expect(body).not.toContain("share presence");
    expect(body).toContain("Can't reach the server: refused.");
    expect(body).toContain('aria-label="Dismiss message"');
  });
});

describe("transfers view", () => {
  it("shows offers with accept/decline and progress with rate and time left", () => {
    let s = S.applyEvent(
      app.state,
      { event: "transfer_offered", account: 1, transfer: 5, from: "sip:bob@lyrebird.test", display_name: null, file_name: "a.txt", size: 10, mime_type: null, sha256: null },
      NOW,
    );
    s = S.applyEvents(
      s,
      [
        { event: "transfer_state", account: 1, transfer: 6, state: { state: "offering", peer: "sip:bob@lyrebird.test", file_name: "b.bin", size: 4_000_000 } },
        { event: "transfer_progress", account: 1, transfer: 6, bytes: 1_000_000, total: 4_000_000, percent: 25, rate_bps: 1_048_576, eta_ms: 3000 },
      ],
      NOW,
    );
    app.state = s;
    const { body } = render(Transfers);
    const items = attrs(body, "transfer-item");
    expect(items[0]).toContain('data-transfer="5"');
    expect(body).toMatch(/From<\/span>[^]*?>Bob<\/span>/);
    expect(body).not.toContain("From sip:");
    expect(items[0]).toContain('data-state="offered"');
    expect(items[1]).toContain('data-state="active"');
    expect(attrs(body, "transfer-accept").length).toBe(1);
    expect(attrs(body, "transfer-decline").length).toBe(1);
    expect(attrs(body, "transfer-cancel").length).toBe(1);
    const progress = attrs(body, "transfer-progress");
    expect(progress[1]).toMatch(/^<progress/);
    expect(progress[1]).toContain('data-percent="25"');
    expect(progress[1]).toContain('value="25"');
    expect(body).toMatch(/data-testid="transfer-rate"[^>]*>1.0 MB\/s</);
    expect(body).toMatch(/data-testid="transfer-eta"[^>]*>a few seconds left</);
  });

  it("offers to open the folder when a file has arrived", () => {
    app.state = S.applyEvents(
      app.state,
      [
        { event: "transfer_offered", account: 1, transfer: 5, from: "sip:b@x", display_name: null, file_name: "a.txt", size: 10, mime_type: null, sha256: null },
        { event: "transfer_state", account: 1, transfer: 5, state: { state: "completed", bytes: 10, sha256: "00", path: "/dl/a.txt", duplicate_bytes: 0, out_of_order_writes: 0 } },
      ],
      NOW,
    );
    const { body } = render(Transfers);
    expect(attrs(body, "transfer-item")[0]).toContain('data-state="completed"');
    expect(attrs(body, "transfer-progress")[0]).toContain('data-percent="100"');
    expect(attrs(body, "transfer-open-folder").length).toBe(1);
  });
});

describe("settings and first run", () => {
  it("lists accounts with their state and has the account form and audio controls", () => {
    const { body } = render(Settings);
    const items = attrs(body, "account-item");
    expect(items[0]).toContain('data-account="1"');
    expect(items[0]).toContain('data-state="registered"');
    expect(items[1]).toContain('data-state="online"');
    for (const id of [
      "account-kind", "account-ws-url", "account-address", "account-password", "account-display-name",
      "account-outbound-proxy", "account-turn-url", "account-turn-username", "account-turn-credential",
      "account-msrp-relay-ws-url", "account-msrp-relay-uri", "account-remember", "account-check",
      "account-check-result", "account-save", "settings-input-device", "settings-output-device",
      "settings-meter", "settings-test-audio", "settings-autostart", "settings-theme",
    ]) {
      expect(attrs(body, id).length, id).toBe(1);
    }
  });

  it("greys out 'remember password' and says why when there is no keyring", () => {
    app.state = { ...app.state, keyringAvailable: false };
    const { body } = render(Settings);
    expect(attrs(body, "account-remember")[0]).toContain("disabled");
    expect(body).toContain("No system keyring is available");
  });

  it("starts with the account form when there is no account, and the navigation otherwise", () => {
    app.state = { ...S.emptyState(), booted: true };
    let { body } = render(App);
    expect(body).toContain("Welcome to Lyrebird");
    expect(attrs(body, "nav-contacts")).toEqual([]);
    app.state = S.applyBootstrap(S.emptyState(), bootstrap());
    ({ body } = render(App));
    for (const id of ["nav-contacts", "nav-chats", "nav-calls", "nav-transfers", "nav-settings"]) {
      expect(attrs(body, id).length, id).toBe(1);
    }
    expect(attrs(body, "contact-item").length).toBe(3);
    expect(attrs(body, "toast")).toEqual([]);
  });

  it("shows errors in a status region", () => {
    app.state = S.addErrorToast(S.applyBootstrap(S.emptyState(), bootstrap()), { kind: "transport", detail: "refused" }, NOW);
    const { body } = render(App);
    const toast = attrs(body, "toast")[0] ?? "";
    expect(toast).toContain('role="status"');
    expect(body).toContain("Can't reach the server: refused.");
  });
});
