// The app's state and the pure functions that fold engine events and command results into it.
//
// Every function here takes the previous state (and the current time when it matters) and
// returns a new state object; nothing is mutated, nothing reads a clock, nothing calls the shell.
// The Svelte store (store.svelte.ts) holds the current value and calls these; vitest drives
// them with realistic event sequences (state.test.ts).
import type {
  AccountSettings,
  AccountState,
  Bootstrap,
  CallRecord,
  ContactEntry,
  ConversationSummary,
  EngineEvent,
  MessageRecord,
  RosterContact,
  SavedAccount,
  StoredTransfer,
  TransferState,
} from "./types";
import { num } from "./types";
import { bareAddress, bareJid, jidResource, shortName } from "./address";
import { errorWords } from "./format";

// ---------------------------------------------------------------- shapes

export type AccountKindWord = "sip" | "xmpp";
/** `data-state` of an account item. */
export type AccountStatus =
  | "connecting"
  | "registered"
  | "online"
  | "failed"
  | "reconnecting"
  | "stopped";

export interface AccountView {
  id: number;
  kind: AccountKindWord;
  /** SIP address of record or bare JID. */
  address: string;
  label: string;
  settings: AccountSettings;
  passwordSaved: boolean;
  status: AccountStatus;
  /** Why it is in this state, in words ("" when there is nothing to say). */
  detail: string;
  /** The server refused the password or none is stored: ask for it. */
  needsPassword: boolean;
}

export interface ContactEndpoint {
  account: number;
  kind: AccountKindWord;
  address: string;
  name: string | null;
  subscription: string | null;
  pendingOut: boolean;
  groups: string[];
}

export interface ResourceView {
  show: string | null;
  status: string | null;
  priority: number;
}

/** `data-presence` of a contact item. */
export type PresenceWord = "available" | "away" | "dnd" | "offline" | "unknown";

export interface PersonView {
  /** The merged identity (`user@domain`), also the list key. */
  key: string;
  name: string;
  endpoints: ContactEndpoint[];
  presence: PresenceWord;
  statusText: string | null;
}

export type DeliveryWord = "queued" | "sent" | "delivered" | "read" | "failed";

export interface MessageView {
  /** Stable id (XMPP) or `sip-<n>` for a SIP MESSAGE sent in this session. */
  id: string;
  direction: "in" | "out";
  state: DeliveryWord;
  body: string;
  from: string;
  nick: string | null;
  at: number;
  corrected: boolean;
  url: string | null;
  /** Why it failed, in words. */
  failure: string | null;
}

export interface ConversationView {
  key: string;
  account: number;
  peer: string;
  room: boolean;
  title: string | null;
  lastActivity: number | null;
  unread: number;
  lastBody: string | null;
  /** History has been read from the store for this conversation. */
  loaded: boolean;
}

export interface OccupantView {
  nick: string;
  jid: string | null;
  role: string | null;
  isSelf: boolean;
}

export interface RoomView {
  key: string;
  account: number;
  room: string;
  nick: string;
  joined: boolean;
  subject: string | null;
  error: string | null;
  occupants: Record<string, OccupantView>;
}

/** `data-state` of the in-call view. */
export type CallStatus = "dialing" | "ringing" | "answered" | "connected" | "audio" | "ended";

export interface CallView {
  key: string;
  /** As the engine sent it (passed back to commands unchanged). */
  id: number | bigint;
  account: number;
  peer: string;
  displayName: string | null;
  direction: "incoming" | "outgoing";
  status: CallStatus;
  startedAt: number;
  answeredAt: number | null;
  endedAt: number | null;
  endReason: string | null;
  endStatus: number | null;
  muted: boolean;
}

export interface HistoryCall {
  key: string;
  account: number;
  direction: "in" | "out";
  peer: string;
  startedAt: number;
  durationMs: number | null;
  missed: boolean;
  endReason: string | null;
}

/** `data-state` of a transfer item. */
export type TransferStatus =
  | "offering"
  | "offered"
  | "active"
  | "interrupted"
  | "completed"
  | "failed"
  | "declined"
  | "cancelled";

export interface TransferView {
  key: string;
  /** Engine transfer id for MSRP transfers of this session (accept/decline/cancel need it). */
  id: number | bigint | null;
  /** HTTP upload / download (XEP-0363) rather than MSRP. */
  http: boolean;
  /** Read from history: nothing can be done to it any more. */
  past: boolean;
  account: number;
  direction: "incoming" | "outgoing";
  peer: string;
  fileName: string;
  bytes: number;
  total: number | null;
  percent: number;
  rateBps: number;
  etaMs: number | null;
  status: TransferStatus;
  path: string | null;
  detail: string | null;
  startedAt: number;
  /** For computing a rate when the engine does not send one (HTTP transfers). */
  sampleAt: number;
  sampleBytes: number;
}

export interface Toast {
  id: number;
  text: string;
  level: "error" | "info";
  at: number;
}

export interface SubscriptionRequestView {
  account: number;
  from: string;
}

export interface AppState {
  booted: boolean;
  keyringAvailable: boolean;
  downloadsDir: string;
  accounts: Record<string, AccountView>;
  contacts: Record<string, ContactEndpoint>;
  /** `account|bareJid` → resource → presence. */
  presence: Record<string, Record<string, ResourceView>>;
  subscriptionRequests: SubscriptionRequestView[];
  conversations: Record<string, ConversationView>;
  messages: Record<string, MessageView[]>;
  /** Delivery states that arrived before the send command's reply told us the id. */
  earlyStates: Record<string, { state: DeliveryWord; failure: string | null }>;
  /** SIP MESSAGE id → conversation key. */
  sipSent: Record<string, string>;
  /** Conversation key → time until which the peer counts as typing. */
  typing: Record<string, number>;
  rooms: Record<string, RoomView>;
  calls: Record<string, CallView>;
  callHistory: HistoryCall[];
  transfers: Record<string, TransferView>;
  toasts: Toast[];
  nextToast: number;
  /** Numbers local ids (SIP messages received have no id of their own). */
  seq: number;
  /** Audio devices chosen in the settings (null: the system default). */
  audio: { input: string | null; output: string | null };
  /** The conversation on screen (its messages are read as they arrive while the window has
   * the person's attention). */
  openConversation: string | null;
  /** Whether the window is focused: a message in the open conversation is unread until then. */
  windowFocused: boolean;
}

/** A peer counts as typing this long after its last "composing" (XEP-0085 §5.2 suggests
 * clients send "paused" after a few seconds; this catches the ones that never do). */
export const TYPING_TIMEOUT_MS = 30_000;
/** Toasts disappear after this long. */
export const TOAST_LIFETIME_MS = 8_000;
const MAX_TOASTS = 4;

// ---------------------------------------------------------------- keys

export function convKey(account: number | bigint, peer: string): string {
  return `${num(account)}|${peer}`;
}

