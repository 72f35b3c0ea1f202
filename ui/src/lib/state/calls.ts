// The calls slice: the calls going on — the engine runs several at once, each under its own
// id, and one of them is the active call (the one the person talks in) — and the call history.
import type { Bootstrap, CallRecord, EngineEvent } from "../types";
import { num } from "../types";
import { idKey, type Fold } from "./common";

/** `data-state` of a call's card. */
export type CallStatus = "dialing" | "ringing" | "answered" | "connected" | "audio" | "ended";

/** Progress of a transfer we asked for (the status line the transferee reports back). */
export interface CallTransferProgress {
  status: number;
  reason: string;
  /** The transfer is over (succeeded or failed); no more progress will come. */
  final: boolean;
}

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
  /** We put the call on hold. */
  heldLocal: boolean;
  /** The other side put us on hold. */
  heldRemote: boolean;
  /** Keys the other side pressed, oldest first (the newest few). */
  dtmfReceived: string;
  transfer: CallTransferProgress | null;
  /** The file the call is being recorded into, while it is. */
  recording: string | null;
  /** The call goes on without this sound-card device, for this reason (see the engine's
   * `call_device_unavailable`): no microphone, the other side hears silence; no speaker,
   * nothing is played. */
  noMicrophone: string | null;
  noSpeaker: string | null;
}

export interface HistoryCall {
  key: string;
  account: number;
  direction: "in" | "out";
  peer: string;
  /** The caller's own name, when the call came with one. */
  displayName: string | null;
  startedAt: number;
  durationMs: number | null;
  missed: boolean;
  endReason: string | null;
  /** Still going on (history shows the calls in progress on top). */
  inProgress: boolean;
}

export interface CallsState {
  calls: Record<string, CallView>;
  /** The call the person talks in (key into `calls`), if any. */
  activeCall: string | null;
  /** Keys of the calls mixed together in a local conference (empty: none). */
  conference: string[];
  callHistory: HistoryCall[];
}

/** An ended call's summary stays on screen this long, then folds into history. */
export const ENDED_CALL_LINGER_MS = 4_000;
/** How many received keys a call remembers (enough for a PIN or an extension). */
const DTMF_KEPT = 24;

export function emptyCalls(): CallsState {
  return { calls: {}, activeCall: null, conference: [], callHistory: [] };
}

export function historyCallFromRecord(r: CallRecord): HistoryCall {
  return {
    key: `h${num(r.id)}`,
    account: num(r.account),
    direction: r.direction,
    peer: r.peer_address,
    displayName: null,
    startedAt: num(r.started_at_ms),
    durationMs: r.duration_ms === null ? null : num(r.duration_ms),
    missed: r.missed,
    endReason: r.end_reason ?? null,
    inProgress: false,
  };
}

export function callsFromBootstrap<S extends CallsState>(state: S, boot: Bootstrap): S {
  return { ...state, callHistory: boot.calls.map(historyCallFromRecord) };
}

export function setCallHistory<S extends CallsState>(state: S, records: CallRecord[]): S {
  return { ...state, callHistory: records.map(historyCallFromRecord) };
}

// ---------------------------------------------------------------- changing calls

function setCall<S extends CallsState>(state: S, call: CallView): S {
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
    heldLocal: false,
    heldRemote: false,
    dtmfReceived: "",
    transfer: null,
    recording: null,
    noMicrophone: null,
    noSpeaker: null,
  };
}

/** A call we place is where the person's attention is: it becomes the active one. */
function placed<S extends CallsState>(state: S, call: CallView): S {
  return { ...setCall(state, call), activeCall: call.key };
}

/** A call we placed, once `start_call` returned its id (the Dialing event may come first). */
export function callStarted<S extends CallsState>(
  state: S,
  account: number,
  id: number | bigint,
  peer: string,
  now: number,
): S {
  if (state.calls[idKey(id)]) return state;
  return placed(state, newCall(id, account, peer, null, "outgoing", now));
}

export function setMuted<S extends CallsState>(state: S, callKey: string, muted: boolean): S {
  const c = state.calls[callKey];
  return c ? setCall(state, { ...c, muted }) : state;
}

