// The calls slice: the calls going on (the engine runs several at once, each under its own id)
// and the call history.
import type { Bootstrap, CallRecord, EngineEvent } from "../types";
import { num } from "../types";
import { idKey } from "./common";

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

export interface CallsState {
  calls: Record<string, CallView>;
  callHistory: HistoryCall[];
}

export function emptyCalls(): CallsState {
  return { calls: {}, callHistory: [] };
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

export function callsFromBootstrap<S extends CallsState>(state: S, boot: Bootstrap): S {
  return { ...state, callHistory: boot.calls.map(historyCallFromRecord) };
}

// ---------------------------------------------------------------- calls

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
  };
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
  return setCall(state, newCall(id, account, peer, null, "outgoing", now));
}

export function setMuted<S extends CallsState>(state: S, callKey: string, muted: boolean): S {
  const c = state.calls[callKey];
  return c ? setCall(state, { ...c, muted }) : state;
}

/** An incoming call still waiting for an answer (the incoming screen shows it). */
export function ringingIncoming(state: CallsState): CallView | null {
  return (
    Object.values(state.calls).find(
      (c) => c.direction === "incoming" && c.answeredAt === null && c.status !== "ended",
    ) ?? null
  );
}

/** The call the in-call view shows: the newest answered or outgoing one (ended ones stay a
 * moment, until `dropEndedCalls`). */
export function currentCall(state: CallsState): CallView | null {
  const calls = Object.values(state.calls).filter(
    (c) => c.direction === "outgoing" || c.answeredAt !== null,
  );
  calls.sort((a, b) => Number(a.status === "ended") - Number(b.status === "ended") || b.startedAt - a.startedAt);
  return calls[0] ?? null;
}

/** Ended calls leave the screen this long after they ended. */
export const ENDED_CALL_LINGER_MS = 2_500;

export function dropEndedCalls<S extends CallsState>(state: S, now: number): S {
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

export function setCallHistory<S extends CallsState>(state: S, records: CallRecord[]): S {
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


export function reduceCalls<S extends CallsState>(state: S, ev: EngineEvent, now: number): S {
  switch (ev.event) {
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

    default:
      return state;
  }
}
