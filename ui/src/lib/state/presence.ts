// The presence slice: every account's contacts (saved SIP contacts and the XMPP roster), each
// XMPP resource's presence and whether it can take a call, and the subscription requests
// waiting for an answer.
import type { Bootstrap, ContactEntry, EngineEvent, RosterContact } from "../types";
import { num } from "../types";
import { bareAddress, bareJid, dialTarget, jidResource, shortName } from "../address";
import { accountLostTouch, type AccountsState } from "./accounts";
import { contactKey, idKey, type AccountKindWord, type Fold } from "./common";

/** The disco#info features a device needs to take an audio call we can place: Jingle RTP audio
 * over ICE-UDP with DTLS-SRTP (XEP-0166/0167/0176/0320). Without DTLS a WebRTC engine cannot
 * talk to it (the engine's `can_take_call` asks the same). */
export const AUDIO_CALL_FEATURES = [
  "urn:xmpp:jingle:1",
  "urn:xmpp:jingle:apps:rtp:1",
  "urn:xmpp:jingle:apps:rtp:audio",
  "urn:xmpp:jingle:transports:ice-udp:1",
  "urn:xmpp:jingle:apps:dtls:0",
] as const;

export interface ContactEndpoint {
  account: number;
  kind: AccountKindWord;
  address: string;
  name: string | null;
  subscription: string | null;
  pendingOut: boolean;
  groups: string[];
}

export interface ResourceView {
  show: string | null;
  status: string | null;
  priority: number;
}

/** `data-presence` of a contact item. */
export type PresenceWord = "available" | "away" | "dnd" | "offline" | "unknown";

export interface PersonView {
  /** The merged identity (`user@domain`), also the list key. */
  key: string;
  name: string;
  endpoints: ContactEndpoint[];
  presence: PresenceWord;
  statusText: string | null;
}

export interface SubscriptionRequestView {
  account: number;
  from: string;
}

export interface PresenceState {
  contacts: Record<string, ContactEndpoint>;
  /** `account|bareJid` → resource → presence. */
  presence: Record<string, Record<string, ResourceView>>;
  /** `account|bareJid` → resource → whether that device can take an audio call, as its
   * `peer_features` said. Kept while the device is away (only an available one counts): the
   * engine asks what a client can do once per client version (XEP-0115 caps), so a device
   * that comes back is not described again. */
  callDevices: Record<string, Record<string, boolean>>;
  subscriptionRequests: SubscriptionRequestView[];
}

export function emptyPresence(): PresenceState {
  return { contacts: {}, presence: {}, callDevices: {}, subscriptionRequests: [] };
}

function contactFromEntry(entry: ContactEntry): ContactEndpoint {
  return {
    account: num(entry.account),
    kind: entry.kind,
    address: entry.address,
    name: entry.display_name ?? null,
    subscription: entry.subscription ?? null,
    pendingOut: false,
    groups: [...entry.groups],
  };
}

export function contactsFromBootstrap<S extends PresenceState>(state: S, boot: Bootstrap): S {
  const contacts: Record<string, ContactEndpoint> = { ...state.contacts };
  for (const entry of boot.contacts) {
    const c = contactFromEntry(entry);
    contacts[contactKey(c.account, c.address)] = c;
  }
  return { ...state, contacts };
}

/** An account's presence is no longer known (it went offline). */
export function clearPresenceOf<S extends PresenceState>(state: S, account: number): S {
  const prefix = `${account}|`;
  const keys = Object.keys(state.presence).filter((k) => k.startsWith(prefix));
  if (keys.length === 0) return state;
  const presence = { ...state.presence };
  for (const k of keys) delete presence[k];
  return { ...state, presence };
}

/** An account was removed: its contacts, presence and requests go with it. */
export function forgetAccountContacts<S extends PresenceState>(state: S, account: number): S {
  const prefix = `${account}|`;
  return {
    ...state,
    contacts: Object.fromEntries(Object.entries(state.contacts).filter(([, c]) => c.account !== account)),
    presence: Object.fromEntries(Object.entries(state.presence).filter(([k]) => !k.startsWith(prefix))),
    callDevices: Object.fromEntries(Object.entries(state.callDevices).filter(([k]) => !k.startsWith(prefix))),
    subscriptionRequests: state.subscriptionRequests.filter((r) => r.account !== account),
  };
}

export function dismissSubscription<S extends PresenceState>(state: S, account: number, from: string): S {
  return {
    ...state,
    subscriptionRequests: state.subscriptionRequests.filter((r) => !(r.account === account && r.from === from)),
  };
}

