// Realistic shell answers and engine events for the tests (shaped exactly as serde sends them).
import type {
  Bootstrap,
  CallRecord,
  ContactEntry,
  ConversationSummary,
  EngineEvent,
  MessageRecord,
  SavedAccount,
} from "./types";
import { applyBootstrap, applyEvents, emptyState, type AppState } from "./state";

export const SIP_ACCOUNT: SavedAccount = {
  id: 1,
  settings: {
    kind: "sip",
    ws_url: "ws://127.0.0.1:8080/ws",
    aor: "sip:alice@lyrebird.test",
    display_name: "Alice",
    auth_username: null,
    outbound_proxy: null,
    turn: null,
    msrp_relay_ws_url: null,
    msrp_relay_uri: null,
    trusted_certificate: null,
    dtmf: "rfc4733",
    call_waiting: true,
  },
  password_saved: true,
};

export const XMPP_ACCOUNT: SavedAccount = {
  id: 2,
  settings: {
    kind: "xmpp",
    ws_url: "ws://127.0.0.1:5280/xmpp-websocket",
    jid: "alice@lyrebird.test",
    resource: null,
    allow_plain: true,
    trusted_certificate: null,
  },
  password_saved: true,
};

export function contact(
  account: number,
  kind: "sip" | "xmpp",
  address: string,
  display_name: string | null = null,
  subscription: string | null = kind === "xmpp" ? "both" : null,
): ContactEntry {
  return { account, kind, address, display_name, subscription, groups: [] };
}

export function summary(
  account: number,
  peer: string,
  unread: number,
  last_body: string | null,
  last_activity_ms: number | null,
  room = false,
): ConversationSummary {
  return { account, peer, room, title: null, last_activity_ms, unread, last_body };
}

export function callRecord(id: number, direction: "in" | "out", peer: string, missed: boolean): CallRecord {
  return {
    id,
    account: 1,
    call_key: `key-${id}`,
    direction,
    peer_address: peer,
    started_at_ms: 1_700_000_000_000 + id,
    answered_at_ms: missed ? null : 1_700_000_001_000 + id,
    ended_at_ms: 1_700_000_031_000 + id,
    end_reason: missed ? "remote_cancel" : "remote_hangup",
    duration_ms: missed ? null : 30_000,
    missed,
  };
}

export function bootstrap(overrides: Partial<Bootstrap> = {}): Bootstrap {
  return {
    accounts: [SIP_ACCOUNT, XMPP_ACCOUNT],
    contacts: [
      contact(1, "sip", "sip:bob@lyrebird.test", "Bob"),
      contact(2, "xmpp", "bob@lyrebird.test", "Bob B."),
      contact(2, "xmpp", "carol@lyrebird.test", "Carol"),
      contact(2, "xmpp", "dave@lyrebird.test", null, "none"),
    ],
    conversations: [
      summary(2, "carol@lyrebird.test", 2, "see you", 1_700_000_500_000),
      summary(1, "sip:bob@lyrebird.test", 0, "hi", 1_700_000_400_000),
    ],
    calls: [callRecord(10, "in", "sip:bob@lyrebird.test", true), callRecord(9, "out", "sip:bob@lyrebird.test", false)],
    transfers: [],
    downloads_dir: "/home/alice/Downloads/Lyrebird",
    recordings_dir: "/home/alice/.local/share/lyrebird/recordings",
    keyring_available: true,
    audio: { input_device: null, output_device: null, music_on_hold: true },
    ...overrides,
  };
}

export function chat(
  partial: Partial<Extract<EngineEvent, { event: "chat_message" }>> & { id: string; body: string },
): EngineEvent {
  return {
    event: "chat_message",
    account: 2,
    peer: "carol@lyrebird.test",
    from: "carol@lyrebird.test/phone",
    nick: null,
    room: false,
    outgoing: false,
    replaces: null,
    url: null,
    origin: "live",
    sent_at_ms: null,
    ...partial,
  };
}

export function record(
  partial: Partial<MessageRecord> & { stable_id: string; body: string },
): MessageRecord {
  return {
    id: 1,
    conversation: 1,
    direction: "in",
    sender: "carol@lyrebird.test",
    content_type: "text/plain",
    sent_at_ms: null,
    received_at_ms: 1_700_000_000_000,
    state: "delivered",
    corrects_stable_id: null,
    ...partial,
  };
}

/** The time the state tests fold their events at. */
export const T0 = 1_700_001_000_000;

/** The state right after the shell's bootstrap answer. */
export function bootedState(): AppState {
  return applyBootstrap(emptyState(), bootstrap());
}

/** Both accounts signed in: SIP registered, XMPP online. */
export function onlineState(state: AppState = bootedState()): AppState {
  return applyEvents(
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
