// What to do with a link that opened Lyrebird (the shell's "open-uri" event): sip:/sips:/tel:
// put the number on the dialpad (RFC 3261 §19.1, RFC 3966), xmpp: opens a chat or, with
// ?join, the room form (RFC 5122 §2.5). Nothing is dialled or joined without a click.

export type LinkAction =
  | { kind: "dial"; target: string }
  | { kind: "chat"; jid: string }
  | { kind: "join"; room: string };

export function parseLink(uri: string): LinkAction | null {
  const text = uri.trim();
  const colon = text.indexOf(":");
  if (colon <= 0) return null;
  const scheme = text.slice(0, colon).toLowerCase();
  const rest = text.slice(colon + 1).replace(/^\/\//, "");
  if (rest === "") return null;
  if (scheme === "sip" || scheme === "sips") {
    // Header fields (?subject=…) are not ours to send.
    const target = rest.split("?")[0] ?? "";
    return target ? { kind: "dial", target: `${scheme}:${target}` } : null;
  }
  if (scheme === "tel") {
    const number = (rest.split(";")[0] ?? "").replace(/[\s().-]/g, "");
    return /^\+?[0-9*#]+$/.test(number) ? { kind: "dial", target: number } : null;
  }
  if (scheme === "xmpp") {
    const [path = "", query = ""] = rest.split("?", 2);
    let jid: string;
    try {
      jid = decodeURIComponent(path);
    } catch {
      return null;
    }
    if (!/^[^@\s/]+@[^@\s/]+(\/.*)?$/.test(jid)) return null;
    const bare = jid.split("/")[0] ?? jid;
    const action = query.split(";")[0] ?? "";
    return action === "join" ? { kind: "join", room: bare } : { kind: "chat", jid: bare };
  }
  return null;
}
