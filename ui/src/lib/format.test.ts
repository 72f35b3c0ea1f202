import { describe, expect, it } from "vitest";
import { checkWords, errorWords, formatBytes, formatDuration, formatEta, formatRate } from "./format";

describe("formatting", () => {
  it("formats sizes and rates", () => {
    expect(formatBytes(0)).toBe("0 B");
    expect(formatBytes(1536)).toBe("1.5 KB");
    expect(formatBytes(25 * 1024 * 1024)).toBe("25 MB");
    expect(formatRate(1_258_291)).toBe("1.2 MB/s");
    expect(formatRate(0)).toBe("");
  });

  it("formats time left", () => {
    expect(formatEta(null)).toBe("");
    expect(formatEta(3000)).toBe("a few seconds left");
    expect(formatEta(42_000)).toBe("42 s left");
    expect(formatEta(185_000)).toBe("3 min left");
    expect(formatEta(3_900_000)).toBe("1 h 5 min left");
    expect(formatEta(7_200_000)).toBe("2 h left");
  });

  it("formats call timers", () => {
    expect(formatDuration(0)).toBe("0:00");
    expect(formatDuration(65_400)).toBe("1:05");
    expect(formatDuration(3_725_000)).toBe("1:02:05");
    expect(formatDuration(-5)).toBe("0:00");
  });
});

describe("errors in words", () => {
  it("says what each engine error means", () => {
    expect(errorWords({ kind: "invalid_config", detail: "`x` is not a ws:// or wss:// URL" })).toBe(
      "That doesn't look right: `x` is not a ws:// or wss:// URL.",
    );
    expect(errorWords({ kind: "unknown_call", detail: 4 })).toBe("That call has already ended.");
    expect(errorWords({ kind: "media", detail: "no input device" })).toBe("Audio problem: no input device.");
    expect(errorWords({ kind: "too_long", detail: "the message is 300 kB long and a text message can be at most 32 kB; send it as a file instead" })).toBe(
      "Not sent: the message is 300 kB long and a text message can be at most 32 kB; send it as a file instead.",
    );
    expect(errorWords({ kind: "stopped" })).toBe("Lyrebird's engine has stopped. Please restart the app.");
    expect(errorWords("command start_call not found")).toBe("Something went wrong: command start_call not found.");
    expect(errorWords(new Error("boom"))).toBe("Something went wrong: boom.");
    expect(errorWords(undefined)).toBe("Something went wrong.");
  });

  it("says which stage of a connection test failed", () => {
    expect(checkWords({ ok: true, stage: "register", detail: "", elapsed_ms: 84 })).toBe(
      "Connection works: signed in (84 ms).",
    );
    expect(checkWords({ ok: false, stage: "connect", detail: "connection refused", elapsed_ms: 3 })).toBe(
      "Could not connect to the server: connection refused",
    );
    expect(checkWords({ ok: false, stage: "authenticate", detail: "", elapsed_ms: 3 })).toBe(
      "The server refused the user name or password.",
    );
    expect(checkWords({ ok: false, stage: "settings", detail: "`x` is not a ws:// URL", elapsed_ms: 0 })).toBe(
      "The settings are not right: `x` is not a ws:// URL",
    );
    expect(checkWords({ ok: false, stage: "tls", detail: "unknown issuer", elapsed_ms: 3 })).toBe(
      "The secure connection failed (certificate): unknown issuer",
    );
  });
});