function rankOf(show: string | null): number {
  switch (show) {
    case null:
    case "chat":
      return 4;
    case "away":
      return 3;
    case "xa":
      return 2;
    case "dnd":
      return 1;
    default:
      return 3;
  }
}

/** The resource that speaks for the contact: highest priority, then most available
 * (RFC 6121 §8.5.2.1.1 routes to the highest priority). */
export function bestResource(resources: Record<string, ResourceView>): ResourceView | null {
  let best: ResourceView | null = null;
  for (const r of Object.values(resources)) {
    if (
      best === null ||
      r.priority > best.priority ||
      (r.priority === best.priority && rankOf(r.show) > rankOf(best.show))
    ) {
      best = r;
    }
  }
  return best;
}

function presenceWordOf(r: ResourceView): PresenceWord {
  switch (r.show) {
    case "away":
    case "xa":
      return "away";
    case "dnd":
      return "dnd";
    default:
      return "available";
  }
}

type WithAccounts = PresenceState & Pick<AccountsState, "accounts">;

/** One endpoint's presence: SIP has none here; an XMPP contact is offline only when its
 * account is online and we are subscribed to it. */
export function endpointPresence(
  state: WithAccounts,
  e: ContactEndpoint,
): { word: PresenceWord; status: string | null } {
  if (e.kind !== "xmpp") return { word: "unknown", status: null };
  const resources = state.presence[contactKey(e.account, bareJid(e.address))];
  const best = resources ? bestResource(resources) : null;
  if (best) return { word: presenceWordOf(best), status: best.status };
  const account = state.accounts[idKey(e.account)];
  const subscribed = e.subscription === "to" || e.subscription === "both";
  if (account?.status === "online" && subscribed) return { word: "offline", status: null };
  return { word: "unknown", status: null };
}

/** Whether the contact `jid` (bare) on `account` can take an audio call now: one of its
 * available devices said it can. */
export function canTakeCall(
  state: Pick<PresenceState, "presence" | "callDevices">,
  account: number,
  jid: string,
): boolean {
  const key = contactKey(account, bareJid(jid));
  const devices = state.callDevices[key];
  const available = state.presence[key];
  if (!devices || !available) return false;
  return Object.keys(available).some((resource) => devices[resource] === true);
}

const PRESENCE_ORDER: Record<PresenceWord, number> = {
  available: 5,
  away: 4,
  dnd: 3,
  offline: 1,
  unknown: 2,
};

/** One list of people from every account's contacts: a SIP and an XMPP entry with the same
 * `user@domain` are one person. Filtered by `query` (name or address), most available first. */
export function mergedContacts(state: WithAccounts, query = ""): PersonView[] {
  const people = new Map<string, PersonView>();
  for (const e of Object.values(state.contacts)) {
    const key = bareAddress(e.address);
    const p = endpointPresence(state, e);
    const existing = people.get(key);
    if (!existing) {
      people.set(key, {
        key,
        name: e.name ?? shortName(e.address),
        endpoints: [e],
        presence: p.word,
        statusText: p.status,
      });
      continue;
    }
    existing.endpoints.push(e);
    if (e.name && existing.name === shortName(existing.endpoints[0]?.address ?? "")) {
      existing.name = e.name;
    }
    if (PRESENCE_ORDER[p.word] > PRESENCE_ORDER[existing.presence]) {
      existing.presence = p.word;
      existing.statusText = p.status;
    }
  }
  const q = query.trim().toLowerCase();
  const list = [...people.values()].filter(
    (p) =>
      q === "" ||
      p.name.toLowerCase().includes(q) ||
      p.endpoints.some((e) => e.address.toLowerCase().includes(q)),
  );
  for (const p of list) p.endpoints.sort((a, b) => (a.kind === b.kind ? 0 : a.kind === "sip" ? -1 : 1));
  return list.sort(
    (a, b) =>
      PRESENCE_ORDER[b.presence] - PRESENCE_ORDER[a.presence] ||
      a.name.localeCompare(b.name) ||
      a.key.localeCompare(b.key),
  );
}

/** What a person's call button calls, from which account. */
export interface CallTarget {
  account: number;
  kind: AccountKindWord;
  /** A SIP URI, or a bare JID. */
  target: string;
}

/** How to call a person: their SIP address if they have one; else their XMPP address when one
 * of its devices can take a call; else their `user@domain` dialled from the first SIP account;
 * else not at all. */
