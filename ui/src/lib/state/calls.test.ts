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

  it("rings softly for a second call while one is going on", () => {
    let s = online();
    s = S.applyEvent(s, { event: "incoming_call", account: 1, call: 41, from: "sip:bob@lyrebird.test", display_name: "Bob" }, T0);
    expect(S.callTone(s)).toBe("ringtone");
    s = S.applyEvent(s, { event: "call_state", account: 1, call: 41, state: { state: "answered" } }, T0 + 1000);
    expect(S.callTone(s)).toBeNull();
    s = S.applyEvent(s, { event: "incoming_call", account: 1, call: 42, from: "sip:carol@lyrebird.test", display_name: null }, T0 + 5000);
    expect(S.callTone(s)).toBe("call-waiting");
    s = S.applyEvent(s, { event: "call_state", account: 1, call: 41, state: { state: "ended", reason: "hung up", status: null } }, T0 + 6000);
    expect(S.callTone(s)).toBe("ringtone");
  });

  it("leaving connects the other two only when one account holds both calls", () => {
    const call = (key: string, account: number) => ({ key, account }) as S.CallView;
    expect(S.leavingConnectsTheOthers([call("1:1", 1), call("1:2", 1)])).toBe(true);
    expect(S.leavingConnectsTheOthers([call("1:1", 1), call("2:2", 2)])).toBe(false);
    expect(S.leavingConnectsTheOthers([call("1:1", 1), call("1:2", 1), call("1:3", 1)])).toBe(false);
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

describe("several calls", () => {
  const incoming = (call: number, from: string, display_name: string | null = null): EngineEvent => ({
    event: "incoming_call",
    account: 1,
    call,
    from,
    display_name,
  });
  const state = (call: number, st: Extract<EngineEvent, { event: "call_state" }>["state"]): EngineEvent => ({
    event: "call_state",
    account: 1,
    call,
    state: st,
  });

  /** Alice talks to Bob (call 1) when Carol calls (call 2). */
  function twoCalls(): S.AppState {
    let s = S.callStarted(online(), 1, 1, "sip:bob@lyrebird.test", T0);
    s = S.applyEvents(s, [state(1, { state: "ringing", status: 180 }), state(1, { state: "audio_flowing" })], T0 + 1000);
    return S.applyEvent(s, incoming(2, "sip:carol@lyrebird.test", "Carol"), T0 + 5000);
  }

  it("keeps each call by its id, with the one we talk in active", () => {
    let s = twoCalls();
    expect(Object.keys(s.calls).sort()).toEqual(["1", "2"]);
    expect(s.activeCall).toBe("1");
    expect(S.ringingIncoming(s)?.key).toBe("2");
    expect(S.liveCalls(s).map((c) => c.key)).toEqual(["1"]);
    // Answering the second call while in the first: both go on, the answered one is active.
    s = S.applyEvent(s, state(2, { state: "answered" }), T0 + 6000);
    expect(s.activeCall).toBe("2");
    expect(S.liveCalls(s).map((c) => [c.key, c.status])).toEqual([
      ["2", "answered"],
      ["1", "audio"],
    ]);
    expect(S.ringingIncoming(s)).toBeNull();
    expect(S.currentCall(s)?.key).toBe("2");
  });

  it("makes the remaining call active when the active one ends", () => {
    let s = S.applyEvent(twoCalls(), state(2, { state: "audio_flowing" }), T0 + 6000);
    s = S.applyEvent(s, state(2, { state: "ended", reason: "remote hangup", status: null }), T0 + 9000);
    expect(s.activeCall).toBe("1");
    expect(S.liveCalls(s).map((c) => c.key)).toEqual(["1"]);
    expect(S.endedCalls(s).map((c) => c.key)).toEqual(["2"]);
    expect(s.callHistory[0]).toMatchObject({ key: "c2", peer: "sip:carol@lyrebird.test", displayName: "Carol", durationMs: 3000 });
    s = S.applyEvent(s, state(1, { state: "ended", reason: "local hangup", status: null }), T0 + 10_000);
    expect(s.activeCall).toBeNull();
    expect(S.liveCalls(s)).toEqual([]);
  });

  it("swaps like a phone: the call taken off hold is the one talked in", () => {
    const hold = (call: number, local: boolean): EngineEvent => ({ event: "call_hold", account: 1, call, local, remote: false });
    // Answering Carol holds Bob (the engine says so); Carol is active.
    let s = S.applyEvents(twoCalls(), [state(2, { state: "audio_flowing" }), hold(1, true)], T0 + 6000);
    expect(s.activeCall).toBe("2");
    // Resuming Bob holds Carol: Bob is active now, and listed first.
    s = S.applyEvents(s, [hold(1, false), hold(2, true)], T0 + 7000);
    expect(s.activeCall).toBe("1");
    expect(S.liveCalls(s).map((c) => [c.key, c.heldLocal])).toEqual([
      ["1", false],
      ["2", true],
    ]);
    // Holding the active call while the other is held too leaves it active (nothing talks).
    s = S.applyEvent(s, hold(1, true), T0 + 8000);
    expect(s.activeCall).toBe("1");
    // Holding the active call while another one talks hands the keypad over.
    s = S.applyEvents(s, [hold(2, false), hold(1, false)], T0 + 9000);
    expect(s.activeCall).toBe("1");
    s = S.applyEvent(s, hold(1, true), T0 + 9500);
    expect(s.activeCall).toBe("2");
    // The other side holding us changes nothing about which call is active.
    s = S.applyEvent(s, { event: "call_hold", account: 1, call: 2, local: false, remote: true }, T0 + 10_000);
    expect(s.activeCall).toBe("2");
  });

  it("lets the person choose the active call, but not an ended or ringing one", () => {
    let s = S.applyEvent(twoCalls(), state(2, { state: "answered" }), T0 + 6000);
    s = S.setActiveCall(s, "1");
    expect(s.activeCall).toBe("1");
    const ringing = S.applyEvent(s, incoming(3, "sip:dave@lyrebird.test"), T0 + 7000);
    expect(S.setActiveCall(ringing, "3").activeCall).toBe("1");
    expect(S.setActiveCall(s, "nope")).toBe(s);
  });

  it("shows the calls in progress on top of history until they end", () => {
    let s = twoCalls();
    expect(S.historyWithLive(s).map((h) => [h.key, h.inProgress])).toEqual([
      ["live1", true],
      ["h10", false],
      ["h9", false],
    ]);
    s = S.applyEvent(s, state(1, { state: "ended", reason: "local hangup", status: null }), T0 + 8000);
    expect(S.historyWithLive(s).map((h) => [h.key, h.inProgress])).toEqual([
      ["c1", false],
      ["h10", false],
      ["h9", false],
    ]);
  });

  it("keeps an ended call's summary a few seconds, then folds it away", () => {
    let s = S.applyEvent(twoCalls(), state(1, { state: "ended", reason: "remote hangup", status: null }), T0 + 8000);
    expect(S.nextCallFold(s)).toBe(T0 + 8000 + S.ENDED_CALL_LINGER_MS);
    expect(S.dropEndedCalls(s, T0 + 8000 + S.ENDED_CALL_LINGER_MS - 1).calls["1"]?.status).toBe("ended");
    s = S.dropEndedCalls(s, T0 + 8000 + S.ENDED_CALL_LINGER_MS);
    expect(Object.keys(s.calls)).toEqual(["2"]);
    expect(S.nextCallFold(s)).toBeNull();
  });
});

describe("hold, keys, transfers, recording and conference", () => {
  function inCall(): S.AppState {
    const s = S.callStarted(online(), 1, 5, "sip:bob@lyrebird.test", T0);
    return S.applyEvent(s, { event: "call_state", account: 1, call: 5, state: { state: "audio_flowing" } }, T0);
  }

  it("follows hold on either side", () => {
    let s = S.applyEvent(inCall(), { event: "call_hold", account: 1, call: 5, local: true, remote: false }, T0);
    expect(s.calls["5"]).toMatchObject({ heldLocal: true, heldRemote: false });
    s = S.applyEvent(s, { event: "call_hold", account: 1, call: 5, local: false, remote: true }, T0);
    expect(s.calls["5"]).toMatchObject({ heldLocal: false, heldRemote: true });
  });

  it("collects the keys the other side pressed, and ignores anything that is not a key", () => {
    let s = inCall();
    for (const digit of ["1", "2", "x", "#", "a", "10"]) {
      s = S.applyEvent(s, { event: "dtmf_received", account: 1, call: 5, digit }, T0);
    }
    expect(s.calls["5"]?.dtmfReceived).toBe("12#A");
    for (let i = 0; i < 40; i += 1) s = S.applyEvent(s, { event: "dtmf_received", account: 1, call: 5, digit: "9" }, T0);
    expect(s.calls["5"]?.dtmfReceived.length).toBe(24);
  });

  it("follows a transfer's progress and says when it failed", () => {
    const progress = (status: number, reason: string, final: boolean): EngineEvent => ({
      event: "call_transfer",
      account: 1,
      call: 5,
      status,
      reason,
      final,
    });
    let s = S.applyEvent(inCall(), progress(100, "Trying", false), T0);
    expect(S.transferWords(s.calls["5"]!.transfer!)).toBe("Transferring… (100 Trying)");
    s = S.applyEvent(s, progress(486, "Busy Here", true), T0);
    expect(s.calls["5"]?.transfer).toEqual({ status: 486, reason: "Busy Here", final: true });
    expect(s.toasts.at(-1)).toMatchObject({ text: "Could not transfer the call with Bob: 486 Busy Here.", level: "error" });
    s = S.applyEvent(s, progress(200, "OK", true), T0);
    expect(S.transferWords(s.calls["5"]!.transfer!)).toBe("Transferred");
  });

  it("shows recording while it lasts", () => {
    let s = S.applyEvent(inCall(), { event: "call_recording", account: 1, call: 5, path: "/rec/bob.wav" }, T0);
    expect(s.calls["5"]?.recording).toBe("/rec/bob.wav");
    s = S.applyEvent(s, { event: "call_recording", account: 1, call: 5, path: null }, T0);
    expect(s.calls["5"]?.recording).toBeNull();
  });

  it("keeps which sound-card device a call goes on without, and why", () => {
    const missing = (device: "microphone" | "speaker", reason: string): EngineEvent => ({
      event: "call_device_unavailable",
      account: 1,
      call: 5,
      device,
      reason,
    });
    let s = S.applyEvent(inCall(), missing("microphone", "no input device (default)"), T0);
    expect(s.calls["5"]).toMatchObject({ noMicrophone: "no input device (default)", noSpeaker: null });
    s = S.applyEvent(s, missing("speaker", "device busy"), T0);
    expect(s.calls["5"]).toMatchObject({ noMicrophone: "no input device (default)", noSpeaker: "device busy" });
  });

  it("knows which calls are mixed in a conference, and forgets ended ones", () => {
    let s = inCall();
    s = S.callStarted(s, 1, 6, "sip:carol@lyrebird.test", T0 + 1);
    s = S.applyEvent(s, { event: "conference", calls: [5, 6, 99] }, T0);
    expect(s.conference).toEqual(["5", "6"]);
    expect(S.conferencePeers(s, s.calls["5"]!).map((c) => c.key)).toEqual(["6"]);
    s = S.applyEvent(s, { event: "call_state", account: 1, call: 6, state: { state: "ended", reason: "x", status: null } }, T0);
    expect(s.conference).toEqual(["5"]);
    expect(S.conferencePeers(s, s.calls["5"]!)).toEqual([]);
    s = S.applyEvent(s, { event: "conference", calls: [] }, T0);
    expect(s.conference).toEqual([]);
  });

  it("merges the held calls with the active one, and lists the conference's calls", () => {
    let s = inCall();
    s = S.applyEvent(s, { event: "incoming_call", account: 1, call: 6, from: "sip:carol@lyrebird.test", display_name: null }, T0 + 1);
    s = S.applyEvent(s, { event: "call_state", account: 1, call: 6, state: { state: "audio_flowing" } }, T0 + 2);
    s = S.applyEvent(s, { event: "call_hold", account: 1, call: 5, local: true, remote: false }, T0 + 3);
    expect(s.activeCall).toBe("6");
    expect(S.mergeableWith(s, s.calls["6"]!).map((c) => c.key)).toEqual(["5"]);
    expect(S.attendedTransferTargets(s, s.calls["6"]!).map((c) => c.key)).toEqual(["5"]);
    expect(S.conferenceCalls(s)).toEqual([]);
    s = S.applyEvent(s, { event: "conference", calls: [6, 5] }, T0 + 4);
    expect(S.conferenceCalls(s).map((c) => c.key)).toEqual(["6", "5"]);
    expect(S.mergeableWith(s, s.calls["6"]!)).toEqual([]);
    // A call on another account can join the conference but not take an attended transfer.
    s = S.callStarted(s, 3, 8, "sip:dave@elsewhere.test", T0 + 5);
    expect(S.mergeableWith(s, s.calls["6"]!).map((c) => c.key)).toEqual(["8"]);
    expect(S.attendedTransferTargets(s, s.calls["6"]!).map((c) => c.key)).toEqual(["5"]);
    // Once the others have left, there is no conference to show.
    s = S.applyEvent(s, { event: "call_state", account: 1, call: 5, state: { state: "ended", reason: "x", status: null } }, T0 + 6);
    expect(S.conferenceCalls(s)).toEqual([]);
  });

  it("ignores them for calls it does not know or that ended", () => {
    const s = inCall();
    const events: EngineEvent[] = [
      { event: "call_hold", account: 1, call: 77, local: true, remote: false },
      { event: "dtmf_received", account: 1, call: 77, digit: "1" },
      { event: "call_recording", account: 1, call: 77, path: "/x" },
      { event: "call_device_unavailable", account: 1, call: 77, device: "speaker", reason: "gone" },
      { event: "call_transfer", account: 1, call: 77, status: 200, reason: "OK", final: true },
    ];
    expect(S.applyEvents(s, events, T0)).toEqual(s);
    const over = S.applyEvent(s, { event: "call_state", account: 1, call: 5, state: { state: "ended", reason: "x", status: null } }, T0);
    expect(S.applyEvent(over, { event: "call_hold", account: 1, call: 5, local: true, remote: true }, T0)).toBe(over);
  });
});
