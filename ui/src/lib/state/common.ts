// What every slice of the state shares: the keys its records are filed under, and the way a
// reducer asks for something to be said to the person (the root turns that into a toast).
import { num } from "../types";

export type AccountKindWord = "sip" | "xmpp";

export function convKey(account: number | bigint, peer: string): string {
  return `${num(account)}|${peer}`;
}

export function contactKey(account: number | bigint, address: string): string {
  return `${num(account)}|${address}`;
}

export function idKey(id: number | bigint): string {
  return String(id);
}

export type NoticeLevel = "error" | "info";

export interface Notice {
  text: string;
  level: NoticeLevel;
}

/** Something a slice wants the person told about an event it folded. Slices do not own the
 * toasts: they call `say`, and the root reducer adds what was said once the event is folded,
 * so each slice stays a function of its own fields. */
export type Say = (text: string, level?: NoticeLevel) => void;

/** What a slice's reducer gets besides its state and the event: the means to speak, and the
 * name the person knows a party by (which only the presence slice knows). */
export interface Fold {
  now: number;
  say: Say;
  nameOf: (address: string, displayName?: string | null) => string;
}
