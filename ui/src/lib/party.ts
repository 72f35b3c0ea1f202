// How a party (a caller, a chat peer, a file's sender) is shown: by the name the person knows
// them by, never as a raw URI when a better name is at hand.
import { bareAddress, shortName } from "./address";
import { contactName, type PresenceState } from "./state/presence";

export interface Party {
  /** What to call them: the contact's name, else the name they sent, else the user part. */
  name: string;
  /** Their address without scheme or parameters (`bob@example.com`), for a second line. */
  address: string;
  /** One or two letters for the avatar. */
  initials: string;
  /** One of `AVATAR_HUES` colours, the same for the same address every time. */
  hue: number;
}

/** How many avatar colours the stylesheet defines (`.hue-0` … `.hue-7`). */
export const AVATAR_HUES = 8;

export function partyOf(
  state: Pick<PresenceState, "contacts">,
  address: string,
  displayName: string | null = null,
): Party {
  const bare = bareAddress(address);
  const sent = displayName?.trim() ?? "";
  const name = contactName(state, address) ?? (sent !== "" ? sent : shortName(address) || address);
  return { name, address: bare || address, initials: initialsOf(name), hue: hueOf(bare) };
}

/** `Bob Baker` → `BB`, `bob` → `B`, `Émile` → `É`, `+1 555 0100` → `1`, `<b>Zoe</b>` → `Z`. */
export function initialsOf(name: string): string {
  // Angle-bracketed parts (an address, or markup someone put in their name) are not the name.
  const plain = name.replace(/<[^>]*>/g, " ");
  const words = plain.split(/[^\p{L}\p{N}]+/u).filter((w) => w !== "");
  const first = words[0];
  if (first === undefined) return "?";
  const last = words.length > 1 ? words[words.length - 1] : undefined;
  const letter = (w: string): string => Array.from(w)[0] ?? "";
  // Two letters only for names that read as words: "Bob Baker", not "1000 2000".
  const second = last !== undefined && /^\p{L}/u.test(last) ? letter(last) : "";
  return (letter(first) + second).toUpperCase();
}

function hueOf(key: string): number {
  let h = 0;
  for (const ch of key) h = (h * 31 + (ch.codePointAt(0) ?? 0)) >>> 0;
  return h % AVATAR_HUES;
}