export function contactKey(account: number | bigint, address: string): string {
  return `${num(account)}|${address}`;
}

export function idKey(id: number | bigint): string {
  return String(id);
}

// ---------------------------------------------------------------- construction

export function emptyState(): AppState {
  return {
    booted: false,
    keyringAvailable: true,
    downloadsDir: "",
    accounts: {},
    contacts: {},
    presence: {},
    subscriptionRequests: [],
    conversations: {},
    messages: {},
    earlyStates: {},
    sipSent: {},
    typing: {},
    rooms: {},
    calls: {},
    callHistory: [],
    transfers: {},
    toasts: [],
    nextToast: 1,
    seq: 1,
    audio: { input: null, output: null },
    openConversation: null,
    windowFocused: true,
  };
}

export function accountAddress(settings: AccountSettings): string {
  return settings.kind === "sip" ? settings.aor : settings.jid;
}

function accountView(saved: SavedAccount, previous?: AccountView): AccountView {
  const settings = saved.settings;
  const address = accountAddress(settings);
  const display = settings.kind === "sip" ? settings.display_name : null;
  return {
    id: num(saved.id),
    kind: settings.kind,
    address,
    label: display ? `${display} (${address})` : address,
    settings,
    passwordSaved: saved.password_saved,
    status: previous?.status ?? "connecting",
    detail: previous?.detail ?? "",
    needsPassword: previous?.needsPassword ?? false,
  };
}

function contactFromEntry(entry: ContactEntry): ContactEndpoint {
  return {
    account: num(entry.account),
    kind: entry.kind,
    address: entry.address,
    name: entry.display_name ?? null,
    subscription: entry.subscription ?? null,
    pendingOut: false,
    groups: [...entry.groups],
  };
}

function conversationFromSummary(s: ConversationSummary): ConversationView {
  return {
    key: convKey(s.account, s.peer),
    account: num(s.account),
    peer: s.peer,
    room: s.room,
    title: s.title ?? null,
    lastActivity: s.last_activity_ms === null ? null : num(s.last_activity_ms),
    unread: num(s.unread),
    lastBody: s.last_body ?? null,
    loaded: false,
  };
}

export function historyCallFromRecord(r: CallRecord): HistoryCall {
  return {
    key: `h${num(r.id)}`,
    account: num(r.account),
    direction: r.direction,
    peer: r.peer_address,
    startedAt: num(r.started_at_ms),
    durationMs: r.duration_ms === null ? null : num(r.duration_ms),
    missed: r.missed,
    endReason: r.end_reason ?? null,
  };
}

function storedTransferStatus(state: StoredTransfer["state"]): TransferStatus {
  switch (state) {
    case "completed":
      return "completed";
    case "failed":
      return "failed";
    case "cancelled":
      return "cancelled";
    // An offer or transfer that was live when the app stopped cannot be resumed from here.
    default:
      return "interrupted";
  }
}

function transferFromStored(t: StoredTransfer): TransferView {
  const size = t.size_bytes === null ? null : num(t.size_bytes);
  const bytes = num(t.bytes_confirmed);
  const status = storedTransferStatus(t.state);
  return {
    key: `h${num(t.id)}`,
    id: null,
    http: false,
    past: true,
    account: num(t.account),
    direction: t.direction === "in" ? "incoming" : "outgoing",
    peer: t.peer_address,
    fileName: t.file_name,
    bytes,
    total: size,
    percent: status === "completed" ? 100 : size ? Math.min(100, (bytes / size) * 100) : 0,
    rateBps: 0,
    etaMs: null,
    status,
    path: t.local_path ?? null,
    detail: t.error ?? null,
    startedAt: num(t.started_at_ms),
    sampleAt: 0,
    sampleBytes: bytes,
  };
}

/** Everything the shell read from the store at start, before any network traffic. */
export function applyBootstrap(state: AppState, boot: Bootstrap): AppState {
  const accounts: Record<string, AccountView> = {};
  for (const saved of boot.accounts) {
    const key = idKey(saved.id);
    accounts[key] = accountView(saved, state.accounts[key]);
  }
  const contacts: Record<string, ContactEndpoint> = { ...state.contacts };
  for (const entry of boot.contacts) {
    const c = contactFromEntry(entry);
    contacts[contactKey(c.account, c.address)] = c;
  }
  const conversations: Record<string, ConversationView> = { ...state.conversations };
  for (const s of boot.conversations) {
    const c = conversationFromSummary(s);
    const live = conversations[c.key];
    conversations[c.key] = live ? { ...c, unread: Math.max(c.unread, live.unread) } : c;
  }
  const transfers: Record<string, TransferView> = {};
  for (const t of boot.transfers) {
    const v = transferFromStored(t);
    transfers[v.key] = v;
  }
  return {
    ...state,
    booted: true,
    keyringAvailable: boot.keyring_available,
    downloadsDir: boot.downloads_dir,
    audio: { input: boot.audio.input_device ?? null, output: boot.audio.output_device ?? null },
    accounts,
    contacts,
    conversations,
    callHistory: boot.calls.map(historyCallFromRecord),
    transfers: { ...transfers, ...state.transfers },
  };
}

// ---------------------------------------------------------------- toasts

export function addToast(
  state: AppState,
  text: string,
  now: number,
  level: Toast["level"] = "error",
): AppState {
  const last = state.toasts[state.toasts.length - 1];
  // The same words twice in a row (a reconnect loop) are shown once.
  if (last && last.text === text) {
    return { ...state, toasts: [...state.toasts.slice(0, -1), { ...last, at: now }] };
  }
  const toast: Toast = { id: state.nextToast, text, level, at: now };
  return {
    ...state,
    toasts: [...state.toasts, toast].slice(-MAX_TOASTS),
    nextToast: state.nextToast + 1,
  };
}

export function addErrorToast(state: AppState, error: unknown, now: number): AppState {
  return addToast(state, errorWords(error), now);
}

export function dismissToast(state: AppState, id: number): AppState {
  return { ...state, toasts: state.toasts.filter((t) => t.id !== id) };
}

export function expireToasts(state: AppState, now: number): AppState {
  const toasts = state.toasts.filter((t) => now - t.at < TOAST_LIFETIME_MS);
  return toasts.length === state.toasts.length ? state : { ...state, toasts };
}

// ---------------------------------------------------------------- accounts

export function accountStatus(s: AccountState): AccountStatus {
  switch (s.state) {
    case "connecting":
    case "connected":
      return "connecting";
    case "registered":
      return "registered";
    case "registration_failed":
    case "authentication_failed":
      return "failed";
    case "reconnecting":
      return "reconnecting";
    case "unregistered":
    case "stopped":
      return "stopped";
  }
}