/** The person chose which call to talk in. */
export function setActiveCall<S extends CallsState>(state: S, callKey: string): S {
  const c = state.calls[callKey];
  if (!c || !isOnScreen(c) || c.status === "ended" || state.activeCall === callKey) return state;
  return { ...state, activeCall: callKey };
}

/** A call the in-call list shows: one we placed, or one we answered (an incoming call still
 * ringing is on the incoming-call screen instead). */
function isOnScreen(c: CallView): boolean {
  return c.direction === "outgoing" || c.answeredAt !== null;
}

/** After the active call ended: the newest other call that is on and not on hold, else the
 * newest other call, else none. */
function nextActive(calls: Record<string, CallView>, ended: string): string | null {
  const candidates = Object.values(calls)
    .filter((c) => c.key !== ended && c.status !== "ended" && isOnScreen(c))
    .sort((a, b) => Number(a.heldLocal) - Number(b.heldLocal) || b.startedAt - a.startedAt);
  return candidates[0]?.key ?? null;
}

/** A call that ended this session, for the history list until the store's version is read. */
function historyFromCall(c: CallView, now: number): HistoryCall {
  return {
    key: `c${c.key}`,
    account: c.account,
    direction: c.direction === "incoming" ? "in" : "out",
    peer: c.peer,
    displayName: c.displayName,
    startedAt: c.startedAt,
    durationMs: c.answeredAt !== null ? now - c.answeredAt : null,
    missed: c.direction === "incoming" && c.answeredAt === null,
    endReason: c.endReason,
    inProgress: false,
  };
}

function answered<S extends CallsState>(state: S, c: CallView, status: CallStatus, now: number): S {
  // An incoming call is active from the moment it is answered (the engine puts the call that
  // was going on on hold, and says so with `call_hold`).
  const first = c.answeredAt === null;
  const s = setCall(state, { ...c, status, answeredAt: c.answeredAt ?? now });
  return first && c.direction === "incoming" ? { ...s, activeCall: c.key } : s;
}

function ended<S extends CallsState>(state: S, c: CallView, reason: string, status: number | null, now: number): S {
  const done: CallView = {
    ...c,
    status: "ended",
    endedAt: now,
    endReason: reason,
    endStatus: status,
    heldLocal: false,
    heldRemote: false,
    recording: null,
  };
  const s = setCall(state, done);
  return {
    ...s,
    activeCall: s.activeCall === c.key ? nextActive(s.calls, c.key) : s.activeCall,
    conference: s.conference.filter((k) => k !== c.key),
    callHistory: [historyFromCall(done, now), ...s.callHistory],
  };
}

/** Ended calls leave the screen `ENDED_CALL_LINGER_MS` after they ended. */
export function dropEndedCalls<S extends CallsState>(state: S, now: number): S {
  const entries = Object.entries(state.calls);
  const keep = entries.filter(
    ([, c]) => c.status !== "ended" || (c.endedAt !== null && now - c.endedAt < ENDED_CALL_LINGER_MS),
  );
  return keep.length === entries.length ? state : { ...state, calls: Object.fromEntries(keep) };
}

/** The person dismissed an ended call's summary. */
export function foldEndedCall<S extends CallsState>(state: S, callKey: string): S {
  if (state.calls[callKey]?.status !== "ended") return state;
  const calls = { ...state.calls };
  delete calls[callKey];
  return { ...state, calls };
}

/** When the next ended call's summary is due to fold into history (null: none on screen). */
export function nextCallFold(state: CallsState): number | null {
  const due = Object.values(state.calls)
    .filter((c) => c.status === "ended" && c.endedAt !== null)
    .map((c) => (c.endedAt ?? 0) + ENDED_CALL_LINGER_MS);
  return due.length === 0 ? null : Math.min(...due);
}

// ---------------------------------------------------------------- reading calls

/** An incoming call still waiting for an answer (the incoming screen shows it). */
export function ringingIncoming(state: CallsState): CallView | null {
  return (
    Object.values(state.calls).find(
      (c) => c.direction === "incoming" && c.answeredAt === null && c.status !== "ended",
    ) ?? null
  );
}

/** The sound the window plays now: the ringtone for a call while none is going on, the softer
 * call-waiting tone over a call in progress, ringback while our callee is alerted, busy once. */
