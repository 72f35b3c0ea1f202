// Toasts: what is said to the person, and for how long.
import { describe, expect, it } from "vitest";
import * as S from ".";
import { T0 } from "../fixtures";

describe("toasts", () => {
  it("shows the same words once, keeps the newest few, and expires them", () => {
    let s = S.emptyState();
    s = S.addToast(s, "one", T0);
    s = S.addToast(s, "one", T0 + 10);
    expect(s.toasts.length).toBe(1);
    for (const w of ["two", "three", "four", "five"]) s = S.addToast(s, w, T0 + 20);
    expect(s.toasts.map((t) => t.text)).toEqual(["two", "three", "four", "five"]);
    s = S.dismissToast(s, s.toasts[0]!.id);
    expect(s.toasts.length).toBe(3);
    // Errors wait for the person to dismiss them.
    expect(S.expireToasts(s, T0 + 20 + S.TOAST_LIFETIME_MS).toasts.length).toBe(3);
  });

  it("lets information go by itself after a few seconds, and keeps errors", () => {
    let s = S.addToast(S.emptyState(), "Asked bob@localhost to share presence.", T0, "info");
    s = S.addToast(s, "Can't reach the server.", T0 + 1000, "error");
    s = S.addToast(s, "Saved.", T0 + 2000, "info");
    expect(S.nextToastExpiry(s)).toBe(T0 + S.TOAST_LIFETIME_MS);
    s = S.expireToasts(s, T0 + S.TOAST_LIFETIME_MS);
    expect(s.toasts.map((t) => t.text)).toEqual(["Can't reach the server.", "Saved."]);
    expect(S.nextToastExpiry(s)).toBe(T0 + 2000 + S.TOAST_LIFETIME_MS);
    s = S.expireToasts(s, T0 + 60 * 60_000);
    expect(s.toasts.map((t) => t.text)).toEqual(["Can't reach the server."]);
    expect(S.nextToastExpiry(s)).toBeNull();
  });

  it("turns command failures into words", () => {
    const s = S.addErrorToast(S.emptyState(), { kind: "transport", detail: "connection refused" }, T0);
    expect(s.toasts[0]?.text).toBe("Can't reach the server: connection refused.");
  });

  it("ignores engine warnings except the keyring one", () => {
    let s = S.applyEvent(S.emptyState(), { event: "warning", account: 1, detail: "bad SDP line ignored" }, T0);
    expect(s.toasts).toEqual([]);
    s = S.applyEvent(s, { event: "warning", account: null, detail: "no keyring: the password is kept in memory" }, T0);
    expect(s.toasts[0]?.level).toBe("info");
  });
});
