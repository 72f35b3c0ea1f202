// The app's state and the pure functions that fold engine events and command results into it.
//
// The state is one flat object made of slices (accounts, presence, conversations, calls,
// transfers, toasts), each with its own file, its own reducer and its own tests; this root
// composes them. Every function takes the previous state (and the current time when it
// matters) and returns a new state object; nothing is mutated, nothing reads a clock, nothing
// calls the shell. The Svelte store (store.svelte.ts) holds the current value and calls these.
import type { Bootstrap, EngineEvent } from "../types";
import { accountsFromBootstrap, emptyAccounts, forgetAccount, reduceAccounts, type AccountsState } from "./accounts";
import { callsFromBootstrap, emptyCalls, reduceCalls, type CallsState } from "./calls";
import type { Fold, Notice } from "./common";
import { partyOf } from "../party";
import {
  conversationsFromBootstrap,
  emptyConversations,
  forgetAccountRooms,
  reduceConversations,
  type ConversationsState,
} from "./conversations";
import { contactsFromBootstrap, emptyPresence, forgetAccountContacts, reducePresence, type PresenceState } from "./presence";
import { addToast, emptyToasts, type ToastsState } from "./toasts";
import { emptyTransfers, reduceTransfers, transfersFromBootstrap, type TransfersState } from "./transfers";

export * from "./accounts";
export * from "./calls";
export * from "./common";
export * from "./conversations";
export * from "./presence";
export * from "./toasts";
export * from "./transfers";
export { errorWords } from "../format";

export type AppState = { booted: boolean } & AccountsState &
  PresenceState &
  ConversationsState &
  CallsState &
  TransfersState &
  ToastsState;

export function emptyState(): AppState {
  return {
    booted: false,
    ...emptyAccounts(),
    ...emptyPresence(),
    ...emptyConversations(),
    ...emptyCalls(),
    ...emptyTransfers(),
    ...emptyToasts(),
  };
}

/** Everything the shell read from the store at start, before any network traffic. */
export function applyBootstrap(state: AppState, boot: Bootstrap): AppState {
  let s = accountsFromBootstrap(state, boot);
  s = contactsFromBootstrap(s, boot);
  s = conversationsFromBootstrap(s, boot);
  s = callsFromBootstrap(s, boot);
  s = transfersFromBootstrap(s, boot);
  return { ...s, booted: true };
}

/** An account the person removed, with everything that only made sense through it. */
export function removeAccount(state: AppState, account: number): AppState {
  return forgetAccountRooms(forgetAccountContacts(forgetAccount(state, account), account), account);
}

type Slice<T> = (state: T, ev: EngineEvent, fold: Fold) => T;

/** Each slice sees every event and changes only its own fields. */
const SLICES: Slice<AppState>[] = [
  reduceAccounts,
  reducePresence,
  reduceConversations,
  reduceCalls,
  reduceTransfers,
];

/** Folds one engine event into the state. `now` is the local time in ms since the epoch. */
export function applyEvent(state: AppState, ev: EngineEvent, now: number): AppState {
  const notices: Notice[] = [];
  const fold: Fold = {
    now,
    say: (text, level = "error") => {
      notices.push({ text, level });
    },
    // Names as the person knew them when the event came (before it changed any contact).
    nameOf: (address, displayName = null) => partyOf(state, address, displayName).name,
  };
  let s = state;
  for (const reduce of SLICES) s = reduce(s, ev, fold);
  for (const n of notices) s = addToast(s, n.text, now, n.level);
  return s;
}

/** Folds many events (tests, replays). */
export function applyEvents(state: AppState, events: EngineEvent[], now: number): AppState {
  return events.reduce((s, ev) => applyEvent(s, ev, now), state);
}
