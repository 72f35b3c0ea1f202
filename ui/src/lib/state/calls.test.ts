// The calls slice: calls from ringing to history.
import { describe, expect, it } from "vitest";
import * as S from ".";
import type { EngineEvent } from "../types";
import { onlineState as online, T0 } from "../fixtures";

describe("calls", () => {
  it("rings, is answered, connects and ends into history", () => {
    let s = online();
    s = S.applyEvent(s, { event: "incoming_call", account: 1, call: 41, from: "sip:bob@lyrebird.test", display_name: "Bob" }, T0);
    expect(S.ringingIncoming(s)?.displayName).toBe("Bob");
    expect(S.currentCall(s)).toBeNull();
    s = S.applyEvent(s, { event: "call_state", account: 1, call: 41, state: { state: "answered" } }, T0 + 2000);
    expect(S.ringingIncoming(s)).toBeNull();
    expect(S.currentCall(s)?.status).toBe("answered");
    s = S.applyEvent(s, { event: "call_state", account: 1, call: 41, state: { state: "media_connected" } }, T0 + 2100);
    s = S.applyEvent(s, { event: "call_state", account: 1, call: 41, state: { state: "audio_flowing" } }, T0 + 2200);
    expect(S.currentCall(s)?.status).toBe("audio");
    s = S.applyEvent(s, { event: "call_state", account: 1, call: 41, state: { state: "ended", reason: "remote hangup", status: null } }, T0 + 62_000);
    expect(S.currentCall(s)?.status).toBe("ended");
    expect(s.callHistory[0]).toMatchObject({ direction: "in", missed: false, durationMs: 60_000, peer: "sip:bob@lyrebird.test" });
    expect(S.dropEndedCalls(s, T0 + 62_000 + S.ENDED_CALL_LINGER_MS).calls).toEqual({});
  });

  it("calls an incoming call that was never answered missed", () => {
    let s = online();
    s = S.applyEvent(s, { event: "incoming_call", account: 1, call: 42, from: "sip:carol@lyrebird.test", display_name: null }, T0);
    s = S.applyEvent(s, { event: "call_state", account: 1, call: 42, state: { state: "ended", reason: "remote cancel", status: 487 } }, T0 + 9000);
    expect(S.ringingIncoming(s)).toBeNull();
    expect(s.callHistory[0]).toMatchObject({ direction: "in", missed: true, durationMs: null });
  });

  it("follows an outgoing call whether the reply or the Dialing event comes first", () => {
    const dialing: EngineEvent = {
      event: "call_state",
      account: 1,
      call: 7,
      state: { state: "dialing", direction: "outgoing", peer: "sip:echo@lyrebird.test" },
    };
    const a = S.callStarted(S.applyEvent(online(), dialing, T0), 1, 7, "sip:echo@lyrebird.test", T0);
    const b = S.applyEvent(S.callStarted(online(), 1, 7, "sip:echo@lyrebird.test", T0), dialing, T0);
    for (let s of [a, b]) {
      expect(Object.keys(s.calls)).toEqual(["7"]);
      expect(S.currentCall(s)?.status).toBe("dialing");
      s = S.applyEvent(s, { event: "call_state", account: 1, call: 7, state: { state: "ringing", status: 180 } }, T0);
      expect(S.currentCall(s)?.status).toBe("ringing");
      expect(S.currentCall(s)?.answeredAt).toBeNull();
    }
  });

  it("recognises busy and says why a call ended", () => {
    let s = S.callStarted(online(), 1, 8, "sip:busy@lyrebird.test", T0);
    s = S.applyEvent(s, { event: "call_state", account: 1, call: 8, state: { state: "ended", reason: "busy here", status: 486 } }, T0);
    const c = S.currentCall(s)!;
    expect(S.isBusy(c)).toBe(true);
    expect(S.endReasonWords(c.endReason, c.endStatus)).toBe("Busy");
    expect(S.endReasonWords("remote_hangup", null)).toBe("Remote hangup");
    expect(s.callHistory[0]).toMatchObject({ direction: "out", missed: false });
  });

  it("ignores late states after the end, and keeps mute per call", () => {
    let s = S.callStarted(online(), 1, 9, "sip:x@lyrebird.test", T0);
    s = S.setMuted(s, "9", true);
    expect(s.calls["9"]?.muted).toBe(true);
    s = S.applyEvent(s, { event: "call_state", account: 1, call: 9, state: { state: "ended", reason: "x", status: null } }, T0);
    s = S.applyEvent(s, { event: "call_state", account: 1, call: 9, state: { state: "audio_flowing" } }, T0);
    expect(s.calls["9"]?.status).toBe("ended");
  });

  it("replaces session history with the store's records", () => {
    const s = S.setCallHistory(online(), [
      { id: 1, account: 1, call_key: "k", direction: "out", peer_address: "sip:z@x", started_at_ms: 5, answered_at_ms: null, ended_at_ms: 6, end_reason: "busy", duration_ms: null, missed: false },
    ]);
    expect(s.callHistory.map((h) => h.peer)).toEqual(["sip:z@x"]);
  });
});