export function accountStateWords(s: AccountState): string {
  switch (s.state) {
    case "connecting":
      return "Connecting…";
    case "connected":
      return "Connected, signing in…";
    case "registered":
      return "Ready for calls";
    case "registration_failed":
      return s.status === 401 || s.status === 403 || s.status === 407
        ? `The server refused the password (${s.status} ${s.reason})`
        : `Registration refused (${s.status} ${s.reason})`;
    case "authentication_failed":
      return s.reason === "password needed"
        ? "Password needed"
        : `The server refused the password (${s.reason})`;
    case "reconnecting":
      return `Connection lost (${s.reason}); retrying in ${Math.ceil(num(s.delay_ms) / 1000)} s`;
    case "unregistered":
      return "Signed out";
    case "stopped":
      return "Stopped";
  }
}

export function upsertAccount(state: AppState, saved: SavedAccount): AppState {
  const key = idKey(saved.id);
  const previous = state.accounts[key];
  const view = accountView(saved, previous);
  // A re-saved account starts again: forget the old failure.
  return {
    ...state,
    accounts: {
      ...state.accounts,
      [key]: { ...view, status: "connecting", detail: "", needsPassword: false },
    },
  };
}

export function removeAccount(state: AppState, account: number): AppState {
  const key = idKey(account);
  const accounts = { ...state.accounts };
  delete accounts[key];
  const keep = <T extends { account: number }>(rec: Record<string, T>): Record<string, T> =>
    Object.fromEntries(Object.entries(rec).filter(([, v]) => v.account !== account));
  const prefix = `${account}|`;
  const presence = Object.fromEntries(
    Object.entries(state.presence).filter(([k]) => !k.startsWith(prefix)),
  );
  return {
    ...state,
    accounts,
    contacts: keep(state.contacts),
    presence,
    rooms: keep(state.rooms),
    subscriptionRequests: state.subscriptionRequests.filter((r) => r.account !== account),
  };
}

function setAccount(
  state: AppState,
  account: number,
  change: (a: AccountView) => AccountView,
): AppState {
  const key = idKey(account);
  const current = state.accounts[key];
  if (!current) return state;
  return { ...state, accounts: { ...state.accounts, [key]: change(current) } };
}

function clearPresenceOf(state: AppState, account: number): AppState {
  const prefix = `${account}|`;
  const keys = Object.keys(state.presence).filter((k) => k.startsWith(prefix));
  const rooms = Object.values(state.rooms).some((r) => r.account === account && r.joined);
  if (keys.length === 0 && !rooms) return state;
  const presence = { ...state.presence };
  for (const k of keys) delete presence[k];
  const newRooms: Record<string, RoomView> = {};
  for (const [k, r] of Object.entries(state.rooms)) {
    newRooms[k] = r.account === account ? { ...r, joined: false, occupants: {} } : r;
  }
  return { ...state, presence, rooms: newRooms };
}

// ---------------------------------------------------------------- contacts and presence

function rankOf(show: string | null): number {
  switch (show) {
    case null:
    case "chat":
      return 4;
    case "away":
      return 3;
    case "xa":
      return 2;
    case "dnd":
      return 1;
    default:
      return 3;
  }
}

/** The resource that speaks for the contact: highest priority, then most available
 * (RFC 6121 §8.5.2.1.1 routes to the highest priority). */
export function bestResource(resources: Record<string, ResourceView>): ResourceView | null {
  let best: ResourceView | null = null;
  for (const r of Object.values(resources)) {
    if (
      best === null ||
      r.priority > best.priority ||
      (r.priority === best.priority && rankOf(r.show) > rankOf(best.show))
    ) {
      best = r;
    }
  }
  return best;
}

function presenceWordOf(r: ResourceView): PresenceWord {
  switch (r.show) {
    case "away":
    case "xa":
      return "away";
    case "dnd":
      return "dnd";
    default:
      return "available";
  }
}

/** One endpoint's presence: SIP has none here; an XMPP contact is offline only when its
 * account is online and we are subscribed to it. */
export function endpointPresence(
  state: AppState,
  e: ContactEndpoint,
): { word: PresenceWord; status: string | null } {
  if (e.kind !== "xmpp") return { word: "unknown", status: null };
  const resources = state.presence[contactKey(e.account, bareJid(e.address))];
  const best = resources ? bestResource(resources) : null;
  if (best) return { word: presenceWordOf(best), status: best.status };
  const account = state.accounts[idKey(e.account)];
  const subscribed = e.subscription === "to" || e.subscription === "both";
  if (account?.status === "online" && subscribed) return { word: "offline", status: null };
  return { word: "unknown", status: null };
}

const PRESENCE_ORDER: Record<PresenceWord, number> = {
  available: 5,
  away: 4,
  dnd: 3,
  offline: 1,
  unknown: 2,
};

/** One list of people from every account's contacts: a SIP and an XMPP entry with the same
 * `user@domain` are one person. Filtered by `query` (name or address), most available first. */
export function mergedContacts(state: AppState, query = ""): PersonView[] {
  const people = new Map<string, PersonView>();
  for (const e of Object.values(state.contacts)) {
    const key = bareAddress(e.address);
    const p = endpointPresence(state, e);
    const existing = people.get(key);
    if (!existing) {
      people.set(key, {
        key,
        name: e.name ?? shortName(e.address),
        endpoints: [e],
        presence: p.word,
        statusText: p.status,
      });
      continue;
    }
    existing.endpoints.push(e);
    if (e.name && existing.name === shortName(existing.endpoints[0]?.address ?? "")) {
      existing.name = e.name;
    }
    if (PRESENCE_ORDER[p.word] > PRESENCE_ORDER[existing.presence]) {
      existing.presence = p.word;
      existing.statusText = p.status;
    }
  }
  const q = query.trim().toLowerCase();
  const list = [...people.values()].filter(
    (p) =>
      q === "" ||
      p.name.toLowerCase().includes(q) ||
      p.endpoints.some((e) => e.address.toLowerCase().includes(q)),
  );
  for (const p of list) p.endpoints.sort((a, b) => (a.kind === b.kind ? 0 : a.kind === "sip" ? -1 : 1));
  return list.sort(
    (a, b) =>
      PRESENCE_ORDER[b.presence] - PRESENCE_ORDER[a.presence] ||
      a.name.localeCompare(b.name) ||
      a.key.localeCompare(b.key),
  );
}

/** The name a person gave a contact with this address (on any account, SIP or XMPP), or null. */
export function contactName(state: AppState, address: string): string | null {
  const key = bareAddress(address);
  for (const c of Object.values(state.contacts)) {
    if (c.name && bareAddress(c.address) === key) return c.name;
  }
  return null;
}

export function presenceWords(p: PresenceWord): string {
  switch (p) {
    case "available":
      return "Available";
    case "away":
      return "Away";
    case "dnd":
      return "Do not disturb";
    case "offline":
      return "Offline";
    case "unknown":
      return "Presence unknown";
  }
}

