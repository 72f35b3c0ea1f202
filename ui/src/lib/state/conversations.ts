// The conversations slice: one-to-one chats (SIP MESSAGE and XMPP) and rooms, their messages
// with delivery states and corrections, who is typing, and which conversation is on screen.
import type { Bootstrap, ConversationSummary, EngineEvent, MessageRecord } from "../types";
import { num } from "../types";
import { bareJid } from "../address";
import { accountLostTouch } from "./accounts";
import { convKey, idKey, type Fold } from "./common";

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

export interface ConversationsState {
  conversations: Record<string, ConversationView>;
  messages: Record<string, MessageView[]>;
  /** Delivery states that arrived before the send command's reply told us the id. */
  earlyStates: Record<string, { state: DeliveryWord; failure: string | null }>;
  /** SIP MESSAGE id → conversation key. */
  sipSent: Record<string, string>;
  /** Conversation key → time until which the peer counts as typing. */
  typing: Record<string, number>;
  rooms: Record<string, RoomView>;
  /** Numbers local ids (SIP messages received have no id of their own). */
  seq: number;
  /** The conversation on screen (its messages are read as they arrive while the window has
   * the person's attention). */
  openConversation: string | null;
  /** Whether the window is focused: a message in the open conversation is unread until then. */
  windowFocused: boolean;
}

/** A peer counts as typing this long after its last "composing" (XEP-0085 §5.2 suggests
 * clients send "paused" after a few seconds; this catches the ones that never do). */
export const TYPING_TIMEOUT_MS = 30_000;

