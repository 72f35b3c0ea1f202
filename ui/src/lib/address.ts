// Addresses as people type them and as the protocols spell them.

/** `sip:bob@example.com;transport=ws` → `bob@example.com`; `Bob <sip:bob@x>` → `bob@x`;
 * `bob@x/phone` → `bob@x`. Lower-cased: used to merge a person's SIP and XMPP entries. */
export function bareAddress(address: string): string {
  let a = address.trim();
  const angle = /<([^>]*)>/.exec(a);
  if (angle?.[1] !== undefined) a = angle[1];
  a = a.replace(/^(sips?|xmpp|tel):/i, "");
  const cut = a.search(/[;?>]/);
  if (cut >= 0) a = a.slice(0, cut);
  const slash = a.indexOf("/");
  if (slash >= 0) a = a.slice(0, slash);
  return a.toLowerCase();
}

/** The bare JID of a full JID (`user@domain/resource` → `user@domain`). */
export function bareJid(jid: string): string {
  const slash = jid.indexOf("/");
  return slash >= 0 ? jid.slice(0, slash) : jid;
}

/** The resource of a full JID, or "" for a bare one. */
export function jidResource(jid: string): string {
  const slash = jid.indexOf("/");
  return slash >= 0 ? jid.slice(slash + 1) : "";
}

/** The domain of a SIP address of record or a JID. */
export function domainOf(address: string): string {
  const bare = bareAddress(address);
  const at = bare.lastIndexOf("@");
  return at >= 0 ? bare.slice(at + 1) : bare;
}

/** What a person typed into the dialpad, as a SIP URI on `accountAor`'s domain:
 * `1000` → `sip:1000@example.com`, `bob@x` → `sip:bob@x`, `sip:…`/`tel:…` unchanged.
 * Visual separators in phone numbers are dropped (RFC 3966 §5.1.1). */
export function dialTarget(input: string, accountAor: string): string {
  const typed = input.trim();
  if (typed === "") return "";
  if (/^(sips?|tel):/i.test(typed)) return typed;
  if (typed.includes("@")) return `sip:${typed}`;
  const user = /^[+\d\s().-]+$/.test(typed) ? typed.replace(/[\s().-]/g, "") : typed;
  return `sip:${user}@${domainOf(accountAor)}`;
}

/** A SIP address of record with its scheme: `alice@x` → `sip:alice@x`. */
export function sipAor(input: string): string {
  const a = input.trim();
  if (a === "") return "";
  return /^sips?:/i.test(a) ? a : `sip:${a}`;
}

/** Whether a WebSocket URL points at this machine (a test bed or the demo). */
export function isLoopbackUrl(url: string): boolean {
  const m = /^wss?:\/\/(\[[^\]]+\]|[^/:?#]+)/i.exec(url.trim());
  if (!m?.[1]) return false;
  const host = m[1].toLowerCase();
  return host === "localhost" || host === "[::1]" || host.startsWith("127.");
}

/** A short human name for an address: the user part, or the whole thing. */
export function shortName(address: string): string {
  const bare = bareAddress(address);
  const at = bare.indexOf("@");
  return at > 0 ? bare.slice(0, at) : bare;
}