/** A roster entry (from the `roster` reply or a `contact` event) as a contact endpoint. */
function xmppContact(
  account: number,
  c: { jid: string; name: string | null; subscription: string; pending_out: boolean; groups: string[] },
): ContactEndpoint {
  return {
    account,
    kind: "xmpp",
    address: c.jid,
    name: c.name ?? null,
    subscription: c.subscription,
    pendingOut: c.pending_out,
    groups: [...c.groups],
  };
}

/** The XMPP roster as the `roster` action returns it, with each resource's presence. */
export function applyRoster(state: AppState, account: number, roster: RosterContact[]): AppState {
  const contacts = { ...state.contacts };
  const presence = { ...state.presence };
  for (const c of roster) {
    const key = contactKey(account, c.jid);
    contacts[key] = xmppContact(account, c);
    const resources: Record<string, ResourceView> = {};
    for (const r of c.resources) {
      resources[r.resource] = { show: r.show ?? null, status: r.status ?? null, priority: r.priority };
    }
    presence[key] = resources;
  }
  return { ...state, contacts, presence };
}

// ---------------------------------------------------------------- conversations and messages

function ensureConversation(
  state: AppState,
  account: number,
  peer: string,
  room: boolean,
): { state: AppState; key: string } {
  const key = convKey(account, peer);
  if (state.conversations[key]) return { state, key };
  const conv: ConversationView = {
    key,
    account,
    peer,
    room,
    title: null,
    lastActivity: null,
    unread: 0,
    lastBody: null,
    loaded: false,
  };
  return { state: { ...state, conversations: { ...state.conversations, [key]: conv } }, key };
}

/** Opens a conversation (creating it when new) and marks it read. */
export function openConversation(
  state: AppState,
  account: number,
  peer: string,
  room = false,
): AppState {
  const made = ensureConversation(state, account, peer, room);
  const conv = made.state.conversations[made.key];
  if (!conv) return made.state;
  return {
    ...made.state,
    openConversation: made.key,
    conversations: { ...made.state.conversations, [made.key]: { ...conv, unread: 0 } },
  };
}

/** The window gained or lost focus; gaining it reads the open conversation. */
export function setWindowFocused(state: AppState, focused: boolean): AppState {
  if (state.windowFocused === focused) return state;
  const next = { ...state, windowFocused: focused };
  const key = state.openConversation;
  const conv = key ? state.conversations[key] : undefined;
  if (focused && key && conv && conv.unread > 0) {
    next.conversations = { ...state.conversations, [key]: { ...conv, unread: 0 } };
  }
  return next;
}

export function closeConversation(state: AppState): AppState {
  return { ...state, openConversation: null };
}

/** Conversations, most recent first. */
export function conversationList(state: AppState): ConversationView[] {
  return Object.values(state.conversations).sort(
    (a, b) => (b.lastActivity ?? 0) - (a.lastActivity ?? 0) || a.key.localeCompare(b.key),
  );
}

export function totalUnread(state: AppState): number {
  return Object.values(state.conversations).reduce((n, c) => n + c.unread, 0);
}

function insertSorted(list: MessageView[], m: MessageView): MessageView[] {
  // Live messages arrive in order; archive pages may not. Keep arrival order among equals.
  let i = list.length;
  while (i > 0 && (list[i - 1]?.at ?? 0) > m.at) i -= 1;
  return [...list.slice(0, i), m, ...list.slice(i)];
}

/** Whether `correction` may rewrite `original` (XEP-0308 §5): the same author — the same
 * direction, and for a message we received the same sender. Anything else (someone naming
 * another's message) is shown as a message of its own. */
function sameAuthor(original: MessageView, correction: MessageView): boolean {
  return (
    original.direction === correction.direction &&
    (correction.direction === "out" || original.from === correction.from)
  );
}

/** Adds a message to a conversation once (by id); a correction (`replaces`) edits the message
 * it corrects instead (XEP-0308) when the same author wrote it, or is shown as new when that one
 * is not here (or is someone else's). */
export function addMessage(
  state: AppState,
  account: number,
  peer: string,
  room: boolean,
  message: MessageView,
  opts: { replaces?: string | null; countUnread?: boolean } = {},
): AppState {
  const made = ensureConversation(state, account, peer, room);
  let s = made.state;
  const key = made.key;
  const list = s.messages[key] ?? [];
  const early = s.earlyStates[message.id];
  if (early) {
    const earlyStates = { ...s.earlyStates };
    delete earlyStates[message.id];
    s = { ...s, earlyStates };
    message = { ...message, state: early.state, failure: early.failure };
  }
  let next: MessageView[];
  let isNew = true;
  const replaces = opts.replaces ?? null;
  const named = replaces ? list.findIndex((m) => m.id === replaces) : -1;
  const namedMessage = list[named];
  const target = namedMessage && sameAuthor(namedMessage, message) ? named : -1;
  if (target >= 0) {
    const old = list[target];
    if (!old) return s;
    next = [...list];
    next[target] = { ...old, body: message.body, corrected: true, url: message.url ?? old.url };
    isNew = false;
  } else {
    const same = list.findIndex((m) => m.id === message.id);
    if (same >= 0) {
      // Seen already (a reflected room message, an archive overlap): keep the better state.
      const old = list[same];
      if (!old) return s;
      next = [...list];
      next[same] = { ...old, at: old.at || message.at, state: betterState(old.state, message.state) };
      isNew = false;
    } else {
      next = insertSorted(list, message);
    }
  }
  const conv = s.conversations[key];
  if (!conv) return s;
  const isRead = s.openConversation === key && s.windowFocused;
  const newest = next[next.length - 1];
  const convNext: ConversationView = {
    ...conv,
    lastActivity: Math.max(conv.lastActivity ?? 0, message.at) || conv.lastActivity,
    lastBody: newest ? newest.body : conv.lastBody,
    unread:
      conv.unread +
      (isNew && message.direction === "in" && (opts.countUnread ?? true) && !isRead ? 1 : 0),
  };
  const typing = { ...s.typing };
  if (message.direction === "in") delete typing[key];
  return {
    ...s,
    typing,
    messages: { ...s.messages, [key]: next },
    conversations: { ...s.conversations, [key]: convNext },
  };
}

const STATE_ORDER: Record<DeliveryWord, number> = {
  queued: 0,
  failed: 0,
  sent: 1,
  delivered: 2,
  read: 3,
};

/** Receipts arrive late, twice and out of order: a message only moves forward (queued → sent →
 * delivered → read); it can fail only before the peer confirmed anything. */
export function betterState(current: DeliveryWord, next: DeliveryWord): DeliveryWord {
  if (next === "failed") return STATE_ORDER[current] <= 1 ? "failed" : current;
  if (current === "failed") return next;
  return STATE_ORDER[next] > STATE_ORDER[current] ? next : current;
}

export function deliveryWord(s: string): DeliveryWord {
  switch (s) {
    case "queued":
    case "sent":
    case "delivered":
    case "read":
    case "failed":
      return s;
    default:
      return "sent";
  }
}

