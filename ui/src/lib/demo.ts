// Development only (`npm run dev`, then open /?demo): fills a detached page with realistic
// state so the layout can be looked at in a plain browser. Never part of the production bundle.
import { bootstrap, chat } from "./fixtures";
import * as S from "./state";
import type { EngineEvent } from "./types";

export function demoState(now: number): S.AppState {
  let s = S.applyBootstrap(S.emptyState(), bootstrap());
  const events: EngineEvent[] = [
    { event: "account_state", account: 1, state: { state: "registered", expires_s: 600, outbound: true } },
    { event: "xmpp_online", account: 2, jid: "alice@lyrebird.test/desk", resumed: false },
    { event: "presence", account: 2, jid: "carol@lyrebird.test/phone", available: true, show: null, status: "on the train" },
    { event: "presence", account: 2, jid: "bob@lyrebird.test/desk", available: true, show: "away", status: null },
    { event: "subscription_request", account: 2, from: "frank@lyrebird.test" },
    chat({ id: "d1", body: "Lunch at noon? <b>not bold</b>", sent_at_ms: now - 60_000 }),
    { event: "chat_state", account: 2, from: "carol@lyrebird.test/phone", state: "composing" },
    {
      event: "transfer_offered",
      account: 1,
      transfer: 5,
      from: "sip:bob@lyrebird.test",
      display_name: "Bob",
      file_name: "holiday.jpg",
      size: 4_000_000,
      mime_type: "image/jpeg",
      sha256: null,
    },
    { event: "transfer_state", account: 1, transfer: 6, state: { state: "offering", peer: "sip:bob@lyrebird.test", file_name: "slides.pdf", size: 9_000_000 } },
    { event: "transfer_progress", account: 1, transfer: 6, bytes: 3_000_000, total: 9_000_000, percent: 33.33, rate_bps: 1_200_000, eta_ms: 5000 },
    { event: "call_state", account: 1, call: 7, state: { state: "dialing", direction: "outgoing", peer: "sip:echo@lyrebird.test" } },
    { event: "call_state", account: 1, call: 7, state: { state: "audio_flowing" } },
    // A second call going on at the same time, with keys the other side pressed.
    { event: "incoming_call", account: 1, call: 8, from: "sip:bob@lyrebird.test", display_name: "Bob" },
    { event: "call_state", account: 1, call: 8, state: { state: "audio_flowing" } },
    { event: "dtmf_received", account: 1, call: 8, digit: "1" },
    { event: "dtmf_received", account: 1, call: 8, digit: "#" },
    // A third call, on hold, while the first two are mixed into a conference and recorded.
    { event: "incoming_call", account: 1, call: 9, from: "sip:carol@lyrebird.test", display_name: null },
    { event: "call_state", account: 1, call: 9, state: { state: "audio_flowing" } },
    { event: "call_hold", account: 1, call: 9, local: true, remote: false },
    { event: "conference", calls: [7, 8] },
    { event: "call_recording", account: 1, call: 7, path: "/home/alice/.local/share/lyrebird/recordings/echo.wav" },
  ];
  s = S.applyEvents(s, events, now);
  s = S.addOutgoing(s, 2, "carol@lyrebird.test", false, "d2", "Sounds good!", now - 30_000);
  // `?demo&incoming`: someone else calls on top of all that.
  if (location.search.includes("incoming")) {
    s = S.applyEvent(s, { event: "incoming_call", account: 1, call: 10, from: "sip:dave@lyrebird.test", display_name: "Dave" }, now);
  }
  return S.openConversation(s, 2, "carol@lyrebird.test");
}