export function callTone(state: CallsState): "ringtone" | "call-waiting" | "ringback" | "busy" | null {
  const ringing = ringingIncoming(state);
  if (ringing) {
    const inACall = Object.values(state.calls).some(
      (c) => c.key !== ringing.key && c.answeredAt !== null && c.status !== "ended",
    );
    return inACall ? "call-waiting" : "ringtone";
  }
  const current = currentCall(state);
  if (current?.direction === "outgoing" && current.status === "ringing") return "ringback";
  if (current && isBusy(current)) return "busy";
  return null;
}

/** What leaving the conference does: with two others on one account they are connected to
 * each other; any other conference ends for everyone (the mix is ours). */
export function leavingConnectsTheOthers(conference: CallView[]): boolean {
  const [first, second, ...more] = conference;
  return first !== undefined && second !== undefined && more.length === 0 && first.account === second.account;
}

/** The calls going on, as the call list shows them: the active one first, then the newest. */
export function liveCalls(state: CallsState): CallView[] {
  return Object.values(state.calls)
    .filter((c) => c.status !== "ended" && isOnScreen(c))
    .sort(
      (a, b) =>
        Number(b.key === state.activeCall) - Number(a.key === state.activeCall) || b.startedAt - a.startedAt,
    );
}

/** Calls that just ended, shown as a short summary before they fold into history. */
export function endedCalls(state: CallsState): CallView[] {
  return Object.values(state.calls)
    .filter((c) => c.status === "ended")
    .sort((a, b) => (b.endedAt ?? 0) - (a.endedAt ?? 0));
}

/** The call that matters most right now: the active one, else the newest going on, else the
 * one that just ended (its busy tone, its summary). */
export function currentCall(state: CallsState): CallView | null {
  const active = state.activeCall ? state.calls[state.activeCall] : undefined;
  if (active && active.status !== "ended") return active;
  return liveCalls(state)[0] ?? endedCalls(state).find(isOnScreen) ?? null;
}

/** The calls mixed with `call` in a conference (none when it is not in one). */
export function conferencePeers(state: CallsState, call: CallView): CallView[] {
  if (!state.conference.includes(call.key)) return [];
  return state.conference
    .filter((k) => k !== call.key)
    .map((k) => state.calls[k])
    .filter((c): c is CallView => c !== undefined && c.status !== "ended");
}

/** The calls of the local conference still going on, in the order the engine listed them. */
export function conferenceCalls(state: CallsState): CallView[] {
  const on = state.conference.map((k) => state.calls[k]).filter((c): c is CallView => c !== undefined && c.status !== "ended");
  // A conference whose other parties hung up is just a call again.
  return on.length > 1 ? on : [];
}

/** The calls "merge" would mix with `call`: the others going on that are not already in the
 * conference with it (with one call talking at a time, those are the held ones). */
export function mergeableWith(state: CallsState, call: CallView): CallView[] {
  const together = (c: CallView): boolean => state.conference.includes(c.key) && state.conference.includes(call.key);
  return liveCalls(state).filter((c) => c.key !== call.key && !together(c));
}

/** The calls whose other side `call`'s other side can be connected to (attended transfer): the
 * others going on on the same account, since REFER with Replaces stays within one account. */
export function attendedTransferTargets(state: CallsState, call: CallView): CallView[] {
  return liveCalls(state).filter((c) => c.key !== call.key && c.account === call.account);
}

