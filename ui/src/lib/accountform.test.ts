import { describe, expect, it } from "vitest";
import { emptyFields, fromSettings, toSettings, validate, xmppWsUrl } from "./accountform";

describe("account form", () => {
  it("builds SIP settings with optional parts left out", () => {
    const f = {
      ...emptyFields("sip"),
      wsUrl: " ws://127.0.0.1:8080/ws ",
      address: "alice@lyrebird.test",
      password: "secret",
      displayName: "Alice",
      turnUrl: "turn:127.0.0.1:3478",
      turnUsername: "u",
      turnCredential: "c",
    };
    expect(validate(f)).toBeNull();
    expect(toSettings(f)).toEqual({
      kind: "sip",
      ws_url: "ws://127.0.0.1:8080/ws",
      aor: "sip:alice@lyrebird.test",
      display_name: "Alice",
      auth_username: null,
      outbound_proxy: null,
      turn: { url: "turn:127.0.0.1:3478", username: "u", credential: "c", shared_secret: false },
      msrp_relay_ws_url: null,
      msrp_relay_uri: null,
      trusted_certificate: null,
      dtmf: "rfc4733",
      call_waiting: true,
    });
    expect(toSettings({ ...f, callWaiting: false })).toMatchObject({ call_waiting: false });
    const rest = { ...f, turnSharedSecret: true };
    expect(toSettings(rest)).toMatchObject({ turn: { credential: "c", shared_secret: true } });
    expect(fromSettings(toSettings(rest)).turnSharedSecret).toBe(true);
    const pinned = { ...f, trustedCertificate: " /home/alice/server.pem " };
    expect(toSettings(pinned)).toMatchObject({ trusted_certificate: "/home/alice/server.pem" });
    expect(fromSettings(toSettings(pinned)).trustedCertificate).toBe("/home/alice/server.pem");
    expect(fromSettings(toSettings(f))).toEqual({ ...f, wsUrl: "ws://127.0.0.1:8080/ws", address: "sip:alice@lyrebird.test", password: "" });
  });

  it("builds XMPP settings, allowing PLAIN only over TLS or loopback", () => {
    const f = { ...emptyFields("xmpp"), wsUrl: "ws://127.0.0.1:5280/xmpp-websocket", address: "alice@lyrebird.test", password: "p" };
    expect(toSettings(f)).toMatchObject({ kind: "xmpp", jid: "alice@lyrebird.test", allow_plain: true, trusted_certificate: null });
    expect(toSettings({ ...f, trustedCertificate: "/srv/xmpp.pem" })).toMatchObject({ trusted_certificate: "/srv/xmpp.pem" });
    expect(toSettings({ ...f, wsUrl: "ws://chat.example.com/ws" })).toMatchObject({ allow_plain: false });
    expect(toSettings({ ...f, wsUrl: "example.com" })).toMatchObject({
      ws_url: "wss://example.com/xmpp-websocket",
      allow_plain: true,
    });
    expect(xmppWsUrl("wss://x/y")).toBe("wss://x/y");
  });

  it("says what is missing or wrong", () => {
    const f = { ...emptyFields("sip"), wsUrl: "ws://h/ws", address: "alice@h", password: "p" };
    expect(validate({ ...f, wsUrl: "" })).toMatch(/WebSocket URL/);
    expect(validate({ ...f, wsUrl: "http://h" })).toMatch(/ws:\/\/ or wss:\/\//);
    expect(validate({ ...f, address: "alice" })).toMatch(/SIP address/);
    expect(validate({ ...f, password: "" })).toMatch(/password/);
    expect(validate({ ...f, turnUrl: "stun:x" })).toMatch(/TURN/);
    expect(validate({ ...f, turnUrl: "turns:x:443" })).toMatch(/transport=tcp/);
    expect(validate({ ...f, turnUrl: "turn:x:443?transport=tcp" })).toBeNull();
    expect(validate({ ...f, msrpRelayWsUrl: "tcp://x" })).toMatch(/MSRP relay/);
    expect(validate({ ...f, kind: "xmpp", address: "alice@h/res" })).toMatch(/JID/);
  });
});
