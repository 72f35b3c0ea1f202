// The accounts slice: registration, login and their failures in words.
import { describe, expect, it } from "vitest";
import * as S from ".";
import type { EngineEvent } from "../types";
import { bootstrap, SIP_ACCOUNT, XMPP_ACCOUNT, bootedState as booted, onlineState as online, T0 } from "../fixtures";

describe("accounts", () => {
  it("follows SIP registration and XMPP login", () => {
    const s = online();
    expect(s.accounts["1"]?.status).toBe("registered");
    expect(s.accounts["2"]?.status).toBe("online");
    expect(s.accounts["1"]?.detail).toBe("Ready for calls");
  });

  it("takes the audio settings from the bootstrap, music on hold included", () => {
    expect(booted().audio).toEqual({ input: null, output: null, musicOnHold: true });
    const quiet = S.applyBootstrap(
      S.emptyState(),
      bootstrap({ audio: { input_device: "Headset", output_device: null, music_on_hold: false } }),
    );
    expect(quiet.audio).toEqual({ input: "Headset", output: null, musicOnHold: false });
  });

  it("says a refused password in words and asks for it", () => {
    const s = S.applyEvent(
      booted(),
      { event: "account_state", account: 1, state: { state: "registration_failed", status: 403, reason: "Forbidden" } },
      T0,
    );
    expect(s.accounts["1"]?.status).toBe("failed");
    expect(s.accounts["1"]?.needsPassword).toBe(true);
    expect(s.toasts.map((t) => t.text)).toEqual([
      "sip:alice@lyrebird.test: The server refused the password (403 Forbidden).",
    ]);
  });

  it("says an untrusted server certificate in the engine's words, without asking for a password", () => {
    const reason =
      "wss://127.0.0.1:8443's certificate is not trusted: it is self-signed. If this is your own server, set its certificate as the account's trusted server certificate; the account does not retry until then.";
    const s = S.applyEvent(booted(), { event: "account_state", account: 1, state: { state: "untrusted", reason } }, T0);
    expect(s.accounts["1"]?.status).toBe("failed");
    expect(s.accounts["1"]?.needsPassword).toBe(false);
    expect(s.toasts.map((t) => t.text)).toEqual([`sip:alice@lyrebird.test: ${reason}`]);
  });

  it("asks for a password that is not stored without an error toast", () => {
    const s = S.applyEvent(
      booted(),
      { event: "account_state", account: 2, state: { state: "authentication_failed", reason: "password needed" } },
      T0,
    );
    expect(s.accounts["2"]?.status).toBe("failed");
    expect(s.accounts["2"]?.needsPassword).toBe(true);
    expect(s.accounts["2"]?.detail).toBe("Password needed");
    expect(s.toasts).toEqual([]);
  });

  it("marks reconnecting and forgets presence it can no longer vouch for", () => {
    let s = online();
    s = S.applyEvent(s, { event: "presence", account: 2, jid: "carol@lyrebird.test/phone", available: true, show: null, status: null }, T0);
    expect(S.mergedContacts(s).find((p) => p.key === "carol@lyrebird.test")?.presence).toBe("available");
    s = S.applyEvent(
      s,
      { event: "account_state", account: 2, state: { state: "reconnecting", attempt: 1, delay_ms: 1500, reason: "connection reset" } },
      T0,
    );
    expect(s.accounts["2"]?.status).toBe("reconnecting");
    expect(s.accounts["2"]?.detail).toBe("Connection lost (connection reset); retrying in 2 s");
    expect(S.mergedContacts(s).find((p) => p.key === "carol@lyrebird.test")?.presence).toBe("unknown");
  });

  it("maps every engine state onto the contract's words", () => {
    const cases: [EngineEvent & { event: "account_state" }, S.AccountStatus][] = [
      [{ event: "account_state", account: 1, state: { state: "connected" } }, "connecting"],
      [{ event: "account_state", account: 1, state: { state: "unregistered" } }, "stopped"],
      [{ event: "account_state", account: 1, state: { state: "stopped" } }, "stopped"],
    ];
    for (const [ev, want] of cases) expect(S.accountStatus(ev.state)).toBe(want);
  });

  it("adds a saved account as connecting and removes one with its contacts", () => {
    let s = S.upsertAccount(S.emptyState(), SIP_ACCOUNT);
    expect(s.accounts["1"]?.status).toBe("connecting");
    s = S.upsertAccount(S.applyBootstrap(s, bootstrap()), XMPP_ACCOUNT);
    s = S.removeAccount(s, 2);
    expect(Object.keys(s.accounts)).toEqual(["1"]);
    expect(Object.values(s.contacts).every((c) => c.account === 1)).toBe(true);
  });
});