/** `data-state` of a message item (the contract has no "read"). */
export function messageDomState(m: MessageView): "queued" | "sent" | "delivered" | "failed" {
  return m.state === "read" ? "delivered" : m.state;
}

function setMessageState(
  state: AppState,
  key: string | null,
  id: string,
  next: DeliveryWord,
  failure: string | null,
): AppState {
  const list = key ? state.messages[key] : undefined;
  const i = list ? list.findIndex((m) => m.id === id) : -1;
  if (!key || !list || i < 0) {
    // The send command has not returned yet: remember it for when the message is added.
    return { ...state, earlyStates: { ...state.earlyStates, [id]: { state: next, failure } } };
  }
  const old = list[i];
  if (!old) return state;
  const updated = [...list];
  const state2 = betterState(old.state, next);
  updated[i] = { ...old, state: state2, failure: state2 === "failed" ? failure : null };
  return { ...state, messages: { ...state.messages, [key]: updated } };
}

/** A message we sent, once the send command returned its id. */
export function addOutgoing(
  state: AppState,
  account: number,
  peer: string,
  room: boolean,
  id: string,
  body: string,
  now: number,
  url: string | null = null,
): AppState {
  return addMessage(state, account, peer, room, {
    id,
    direction: "out",
    state: "queued",
    body,
    from: "",
    nick: null,
    at: now,
    corrected: false,
    url,
    failure: null,
  });
}

/** A SIP MESSAGE we sent: its engine id reports delivery later. */
export function addOutgoingSip(
  state: AppState,
  account: number,
  peer: string,
  messageId: number | bigint,
  body: string,
  now: number,
): AppState {
  const id = `sip-${idKey(messageId)}`;
  const s = addOutgoing(state, account, peer, false, id, body, now);
  return { ...s, sipSent: { ...s.sipSent, [idKey(messageId)]: convKey(account, peer) } };
}

/** Our correction of an earlier message, applied at once (XEP-0308). */
export function applyOwnCorrection(
  state: AppState,
  key: string,
  id: string,
  body: string,
): AppState {
  const list = state.messages[key];
  if (!list) return state;
  const i = list.findIndex((m) => m.id === id);
  const old = list[i];
  if (i < 0 || !old) return state;
  const next = [...list];
  next[i] = { ...old, body, corrected: true };
  const conv = state.conversations[key];
  const isLast = i === list.length - 1;
  return {
    ...state,
    messages: { ...state.messages, [key]: next },
    conversations:
      conv && isLast ? { ...state.conversations, [key]: { ...conv, lastBody: body } } : state.conversations,
  };
}

/** The newest message we sent in a conversation (what the Up arrow edits). */
export function lastOutgoing(state: AppState, key: string): MessageView | null {
  const list = state.messages[key] ?? [];
  for (let i = list.length - 1; i >= 0; i -= 1) {
    const m = list[i];
    if (m && m.direction === "out" && !m.id.startsWith("sip-")) return m;
  }
  return null;
}

export function messageFromRecord(r: MessageRecord): MessageView {
  return {
    id: r.stable_id,
    direction: r.direction,
    state: r.direction === "in" ? "delivered" : deliveryWord(r.state),
    body: r.body,
    from: r.sender,
    nick: null,
    at: num(r.sent_at_ms ?? r.received_at_ms),
    corrected: false,
    url: null,
    failure: null,
  };
}

/** History read from the store for a conversation, merged with what arrived live meanwhile:
 * records come first, corrections are applied, and a live message is kept unless the store has
 * it already (by id, or — for SIP, whose live ids differ from stored ones — by direction and
 * body among the newest records). */
export function applyHistory(state: AppState, key: string, records: MessageRecord[]): AppState {
  let list: MessageView[] = [];
  for (const r of records) {
    const m = messageFromRecord(r);
    const corrected = r.corrects_stable_id ?? null;
    const target = corrected ? list.findIndex((x) => x.id === corrected) : -1;
    const old = list[target];
    if (target >= 0 && old && sameAuthor(old, m)) {
      list[target] = { ...old, body: m.body, corrected: true };
    } else if (!list.some((x) => x.id === m.id)) {
      list = insertSorted(list, m);
    }
  }
  const stored = new Set(list.map((m) => m.id));
  const newestStored = list.length ? (list[list.length - 1]?.at ?? 0) : 0;
  const tail = list.slice(-20);
  for (const live of state.messages[key] ?? []) {
    if (stored.has(live.id)) {
      const i = list.findIndex((m) => m.id === live.id);
      const old = list[i];
      if (old) list[i] = { ...old, state: betterState(old.state, live.state), corrected: old.corrected || live.corrected, body: live.corrected ? live.body : old.body };
      continue;
    }
    const twin = live.id.startsWith("sip-")
      ? tail.find((m) => m.direction === live.direction && m.body === live.body)
      : undefined;
    if (twin) {
      const i = list.indexOf(twin);
      list[i] = { ...twin, id: live.id, state: betterState(twin.state, live.state) };
      continue;
    }
    if (live.at >= newestStored || live.direction === "out") list = insertSorted(list, live);
  }
  const conv = state.conversations[key];
  const newest = list[list.length - 1];
  return {
    ...state,
    messages: { ...state.messages, [key]: list },
    conversations: conv
      ? {
          ...state.conversations,
          [key]: {
            ...conv,
            loaded: true,
            lastBody: newest?.body ?? conv.lastBody,
            lastActivity: newest ? Math.max(newest.at, conv.lastActivity ?? 0) : conv.lastActivity,
          },
        }
      : state.conversations,
  };
}

// ---------------------------------------------------------------- typing

export function isTyping(state: AppState, key: string, now: number): boolean {
  const until = state.typing[key];
  return until !== undefined && until > now;
}

export function expireTyping(state: AppState, now: number): AppState {
  const entries = Object.entries(state.typing);
  const live = entries.filter(([, until]) => until > now);
  return live.length === entries.length ? state : { ...state, typing: Object.fromEntries(live) };
}

// ---------------------------------------------------------------- rooms

function setRoom(
  state: AppState,
  account: number,
  room: string,
  change: (r: RoomView) => RoomView,
): AppState {
  const key = convKey(account, room);
  const current: RoomView = state.rooms[key] ?? {
    key,
    account,
    room,
    nick: "",
    joined: false,
    subject: null,
    error: null,
    occupants: {},
  };
  return { ...state, rooms: { ...state.rooms, [key]: change(current) } };
}

/** A join we asked for (the nick we asked for; the server may change it). */
export function roomJoining(state: AppState, account: number, room: string, nick: string): AppState {
  const s = setRoom(state, account, room, (r) => ({ ...r, nick, error: null }));
  return ensureConversation(s, account, room, true).state;
}

export function occupantList(room: RoomView): OccupantView[] {
  return Object.values(room.occupants).sort(
    (a, b) => Number(b.isSelf) - Number(a.isSelf) || a.nick.localeCompare(b.nick),
  );
}