export function callTargetOf(state: WithAccounts, person: PersonView): CallTarget | null {
  const sip = person.endpoints.find((e) => e.kind === "sip");
  if (sip) return { account: sip.account, kind: "sip", target: sip.address };
  const xmpp = person.endpoints.find((e) => e.kind === "xmpp" && canTakeCall(state, e.account, e.address));
  if (xmpp) return { account: xmpp.account, kind: "xmpp", target: bareJid(xmpp.address) };
  const account = Object.values(state.accounts).find((a) => a.kind === "sip");
  return account ? { account: account.id, kind: "sip", target: dialTarget(person.key, account.address) } : null;
}

/** The name a person gave a contact with this address (on any account, SIP or XMPP), or null. */
export function contactName(state: Pick<PresenceState, "contacts">, address: string): string | null {
  const key = bareAddress(address);
  for (const c of Object.values(state.contacts)) {
    if (c.name && bareAddress(c.address) === key) return c.name;
  }
  return null;
}

export function presenceWords(p: PresenceWord): string {
  switch (p) {
    case "available":
      return "Available";
    case "away":
      return "Away";
    case "dnd":
      return "Do not disturb";
    case "offline":
      return "Offline";
    case "unknown":
      return "Presence unknown";
  }
}

/** A roster entry (from the `roster` reply or a `contact` event) as a contact endpoint. */
function xmppContact(
  account: number,
  c: { jid: string; name: string | null; subscription: string; pending_out: boolean; groups: string[] },
): ContactEndpoint {
  return {
    account,
    kind: "xmpp",
    address: c.jid,
    name: c.name ?? null,
    subscription: c.subscription,
    pendingOut: c.pending_out,
    groups: [...c.groups],
  };
}

/** The XMPP roster as the `roster` action returns it, with each resource's presence. */
export function applyRoster<S extends PresenceState>(state: S, account: number, roster: RosterContact[]): S {
  const contacts = { ...state.contacts };
  const presence = { ...state.presence };
  for (const c of roster) {
    const key = contactKey(account, c.jid);
    contacts[key] = xmppContact(account, c);
    const resources: Record<string, ResourceView> = {};
    for (const r of c.resources) {
      resources[r.resource] = { show: r.show ?? null, status: r.status ?? null, priority: r.priority };
    }
    presence[key] = resources;
  }
  return { ...state, contacts, presence };
}

export function reducePresence<S extends PresenceState>(state: S, ev: EngineEvent, fold: Fold): S {
  switch (ev.event) {
    case "account_state":
      return accountLostTouch(ev.state) ? clearPresenceOf(state, num(ev.account)) : state;
    case "contact": {
      const account = num(ev.account);
      const key = contactKey(account, ev.jid);
      return { ...state, contacts: { ...state.contacts, [key]: xmppContact(account, ev) } };
    }
    case "contact_removed": {
      const key = contactKey(ev.account, ev.jid);
      const contacts = { ...state.contacts };
      delete contacts[key];
      const presence = { ...state.presence };
      delete presence[key];
      return { ...state, contacts, presence };
    }
    case "presence": {
      const account = num(ev.account);
      const key = contactKey(account, bareJid(ev.jid));
      const resource = jidResource(ev.jid);
      const resources = { ...(state.presence[key] ?? {}) };
      if (ev.available) {
        resources[resource] = {
          show: ev.show ?? null,
          status: ev.status ?? null,
          priority: resources[resource]?.priority ?? 0,
        };
      } else if (resource === "") {
        // Unavailable from the bare JID: every resource is gone (RFC 6121 §4.5.3).
        for (const r of Object.keys(resources)) delete resources[r];
      } else {
        delete resources[resource];
      }
      return { ...state, presence: { ...state.presence, [key]: resources } };
    }
    case "peer_features": {
      const key = contactKey(ev.account, bareJid(ev.jid));
      const canCall = AUDIO_CALL_FEATURES.every((f) => ev.features.includes(f));
      const devices = { ...(state.callDevices[key] ?? {}), [jidResource(ev.jid)]: canCall };
      return { ...state, callDevices: { ...state.callDevices, [key]: devices } };
    }
    case "subscription_request": {
      const account = num(ev.account);
      if (state.subscriptionRequests.some((r) => r.account === account && r.from === ev.from)) return state;
      return {
        ...state,
        subscriptionRequests: [...state.subscriptionRequests, { account, from: bareJid(ev.from) }],
      };
    }
    case "subscription_changed":
      if (ev.kind === "unsubscribed") fold.say(`${fold.nameOf(ev.from)} no longer shares presence with you.`, "info");
      return state;
    default:
      return state;
  }
}
