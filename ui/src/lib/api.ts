// Typed wrappers over the shell's commands (src-tauri/src/commands.rs) and its "engine" event.
// Command and argument names follow the contract (docs: notes/desktop-contract.md); Tauri maps
// the camelCase argument keys used here to the commands' snake_case parameters.
import { Channel, invoke } from "@tauri-apps/api/core";
import { listen, type UnlistenFn } from "@tauri-apps/api/event";
import type {
  AccountCheck,
  AccountSettings,
  AudioDevices,
  Bootstrap,
  CallRecord,
  EngineEvent,
  MediaStats,
  MessageRecord,
  SavedAccount,
  SearchHit,
  StoredTransfer,
  XmppAction,
  XmppReply,
} from "./types";

type Id = number | bigint;

/** Whether the page runs inside the Lyrebird window (and not in a plain browser). */
export function insideLyrebird(): boolean {
  return typeof window !== "undefined" && "__TAURI_INTERNALS__" in window;
}

/** Thrown instead of calling into a shell that is not there. */
export class NotInsideLyrebird extends Error {
  constructor() {
    super("not running inside Lyrebird");
  }
}

function call<T>(command: string, args?: Record<string, unknown>): Promise<T> {
  if (!insideLyrebird()) return Promise.reject(new NotInsideLyrebird());
  return invoke<T>(command, args);
}

export const api = {
  bootstrap: () => call<Bootstrap>("bootstrap"),
  uiReady: (paintedMs: number) => call<void>("ui_ready", { paintedMs }),

  saveAccount: (settings: AccountSettings, password: string, remember: boolean) =>
    call<SavedAccount>("save_account", { settings, password, remember }),
  checkAccount: (settings: AccountSettings, password: string) =>
    call<AccountCheck>("check_account", { settings, password }),
  forgetAccount: (account: Id) => call<void>("forget_account", { account }),

  startCall: (account: Id, target: string) => call<Id>("start_call", { account, target }),
  answerCall: (callId: Id) => call<void>("answer_call", { call: callId }),
  rejectCall: (callId: Id) => call<void>("reject_call", { call: callId }),
  hangupCall: (callId: Id) => call<void>("hangup_call", { call: callId }),
  setMuted: (callId: Id, muted: boolean) => call<void>("set_muted", { call: callId, muted }),
  sendDtmf: (callId: Id, digit: string) => call<void>("send_dtmf", { call: callId, digit }),
  holdCall: (callId: Id, hold: boolean) => call<void>("hold_call", { call: callId, hold }),
  transferCall: (callId: Id, target: string) => call<void>("transfer_call", { call: callId, target }),
  attendedTransfer: (callId: Id, to: Id) => call<void>("attended_transfer", { call: callId, to }),
  mergeCalls: (calls: Id[]) => call<void>("merge_calls", { calls }),
  splitCall: (callId: Id) => call<void>("split_call", { call: callId }),
  leaveConference: () => call<void>("leave_conference"),
  recordCall: (callId: Id, on: boolean) => call<void>("record_call", { call: callId, on }),
  /** Streams the call's statistics (every 200 ms) until it ends. */
  watchCall: (callId: Id, onStats: (stats: MediaStats) => void) => {
    // A Channel needs the Tauri internals even to be constructed.
    if (!insideLyrebird()) return Promise.reject(new NotInsideLyrebird());
    const channel = new Channel<MediaStats>();
    channel.onmessage = onStats;
    return call<void>("watch_call", { call: callId, onStats: channel });
  },

  sendSipMessage: (account: Id, to: string, body: string) =>
    call<Id>("send_sip_message", { account, to, body }),
  xmpp: (account: Id, action: XmppAction) => call<XmppReply>("xmpp", { account, action }),
  conversation: (account: Id, peer: string, limit: number) =>
    call<MessageRecord[]>("conversation", { account, peer, limit }),
  roomHistory: (account: Id, room: string, limit: number) =>
    call<MessageRecord[]>("room_history", { account, room, limit }),
  searchMessages: (query: string, limit: number) =>
    call<SearchHit[]>("search_messages", { query, limit }),
  recentCalls: (limit: number) => call<CallRecord[]>("recent_calls", { limit }),
  recentTransfers: (limit: number) => call<StoredTransfer[]>("recent_transfers", { limit }),
  markRead: (account: Id, peer: string) => call<void>("mark_read", { account, peer }),

  sendFile: (account: Id, to: string, path: string) =>
    call<Id>("send_file", { account, to, path }),
  /** Lets the person pick a file and sends it; null when they cancel. `room` matters for XMPP. */
  pickAndSendFile: (account: Id, to: string, room = false) =>
    call<Id | null>("pick_and_send_file", { account, to, room }),
  acceptTransfer: (transfer: Id) => call<void>("accept_transfer", { transfer }),
  declineTransfer: (transfer: Id) => call<void>("decline_transfer", { transfer }),
  cancelTransfer: (transfer: Id) => call<void>("cancel_transfer", { transfer }),
  openDownloads: () => call<void>("open_downloads"),
  openRecordings: () => call<void>("open_recordings"),

  audioDevices: () => call<AudioDevices>("audio_devices"),
  setAudioDevices: (input: string | null, output: string | null) =>
    call<void>("set_audio_devices", { input, output }),
  setMusicOnHold: (on: boolean) => call<void>("set_music_on_hold", { on }),
  /** Plays what the microphone hears back for a moment, streaming its level (0..1). */
  audioTest: (onLevel: (level: number) => void) => {
    if (!insideLyrebird()) return Promise.reject(new NotInsideLyrebird());
    const channel = new Channel<number>();
    channel.onmessage = onLevel;
    return call<void>("audio_test", { onLevel: channel });
  },
  setAutostart: (enabled: boolean) => call<void>("set_autostart", { enabled }),
  autostartEnabled: () => call<boolean>("autostart_enabled"),
};

/** Engine events, as the shell forwards them. */
export async function onEngineEvent(handler: (event: EngineEvent) => void): Promise<UnlistenFn> {
  if (!insideLyrebird()) return () => {};
  return listen<EngineEvent>("engine", (e) => handler(e.payload));
}

/** Links (sip:, tel:, xmpp:) that opened Lyrebird, forwarded by the shell. */
export async function onOpenUri(handler: (uri: string) => void): Promise<UnlistenFn> {
  if (!insideLyrebird()) return () => {};
  return listen<string>("open-uri", (e) => handler(e.payload));
}

/** Files dropped onto the window (Tauri's own drag-and-drop, which gives real paths). */
export async function onFileDrop(handlers: {
  over: (inside: boolean) => void;
  drop: (paths: string[]) => void;
}): Promise<UnlistenFn> {
  if (!insideLyrebird()) return () => {};
  const { getCurrentWebview } = await import("@tauri-apps/api/webview");
  return getCurrentWebview().onDragDropEvent((event) => {
    const p = event.payload;
    if (p.type === "enter" || p.type === "over") handlers.over(true);
    else if (p.type === "leave") handlers.over(false);
    else if (p.type === "drop") {
      handlers.over(false);
      handlers.drop(p.paths);
    }
  });
}