// ---------------------------------------------------------------- calls

function setCall(state: AppState, call: CallView): AppState {
  return { ...state, calls: { ...state.calls, [call.key]: call } };
}

/** A call as it begins: ringing in, or dialling out. */
function newCall(
  id: number | bigint,
  account: number,
  peer: string,
  displayName: string | null,
  direction: CallView["direction"],
  now: number,
): CallView {
  return {
    key: idKey(id),
    id,
    account,
    peer,
    displayName,
    direction,
    status: direction === "incoming" ? "ringing" : "dialing",
    startedAt: now,
    answeredAt: null,
    endedAt: null,
    endReason: null,
    endStatus: null,
    muted: false,
  };
}

/** A call we placed, once `start_call` returned its id (the Dialing event may come first). */
export function callStarted(
  state: AppState,
  account: number,
  id: number | bigint,
  peer: string,
  now: number,
): AppState {
  if (state.calls[idKey(id)]) return state;
  return setCall(state, newCall(id, account, peer, null, "outgoing", now));
}

export function setMuted(state: AppState, callKey: string, muted: boolean): AppState {
  const c = state.calls[callKey];
  return c ? setCall(state, { ...c, muted }) : state;
}

/** An incoming call still waiting for an answer (the incoming screen shows it). */
export function ringingIncoming(state: AppState): CallView | null {
  return (
    Object.values(state.calls).find(
      (c) => c.direction === "incoming" && c.answeredAt === null && c.status !== "ended",
    ) ?? null
  );
}

/** The call the in-call view shows: the newest answered or outgoing one (ended ones stay a
 * moment, until `dropEndedCalls`). */
export function currentCall(state: AppState): CallView | null {
  const calls = Object.values(state.calls).filter(
    (c) => c.direction === "outgoing" || c.answeredAt !== null,
  );
  calls.sort((a, b) => Number(a.status === "ended") - Number(b.status === "ended") || b.startedAt - a.startedAt);
  return calls[0] ?? null;
}

/** Ended calls leave the screen this long after they ended. */
export const ENDED_CALL_LINGER_MS = 2_500;

export function dropEndedCalls(state: AppState, now: number): AppState {
  const entries = Object.entries(state.calls);
  const keep = entries.filter(
    ([, c]) => c.status !== "ended" || (c.endedAt !== null && now - c.endedAt < ENDED_CALL_LINGER_MS),
  );
  return keep.length === entries.length ? state : { ...state, calls: Object.fromEntries(keep) };
}

/** A call that ended this session, for the history list until the store's version is read. */
function historyFromCall(c: CallView, now: number): HistoryCall {
  return {
    key: `c${c.key}`,
    account: c.account,
    direction: c.direction === "incoming" ? "in" : "out",
    peer: c.peer,
    startedAt: c.startedAt,
    durationMs: c.answeredAt !== null ? now - c.answeredAt : null,
    missed: c.direction === "incoming" && c.answeredAt === null,
    endReason: c.endReason,
  };
}

export function setCallHistory(state: AppState, records: CallRecord[]): AppState {
  return { ...state, callHistory: records.map(historyCallFromRecord) };
}

export function endReasonWords(reason: string | null, status: number | null): string {
  if (status === 486 || status === 600) return "Busy";
  if (status === 603) return "Declined";
  if (status === 404 || status === 604) return "Not found";
  if (status === 480 || status === 408) return "No answer";
  if (!reason) return "Call ended";
  return reason.charAt(0).toUpperCase() + reason.slice(1).replace(/_/g, " ");
}

export function isBusy(c: CallView): boolean {
  return c.status === "ended" && (c.endStatus === 486 || c.endStatus === 600);
}

// ---------------------------------------------------------------- transfers

function setTransfer(state: AppState, t: TransferView): AppState {
  return { ...state, transfers: { ...state.transfers, [t.key]: t } };
}

function newTransfer(
  key: string,
  id: number | bigint | null,
  account: number,
  direction: TransferView["direction"],
  peer: string,
  fileName: string,
  total: number | null,
  now: number,
  http: boolean,
): TransferView {
  return {
    key,
    id,
    http,
    past: false,
    account,
    direction,
    peer,
    fileName,
    bytes: 0,
    total,
    percent: 0,
    rateBps: 0,
    etaMs: null,
    status: direction === "incoming" ? "offered" : "offering",
    path: null,
    detail: null,
    startedAt: now,
    sampleAt: now,
    sampleBytes: 0,
  };
}

export function transferStatusOf(s: TransferState): TransferStatus {
  return s.state;
}

/** An HTTP upload we started with the xmpp `share_file` action. */
export function httpTransferStarted(
  state: AppState,
  account: number,
  transfer: number | bigint,
  to: string,
  fileName: string,
  now: number,
): AppState {
  const key = `x${account}-${idKey(transfer)}`;
  if (state.transfers[key]) return state;
  return setTransfer(state, {
    ...newTransfer(key, null, account, "outgoing", to, fileName, null, now, true),
    status: "active",
  });
}

/** Transfers: the ones that need a decision first, then the live ones, then the newest. */
export function transferList(state: AppState): TransferView[] {
  const order = (t: TransferView): number =>
    t.direction === "incoming" && t.status === "offered" ? 0 : t.past ? 2 : 1;
  return Object.values(state.transfers).sort(
    (a, b) => order(a) - order(b) || b.startedAt - a.startedAt,
  );
}

export function pendingOffers(state: AppState): number {
  return Object.values(state.transfers).filter(
    (t) => !t.past && t.direction === "incoming" && t.status === "offered",
  ).length;
}

export function fileNameOf(path: string): string {
  const parts = path.split(/[\\/]/);
  return parts[parts.length - 1] || path;
}

// ---------------------------------------------------------------- the event fold

function warn(state: AppState, text: string, now: number): AppState {
  return addToast(state, text, now, "error");
}