/** History with the calls in progress on top (their entry becomes a stored one once they end). */
export function historyWithLive(state: CallsState): HistoryCall[] {
  const live: HistoryCall[] = liveCalls(state)
    .slice()
    .sort((a, b) => b.startedAt - a.startedAt)
    .map((c) => ({
      key: `live${c.key}`,
      account: c.account,
      direction: c.direction === "incoming" ? "in" : "out",
      peer: c.peer,
      displayName: c.displayName,
      startedAt: c.startedAt,
      durationMs: null,
      missed: false,
      endReason: null,
      inProgress: true,
    }));
  return [...live, ...state.callHistory];
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

/** A transfer's progress in words ("Transferring… (180 Ringing)", "Transferred", "Transfer
 * failed: 486 Busy Here"). */
export function transferWords(t: CallTransferProgress): string {
  const line = `${t.status} ${t.reason}`.trim();
  if (!t.final) return `Transferring… (${line})`;
  return t.status >= 200 && t.status < 300 ? "Transferred" : `Transfer failed: ${line}`;
}

// ---------------------------------------------------------------- the event fold

/** A DTMF key as RFC 4733 names them (events 0–15). */
const DTMF_KEY = /^[0-9*#A-D]$/;

export function reduceCalls<S extends CallsState>(state: S, ev: EngineEvent, fold: Fold): S {
  const now = fold.now;
  switch (ev.event) {
    case "incoming_call":
      return setCall(state, newCall(ev.call, num(ev.account), ev.from, ev.display_name ?? null, "incoming", now));
    case "call_state": {
      const existing = state.calls[idKey(ev.call)];
      const cs = ev.state;
      if (cs.state === "dialing") {
        if (existing) return setCall(state, { ...existing, peer: existing.peer || cs.peer });
        const call = newCall(ev.call, num(ev.account), cs.peer, null, cs.direction, now);
        return cs.direction === "outgoing" ? placed(state, call) : setCall(state, call);
      }
      if (!existing || existing.status === "ended") return state;
      switch (cs.state) {
        case "ringing":
          return setCall(state, { ...existing, status: "ringing" });
        case "answered":
          return answered(state, existing, "answered", now);
        case "media_connected":
          return answered(state, existing, "connected", now);
        case "audio_flowing":
          return answered(state, existing, "audio", now);
        case "ended":
          return ended(state, existing, cs.reason, cs.status === null ? null : cs.status, now);
      }
      return state;
    }
    case "call_hold": {
      const c = state.calls[idKey(ev.call)];
      if (!c || c.status === "ended") return state;
      const s = setCall(state, { ...c, heldLocal: ev.local, heldRemote: ev.remote });
      // Like a phone's swap: the call we take off hold is the one we talk in now (the engine
      // holds the one we were talking in). The active call we hold hands the keypad to a call
      // still talking, if one is.
      if (c.heldLocal && !ev.local && isOnScreen(c)) return { ...s, activeCall: c.key };
      if (!c.heldLocal && ev.local && s.activeCall === c.key) {
        const talking = nextActive(s.calls, c.key);
        if (talking !== null && s.calls[talking]?.heldLocal === false) return { ...s, activeCall: talking };
      }
      return s;
    }
    case "dtmf_received": {
      const c = state.calls[idKey(ev.call)];
      const digit = ev.digit.toUpperCase();
      if (!c || c.status === "ended" || !DTMF_KEY.test(digit)) return state;
      return setCall(state, { ...c, dtmfReceived: (c.dtmfReceived + digit).slice(-DTMF_KEPT) });
    }
    case "call_transfer": {
      const c = state.calls[idKey(ev.call)];
      if (!c) return state;
      const transfer: CallTransferProgress = { status: ev.status, reason: ev.reason, final: ev.final };
      if (ev.final && (ev.status < 200 || ev.status >= 300)) {
        const line = `${ev.status} ${ev.reason}`.trim();
        fold.say(`Could not transfer the call with ${fold.nameOf(c.peer, c.displayName)}: ${line}.`);
      }
      return setCall(state, { ...c, transfer });
    }
    case "call_device_unavailable": {
      const c = state.calls[idKey(ev.call)];
      if (!c || c.status === "ended") return state;
      return setCall(
        state,
        ev.device === "microphone" ? { ...c, noMicrophone: ev.reason } : { ...c, noSpeaker: ev.reason },
      );
    }
    case "call_recording": {
      const c = state.calls[idKey(ev.call)];
      if (!c || c.status === "ended") return state;
      return setCall(state, { ...c, recording: ev.path });
    }
    case "conference": {
      // Only calls we know and that are still on can be in it; a conference of one is none.
      const keys = ev.calls.map(idKey).filter((k) => {
        const c = state.calls[k];
        return c !== undefined && c.status !== "ended";
      });
      return { ...state, conference: keys.length > 1 ? keys : [] };
    }
    default:
      return state;
  }
}
