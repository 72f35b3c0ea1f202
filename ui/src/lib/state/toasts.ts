// Toasts: short messages at the window's corner. Errors stay until the person dismisses them
// (they usually ask for something to be done, or explain why something did not happen);
// information goes away by itself after a few seconds.
import { errorWords } from "../format";
import type { NoticeLevel } from "./common";

export interface Toast {
  id: number;
  text: string;
  level: NoticeLevel;
  at: number;
}

export interface ToastsState {
  toasts: Toast[];
  nextToast: number;
}

/** Information toasts disappear this long after they were (last) shown. */
export const TOAST_LIFETIME_MS = 5_000;
const MAX_TOASTS = 4;

export function emptyToasts(): ToastsState {
  return { toasts: [], nextToast: 1 };
}

export function addToast<S extends ToastsState>(
  state: S,
  text: string,
  now: number,
  level: NoticeLevel = "error",
): S {
  const last = state.toasts[state.toasts.length - 1];
  // The same words twice in a row (a reconnect loop) are shown once.
  if (last && last.text === text) {
    return { ...state, toasts: [...state.toasts.slice(0, -1), { ...last, level, at: now }] };
  }
  const toast: Toast = { id: state.nextToast, text, level, at: now };
  return {
    ...state,
    toasts: [...state.toasts, toast].slice(-MAX_TOASTS),
    nextToast: state.nextToast + 1,
  };
}

export function addErrorToast<S extends ToastsState>(state: S, error: unknown, now: number): S {
  return addToast(state, errorWords(error), now);
}

export function dismissToast<S extends ToastsState>(state: S, id: number): S {
  return { ...state, toasts: state.toasts.filter((t) => t.id !== id) };
}

/** Drops information toasts older than their lifetime; errors stay. */
export function expireToasts<S extends ToastsState>(state: S, now: number): S {
  const toasts = state.toasts.filter((t) => t.level === "error" || now - t.at < TOAST_LIFETIME_MS);
  return toasts.length === state.toasts.length ? state : { ...state, toasts };
}

/** When the next information toast is due to go (null: none will go by itself). */
export function nextToastExpiry(state: ToastsState): number | null {
  const due = state.toasts.filter((t) => t.level === "info").map((t) => t.at + TOAST_LIFETIME_MS);
  return due.length === 0 ? null : Math.min(...due);
}
