// The account form's fields → the engine's AccountSettings, with checks a person can act on.
import type { AccountSettings } from "./types";
import type { DtmfMethod } from "../bindings/DtmfMethod";
import { isLoopbackUrl, sipAor } from "./address";

export interface AccountFields {
  kind: "sip" | "xmpp";
  wsUrl: string;
  address: string;
  password: string;
  displayName: string;
  authUsername: string;
  outboundProxy: string;
  turnUrl: string;
  turnUsername: string;
  turnCredential: string;
  /** The TURN password is a secret shared with the server (time-limited credentials). */
  turnSharedSecret: boolean;
  msrpRelayWsUrl: string;
  msrpRelayUri: string;
  /** How key presses are sent in calls. */
  dtmf: DtmfMethod;
  /** A second call rings during a call; off, its caller hears busy. */
  callWaiting: boolean;
  /** A PEM file: the one certificate this account's server may present besides the ones the
   * system trusts (a server with its own, self-signed certificate). */
  trustedCertificate: string;
}

export function emptyFields(kind: "sip" | "xmpp" = "sip"): AccountFields {
  return {
    kind,
    wsUrl: "",
    address: "",
    password: "",
    displayName: "",
    authUsername: "",
    outboundProxy: "",
    turnUrl: "",
    turnUsername: "",
    turnCredential: "",
    turnSharedSecret: false,
    msrpRelayWsUrl: "",
    msrpRelayUri: "",
    dtmf: "rfc4733",
    callWaiting: true,
    trustedCertificate: "",
  };
}

function opt(value: string): string | null {
  const v = value.trim();
  return v === "" ? null : v;
}

/** An XMPP "WebSocket URL or domain": a bare domain becomes its usual endpoint
 * (wss://domain/xmpp-websocket, the path Prosody and ejabberd use). */
export function xmppWsUrl(input: string): string {
  const v = input.trim();
  if (v === "" || /^wss?:\/\//i.test(v)) return v;
  return `wss://${v.replace(/\/+$/, "")}/xmpp-websocket`;
}

/** What is wrong with the fields, in words, or null when they can be saved. */
export function validate(f: AccountFields): string | null {
  const url = f.kind === "xmpp" ? xmppWsUrl(f.wsUrl) : f.wsUrl.trim();
  if (url === "") return "Enter the server's WebSocket URL (ws:// or wss://).";
  if (!/^wss?:\/\/[^\s/]+/i.test(url)) return "The server URL must start with ws:// or wss://.";
  const address = f.address.trim();
  if (f.kind === "sip") {
    if (!/^(sips?:)?[^@\s:]+@[^@\s]+$/i.test(address)) return "Enter your SIP address, like alice@example.com.";
  } else if (!/^[^@\s/]+@[^@\s/]+$/.test(address)) {
    return "Enter your XMPP address (JID), like alice@example.com.";
  }
  if (f.password === "") return "Enter the password.";
  if (f.kind === "sip") {
    if (/^turns:/i.test(f.turnUrl.trim())) {
      return "TURN over TLS (turns:) is not supported yet: use turn:host:port?transport=tcp, or UDP.";
    }
    if (f.turnUrl.trim() !== "" && !/^turn:/i.test(f.turnUrl.trim())) {
      return "The TURN server must be a turn: URL.";
    }
    const relayWs = f.msrpRelayWsUrl.trim();
    if (relayWs !== "" && !/^wss?:\/\//i.test(relayWs)) return "The MSRP relay URL must start with ws:// or wss://.";
  }
  return null;
}

/** The settings the engine stores (the password travels separately). */
export function toSettings(f: AccountFields): AccountSettings {
  if (f.kind === "xmpp") {
    const url = xmppWsUrl(f.wsUrl);
    return {
      kind: "xmpp",
      ws_url: url,
      jid: f.address.trim(),
      resource: null,
      // PLAIN only where the password cannot be read on the way: TLS, or this machine.
      allow_plain: /^wss:/i.test(url) || isLoopbackUrl(url),
      trusted_certificate: opt(f.trustedCertificate),
    };
  }
  const turnUrl = opt(f.turnUrl);
  return {
    kind: "sip",
    ws_url: f.wsUrl.trim(),
    aor: sipAor(f.address),
    display_name: opt(f.displayName),
    auth_username: opt(f.authUsername),
    outbound_proxy: opt(f.outboundProxy),
    turn: turnUrl
      ? {
          url: turnUrl,
          username: opt(f.turnUsername),
          credential: opt(f.turnCredential),
          shared_secret: f.turnSharedSecret,
        }
      : null,
    msrp_relay_ws_url: opt(f.msrpRelayWsUrl),
    msrp_relay_uri: opt(f.msrpRelayUri),
    trusted_certificate: opt(f.trustedCertificate),
    dtmf: f.dtmf,
    call_waiting: f.callWaiting,
  };
}

/** The fields for re-entering a saved account's password (everything else as saved). */
export function fromSettings(s: AccountSettings): AccountFields {
  if (s.kind === "xmpp") {
    return {
      ...emptyFields("xmpp"),
      wsUrl: s.ws_url,
      address: s.jid,
      trustedCertificate: s.trusted_certificate ?? "",
    };
  }
  return {
    ...emptyFields("sip"),
    wsUrl: s.ws_url,
    address: s.aor,
    displayName: s.display_name ?? "",
    authUsername: s.auth_username ?? "",
    outboundProxy: s.outbound_proxy ?? "",
    turnUrl: s.turn?.url ?? "",
    turnUsername: s.turn?.username ?? "",
    turnCredential: s.turn?.credential ?? "",
    turnSharedSecret: s.turn?.shared_secret ?? false,
    msrpRelayWsUrl: s.msrp_relay_ws_url ?? "",
    msrpRelayUri: s.msrp_relay_uri ?? "",
    dtmf: s.dtmf,
    callWaiting: s.call_waiting,
    trustedCertificate: s.trusted_certificate ?? "",
  };
}