/** Folds one engine event into the state. `now` is the local time in ms since the epoch. */
export function applyEvent(state: AppState, ev: EngineEvent, now: number): AppState {
  switch (ev.event) {
    case "account_state": {
      const account = num(ev.account);
      const status = accountStatus(ev.state);
      const words = accountStateWords(ev.state);
      const name = state.accounts[idKey(account)]?.address ?? `Account ${account}`;
      let s = setAccount(state, account, (a) => ({
        ...a,
        // An XMPP account that is "connected" again after being online is not online yet.
        status,
        detail: words,
        needsPassword:
          ev.state.state === "authentication_failed" ||
          (ev.state.state === "registration_failed" &&
            [401, 403, 407].includes(ev.state.status)),
      }));
      if (status !== "registered" && status !== "connecting") s = clearPresenceOf(s, account);
      if (status === "failed" && !(ev.state.state === "authentication_failed" && ev.state.reason === "password needed")) {
        s = warn(s, `${name}: ${words}.`, now);
      }
      return s;
    }
    case "xmpp_online": {
      return setAccount(state, num(ev.account), (a) => ({
        ...a,
        status: "online",
        detail: ev.resumed ? "Online (session resumed)" : "Online",
        needsPassword: false,
      }));
    }
    case "xmpp_server_info":
    case "peer_features":
    case "archive_synced":
      return state;

    case "incoming_call":
      return setCall(
        state,
        newCall(ev.call, num(ev.account), ev.from, ev.display_name ?? null, "incoming", now),
      );
    case "call_state": {
      const key = idKey(ev.call);
      const existing = state.calls[key];
      const cs = ev.state;
      if (cs.state === "dialing") {
        if (existing) return setCall(state, { ...existing, peer: existing.peer || cs.peer });
        return setCall(state, newCall(ev.call, num(ev.account), cs.peer, null, cs.direction, now));
      }
      if (!existing) return state;
      if (existing.status === "ended") return state;
      switch (cs.state) {
        case "ringing":
          return setCall(state, { ...existing, status: "ringing" });
        case "answered":
          return setCall(state, { ...existing, status: "answered", answeredAt: existing.answeredAt ?? now });
        case "media_connected":
          return setCall(state, { ...existing, status: "connected", answeredAt: existing.answeredAt ?? now });
        case "audio_flowing":
          return setCall(state, { ...existing, status: "audio", answeredAt: existing.answeredAt ?? now });
        case "ended": {
          const ended: CallView = {
            ...existing,
            status: "ended",
            endedAt: now,
            endReason: cs.reason,
            endStatus: cs.status === null ? null : cs.status,
          };
          const s = setCall(state, ended);
          return { ...s, callHistory: [historyFromCall(ended, now), ...s.callHistory] };
        }
      }
      return state;
    }

    case "message_received": {
      const account = num(ev.account);
      const s = { ...state, seq: state.seq + 1 };
      return addMessage(s, account, ev.from, false, {
        id: `sip-in-${state.seq}`,
        direction: "in",
        state: "delivered",
        body: ev.body,
        from: ev.from,
        nick: null,
        at: now,
        corrected: false,
        url: null,
        failure: null,
      });
    }
    case "message_delivered": {
      // A 2xx to MESSAGE means the server took it for delivery (RFC 3428 §7): "sent", as the
      // store records it; SIP has no end-to-end receipt.
      const key = state.sipSent[idKey(ev.message)] ?? null;
      return setMessageState(state, key, `sip-${idKey(ev.message)}`, "sent", null);
    }
    case "message_failed": {
      const mid = idKey(ev.message);
      const key = state.sipSent[mid] ?? null;
      const why = `${ev.status} ${ev.reason}`.trim();
      const s = setMessageState(state, key, `sip-${mid}`, "failed", why);
      const peer = key ? (state.conversations[key]?.peer ?? "") : "";
      return warn(s, `Message${peer ? ` to ${peer}` : ""} not delivered: ${why}.`, now);
    }

    case "chat_message": {
      const account = num(ev.account);
      const origin = ev.origin;
      const at = ev.sent_at_ms === null ? now : num(ev.sent_at_ms);
      const m: MessageView = {
        id: ev.id,
        direction: ev.outgoing ? "out" : "in",
        state: ev.outgoing ? (origin === "live" || origin === "carbon" ? "sent" : "delivered") : "delivered",
        body: ev.body,
        from: ev.from,
        nick: ev.nick ?? null,
        at,
        corrected: false,
        url: ev.url ?? null,
        failure: null,
      };
      return addMessage(state, account, ev.peer, ev.room, m, {
        replaces: ev.replaces ?? null,
        // Room history replayed on join is old news.
        countUnread: origin !== "room_history",
      });
    }
    case "chat_message_state": {
      const account = num(ev.account);
      const key = convKey(account, ev.peer);
      const next = deliveryWord(ev.state);
      let s = setMessageState(state, state.messages[key] ? key : null, ev.id, next, ev.reason ?? null);
      if (next === "failed") s = warn(s, `Message to ${ev.peer} not delivered${ev.reason ? `: ${ev.reason}` : ""}.`, now);
      return s;
    }
    case "chat_state": {
      const key = convKey(ev.account, bareJid(ev.from));
      const typing = { ...state.typing };
      if (ev.state === "composing") typing[key] = now + TYPING_TIMEOUT_MS;
      else delete typing[key];
      return { ...state, typing };
    }

    case "contact": {
      const account = num(ev.account);
      const key = contactKey(account, ev.jid);
      const contact = xmppContact(account, ev);
      return { ...state, contacts: { ...state.contacts, [key]: contact } };
    }
    case "contact_removed": {
      const key = contactKey(ev.account, ev.jid);
      const contacts = { ...state.contacts };
      delete contacts[key];
      const presence = { ...state.presence };
      delete presence[key];
      return { ...state, contacts, presence };
    }
    case "presence": {
      const account = num(ev.account);
      const key = contactKey(account, bareJid(ev.jid));
      const resource = jidResource(ev.jid);
      const resources = { ...(state.presence[key] ?? {}) };
      if (ev.available) {
        resources[resource] = {
          show: ev.show ?? null,
          status: ev.status ?? null,
          priority: resources[resource]?.priority ?? 0,
        };
      } else if (resource === "") {
        // Unavailable from the bare JID: every resource is gone (RFC 6121 §4.5.3).
        for (const r of Object.keys(resources)) delete resources[r];
      } else {
        delete resources[resource];
      }
      return { ...state, presence: { ...state.presence, [key]: resources } };
    }
    case "subscription_request": {
      const account = num(ev.account);
      if (state.subscriptionRequests.some((r) => r.account === account && r.from === ev.from)) return state;
      return {
        ...state,
        subscriptionRequests: [...state.subscriptionRequests, { account, from: bareJid(ev.from) }],
      };
    }
    case "subscription_changed": {
      if (ev.kind === "unsubscribed") {
        return addToast(state, `${ev.from} no longer shares presence with you.`, now, "info");
      }
      return state;
    }

    case "room_joined": {
      const account = num(ev.account);
      const s = setRoom(state, account, ev.room, (r) => ({ ...r, nick: ev.nick, joined: true, error: null }));
      return ensureConversation(s, account, ev.room, true).state;
    }
    case "room_error": {
      const s = setRoom(state, num(ev.account), ev.room, (r) => ({
        ...r,
        joined: false,
        error: ev.reason,
        occupants: {},
      }));
      return warn(s, `Room ${ev.room}: ${ev.reason}.`, now);
    }
    case "room_subject":
      return setRoom(state, num(ev.account), ev.room, (r) => ({ ...r, subject: ev.subject }));
    case "occupant": {
      return setRoom(state, num(ev.account), ev.room, (r) => {
        const occupants = { ...r.occupants };
        if (ev.available) {
          occupants[ev.nick] = { nick: ev.nick, jid: ev.jid ?? null, role: ev.role ?? null, isSelf: ev.is_self };
        } else {
          delete occupants[ev.nick];
        }
        return { ...r, occupants, nick: ev.is_self && ev.available ? ev.nick : r.nick };
      });
    }

    case "transfer_offered": {
      const key = idKey(ev.transfer);
      const t = newTransfer(
        key,
        ev.transfer,
        num(ev.account),
        "incoming",
        ev.display_name ? `${ev.display_name} <${ev.from}>` : ev.from,
        ev.file_name,
        ev.size === null ? null : num(ev.size),
        now,
        false,
      );
      return setTransfer(state, t);
    }
    case "transfer_state": {
      const key = idKey(ev.transfer);
      const ts = ev.state;
      let t = state.transfers[key];
      if (!t) {
        if (ts.state === "offering") {
          t = newTransfer(key, ev.transfer, num(ev.account), "outgoing", ts.peer, ts.file_name, num(ts.size), now, false);
        } else {
          t = newTransfer(key, ev.transfer, num(ev.account), "outgoing", "", "", null, now, false);
        }
      }
      let next: TransferView = { ...t, status: transferStatusOf(ts) };
      switch (ts.state) {
        case "offering":
          next = { ...next, peer: ts.peer, fileName: ts.file_name, total: num(ts.size) };
          break;
        case "interrupted":
          next = { ...next, detail: ts.reason, bytes: num(ts.confirmed), rateBps: 0, etaMs: null };
          break;
        case "completed":
          next = {
            ...next,
            bytes: num(ts.bytes),
            total: next.total ?? num(ts.bytes),
            percent: 100,
            path: ts.path ?? null,
            rateBps: 0,
            etaMs: null,
            detail: null,
          };
          break;
        case "failed":
          next = { ...next, detail: ts.reason, rateBps: 0, etaMs: null };
          break;
        case "declined":
          next = { ...next, detail: `Declined (${ts.status})`, rateBps: 0, etaMs: null };
          break;
        case "cancelled":
          next = { ...next, detail: ts.by_peer ? "Cancelled by the other side" : "Cancelled", rateBps: 0, etaMs: null };
          break;
        default:
          break;
      }
      let s = setTransfer(state, next);
      if (ts.state === "failed") s = warn(s, `Transfer of ${next.fileName || "a file"} failed: ${ts.reason}.`, now);
      return s;
    }
    case "transfer_progress": {
      const key = idKey(ev.transfer);
      const t = state.transfers[key];
      if (!t) return state;
      if (t.status === "completed" || t.status === "cancelled" || t.status === "failed") return state;
      return setTransfer(state, {
        ...t,
        status: "active",
        bytes: num(ev.bytes),
        total: num(ev.total),
        percent: ev.percent,
        rateBps: num(ev.rate_bps),
        etaMs: ev.eta_ms === null ? null : num(ev.eta_ms),
      });
    }

    case "file_progress": {
      const account = num(ev.account);
      const key = `x${account}-${idKey(ev.transfer)}`;
      const incoming = ev.direction === "download";
      const t =
        state.transfers[key] ??
        newTransfer(key, null, account, incoming ? "incoming" : "outgoing", "", "", null, now, true);
      const bytes = num(ev.bytes);
      const total = ev.total === null ? t.total : num(ev.total);
      const elapsed = now - t.sampleAt;
      // HTTP progress has no rate: measure it over at least half a second, smoothed.
      let rate = t.rateBps;
      let sampleAt = t.sampleAt;
      let sampleBytes = t.sampleBytes;
      if (elapsed >= 500) {
        const instant = ((bytes - t.sampleBytes) * 1000) / elapsed;
        rate = t.rateBps > 0 ? 0.7 * instant + 0.3 * t.rateBps : instant;
        sampleAt = now;
        sampleBytes = bytes;
      }
      const percent = total ? Math.min(100, Math.floor((bytes / total) * 10000) / 100) : 0;
      return setTransfer(state, {
        ...t,
        status: "active",
        bytes,
        total,
        percent,
        rateBps: Math.max(0, Math.round(rate)),
        etaMs: total && rate > 0 ? Math.round(((total - bytes) / rate) * 1000) : null,
        sampleAt,
        sampleBytes,
      });
    }
    case "file_shared": {
      const account = num(ev.account);
      const key = `x${account}-${idKey(ev.transfer)}`;
      const t =
        state.transfers[key] ?? newTransfer(key, null, account, "outgoing", ev.to, fileNameOf(ev.url), null, now, true);
      let s = setTransfer(state, {
        ...t,
        peer: ev.to,
        status: "completed",
        percent: 100,
        bytes: t.total ?? t.bytes,
        rateBps: 0,
        etaMs: null,
      });
      const room = Object.values(s.rooms).some((r) => r.account === account && r.room === ev.to);
      s = addOutgoing(s, account, bareJid(ev.to), room, ev.message, ev.url, now, ev.url);
      return s;
    }
    case "file_downloaded": {
      const account = num(ev.account);
      const key = `x${account}-${idKey(ev.transfer)}`;
      const t =
        state.transfers[key] ?? newTransfer(key, null, account, "incoming", "", fileNameOf(ev.path), null, now, true);
      return setTransfer(state, {
        ...t,
        fileName: t.fileName || fileNameOf(ev.path),
        status: "completed",
        percent: 100,
        bytes: num(ev.bytes),
        total: num(ev.bytes),
        path: ev.path,
        rateBps: 0,
        etaMs: null,
      });
    }
    case "file_failed": {
      const account = num(ev.account);
      const key = `x${account}-${idKey(ev.transfer)}`;
      const t = state.transfers[key];
      const s = t ? setTransfer(state, { ...t, status: "failed", detail: ev.reason, rateBps: 0, etaMs: null }) : state;
      return warn(s, `File transfer failed: ${ev.reason}.`, now);
    }

    case "warning":
      // Engine warnings are for the log: the engine answered and carried on. Only the keyring
      // one concerns the person (the password will not be remembered).
      if (/keyring/i.test(ev.detail)) return addToast(state, ev.detail, now, "info");
      return state;
  }
  return state;
}

/** Folds many events (tests, replays). */
export function applyEvents(state: AppState, events: EngineEvent[], now: number): AppState {
  return events.reduce((s, ev) => applyEvent(s, ev, now), state);
}

/** The delivery state of a message in words, for the little line under it. */
export function deliveryWords(m: MessageView): string {
  if (m.direction === "in") return "";
  switch (m.state) {
    case "queued":
      return "Sending…";
    case "sent":
      return "Sent";
    case "delivered":
      return "Delivered";
    case "read":
      return "Read";
    case "failed":
      return m.failure ? `Not delivered: ${m.failure}` : "Not delivered";
  }
}

/** Words for a toast about an error from a command. */
export { errorWords };