export function emptyConversations(): ConversationsState {
  return {
    conversations: {},
    messages: {},
    earlyStates: {},
    sipSent: {},
    typing: {},
    rooms: {},
    seq: 1,
    openConversation: null,
    windowFocused: true,
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

export function conversationsFromBootstrap<S extends ConversationsState>(state: S, boot: Bootstrap): S {
  const conversations: Record<string, ConversationView> = { ...state.conversations };
  for (const s of boot.conversations) {
    const c = conversationFromSummary(s);
    const live = conversations[c.key];
    conversations[c.key] = live ? { ...c, unread: Math.max(c.unread, live.unread) } : c;
  }
  return { ...state, conversations };
}

/** An account went offline: its rooms are left (the server no longer counts us in). */
function leaveRoomsOf<S extends ConversationsState>(state: S, account: number): S {
  if (!Object.values(state.rooms).some((r) => r.account === account && r.joined)) return state;
  const rooms: Record<string, RoomView> = {};
  for (const [k, r] of Object.entries(state.rooms)) {
    rooms[k] = r.account === account ? { ...r, joined: false, occupants: {} } : r;
  }
  return { ...state, rooms };
}

/** An account was removed: its rooms go with it (its conversations stay, as history). */
export function forgetAccountRooms<S extends ConversationsState>(state: S, account: number): S {
  return {
    ...state,
    rooms: Object.fromEntries(Object.entries(state.rooms).filter(([, r]) => r.account !== account)),
  };
}

export function isRoom(state: Pick<ConversationsState, "rooms">, account: number, address: string): boolean {
  return Object.values(state.rooms).some((r) => r.account === account && r.room === address);
}

// ---------------------------------------------------------------- conversations and messages

function ensureConversation<S extends ConversationsState>(
  state: S,
  account: number,
  peer: string,
  room: boolean,
): { state: S; key: string } {
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
export function openConversation<S extends ConversationsState>(
  state: S,
  account: number,
  peer: string,
  room = false,
): S {
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
export function setWindowFocused<S extends ConversationsState>(state: S, focused: boolean): S {
  if (state.windowFocused === focused) return state;
  const next = { ...state, windowFocused: focused };
  const key = state.openConversation;
  const conv = key ? state.conversations[key] : undefined;
  if (focused && key && conv && conv.unread > 0) {
    next.conversations = { ...state.conversations, [key]: { ...conv, unread: 0 } };
  }
  return next;
}

export function closeConversation<S extends ConversationsState>(state: S): S {
  return { ...state, openConversation: null };
}

/** Conversations, most recent first. */
export function conversationList<S extends ConversationsState>(state: S): ConversationView[] {
  return Object.values(state.conversations).sort(
    (a, b) => (b.lastActivity ?? 0) - (a.lastActivity ?? 0) || a.key.localeCompare(b.key),
  );
}

export function totalUnread<S extends ConversationsState>(state: S): number {
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
export function addMessage<S extends ConversationsState>(
  state: S,
  account: number,
  peer: string,
  room: boolean,
  message: MessageView,
  opts: { replaces?: string | null; countUnread?: boolean } = {},
): S {
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

function setMessageState<S extends ConversationsState>(
  state: S,
  key: string | null,
  id: string,
  next: DeliveryWord,
  failure: string | null,
): S {
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
export function addOutgoing<S extends ConversationsState>(
  state: S,
  account: number,
  peer: string,
  room: boolean,
  id: string,
  body: string,
  now: number,
  url: string | null = null,
): S {
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
export function addOutgoingSip<S extends ConversationsState>(
  state: S,
  account: number,
  peer: string,
  messageId: number | bigint,
  body: string,
  now: number,
): S {
  const id = `sip-${idKey(messageId)}`;
  const s = addOutgoing(state, account, peer, false, id, body, now);
  return { ...s, sipSent: { ...s.sipSent, [idKey(messageId)]: convKey(account, peer) } };
}

/** Our correction of an earlier message, applied at once (XEP-0308). */
export function applyOwnCorrection<S extends ConversationsState>(
  state: S,
  key: string,
  id: string,
  body: string,
): S {
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
export function lastOutgoing<S extends ConversationsState>(state: S, key: string): MessageView | null {
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
export function applyHistory<S extends ConversationsState>(state: S, key: string, records: MessageRecord[]): S {
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

export function isTyping<S extends ConversationsState>(state: S, key: string, now: number): boolean {
  const until = state.typing[key];
  return until !== undefined && until > now;
}

export function expireTyping<S extends ConversationsState>(state: S, now: number): S {
  const entries = Object.entries(state.typing);
  const live = entries.filter(([, until]) => until > now);
  return live.length === entries.length ? state : { ...state, typing: Object.fromEntries(live) };
}

// ---------------------------------------------------------------- rooms

function setRoom<S extends ConversationsState>(
  state: S,
  account: number,
  room: string,
  change: (r: RoomView) => RoomView,
): S {
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
export function roomJoining<S extends ConversationsState>(state: S, account: number, room: string, nick: string): S {
  const s = setRoom(state, account, room, (r) => ({ ...r, nick, error: null }));
  return ensureConversation(s, account, room, true).state;
}

export function occupantList(room: RoomView): OccupantView[] {
  return Object.values(room.occupants).sort(
    (a, b) => Number(b.isSelf) - Number(a.isSelf) || a.nick.localeCompare(b.nick),
  );
}


// ---------------------------------------------------------------- the event fold

export function reduceConversations<S extends ConversationsState>(
  state: S,
  ev: EngineEvent,
  fold: Fold,
): S {
  const now = fold.now;
  switch (ev.event) {
    case "account_state":
      return accountLostTouch(ev.state) ? leaveRoomsOf(state, num(ev.account)) : state;

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
      fold.say(`Message${peer ? ` to ${fold.nameOf(peer)}` : ""} not delivered: ${why}.`);
      return s;
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
      const s = setMessageState(state, state.messages[key] ? key : null, ev.id, next, ev.reason ?? null);
      if (next === "failed") fold.say(`Message to ${fold.nameOf(ev.peer)} not delivered${ev.reason ? `: ${ev.reason}` : ""}.`);
      return s;
    }
    case "chat_state": {
      const key = convKey(ev.account, bareJid(ev.from));
      const typing = { ...state.typing };
      if (ev.state === "composing") typing[key] = now + TYPING_TIMEOUT_MS;
      else delete typing[key];
      return { ...state, typing };
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
      fold.say(`Room ${ev.room}: ${ev.reason}.`);
      return s;
    }
    case "room_subject":
      return setRoom(state, num(ev.account), ev.room, (r) => ({ ...r, subject: ev.subject }));
    case "occupant":
      return setRoom(state, num(ev.account), ev.room, (r) => {
        const occupants = { ...r.occupants };
        if (ev.available) {
          occupants[ev.nick] = { nick: ev.nick, jid: ev.jid ?? null, role: ev.role ?? null, isSelf: ev.is_self };
        } else {
          delete occupants[ev.nick];
        }
        return { ...r, occupants, nick: ev.is_self && ev.available ? ev.nick : r.nick };
      });

    case "file_shared": {
      // The link to a file we uploaded is a message of ours in the conversation.
      const account = num(ev.account);
      const room = isRoom(state, account, ev.to);
      return addOutgoing(state, account, bareJid(ev.to), room, ev.message, ev.url, now, ev.url);
    }

    default:
      return state;
  }
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
