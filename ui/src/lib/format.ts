// Numbers, durations and errors as words for a person.
import type { AccountCheck, EngineError } from "./types";
import { num } from "./types";

const UNITS = ["B", "KB", "MB", "GB", "TB"];

/** 1536 → "1.5 KB" (powers of 1024, one decimal below 10, none above). */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 0) return "–";
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  if (unit === 0) return `${Math.round(value)} B`;
  return `${value < 10 ? value.toFixed(1) : Math.round(value).toString()} ${UNITS[unit]}`;
}

/** Bytes per second → "1.2 MB/s"; nothing known → "". */
export function formatRate(bytesPerSecond: number): string {
  if (!Number.isFinite(bytesPerSecond) || bytesPerSecond <= 0) return "";
  return `${formatBytes(bytesPerSecond)}/s`;
}

/** Time left → "a few seconds left", "42 s left", "3 min left", "1 h 5 min left". */
export function formatEta(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms) || ms < 0) return "";
  const s = Math.ceil(ms / 1000);
  if (s < 5) return "a few seconds left";
  if (s < 60) return `${s} s left`;
  const min = Math.round(s / 60);
  if (min < 60) return `${min} min left`;
  const h = Math.floor(min / 60);
  const rest = min % 60;
  return rest === 0 ? `${h} h left` : `${h} h ${rest} min left`;
}

/** A call timer: 65_000 → "1:05", 3_725_000 → "1:02:05". */
export function formatDuration(ms: number): string {
  const total = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const ss = s.toString().padStart(2, "0");
  if (h > 0) return `${h}:${m.toString().padStart(2, "0")}:${ss}`;
  return `${m}:${ss}`;
}

/** A timestamp in a list: the time today, else the date. */
export function formatWhen(ms: number | null | undefined, now: number = Date.now()): string {
  if (ms === null || ms === undefined) return "";
  const d = new Date(ms);
  const today = new Date(now);
  const sameDay =
    d.getFullYear() === today.getFullYear() &&
    d.getMonth() === today.getMonth() &&
    d.getDate() === today.getDate();
  return sameDay
    ? d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" })
    : d.toLocaleDateString(undefined, { month: "short", day: "numeric" });
}

function isEngineError(value: unknown): value is EngineError {
  return (
    typeof value === "object" &&
    value !== null &&
    "kind" in value &&
    typeof (value as { kind: unknown }).kind === "string"
  );
}

/** Any command failure (a typed `EngineError`, or the shell's own string) as a sentence. */
export function errorWords(error: unknown): string {
  if (isEngineError(error)) {
    const detail =
      "detail" in error && error.detail !== undefined && error.detail !== null
        ? String(error.detail)
        : "";
    switch (error.kind) {
      case "invalid_config":
        return `That doesn't look right: ${detail}.`;
      case "unknown_account":
        return "That account no longer exists.";
      case "unknown_call":
        return "That call has already ended.";
      case "invalid_state":
        return `Not possible right now: ${detail}.`;
      case "transport":
        return `Can't reach the server: ${detail}.`;
      case "untrusted":
        return detail;
      case "too_long":
        return `Not sent: ${detail}.`;
      case "sip":
        return `The call server refused: ${detail}.`;
      case "media":
        return `Audio problem: ${detail}.`;
      case "history":
        return `Couldn't read or save history: ${detail}.`;
      case "xmpp":
        return `The chat server refused: ${detail}.`;
      case "keyring":
        return `The system keyring is not available: ${detail}.`;
      case "stopped":
        return "Lyrebird's engine has stopped. Please restart the app.";
      default:
        return `Something went wrong: ${detail || String((error as { kind: string }).kind)}.`;
    }
  }
  if (error instanceof Error) return `Something went wrong: ${error.message}.`;
  if (typeof error === "string" && error !== "") return `Something went wrong: ${error}.`;
  return "Something went wrong.";
}

const STAGE_WORDS: Record<string, string> = {
  settings: "The settings are not right",
  connect: "Could not connect to the server",
  tls: "The secure connection failed (certificate)",
  authenticate: "The server refused the user name or password",
  register: "The server refused the registration",
};

/** The "Test connection" result as one sentence that says what failed. */
export function checkWords(check: AccountCheck): string {
  const took = `${num(check.elapsed_ms)} ms`;
  if (check.ok) return `Connection works: signed in (${took}).`;
  const what = STAGE_WORDS[check.stage] ?? `Failed at "${check.stage}"`;
  return check.detail ? `${what}: ${check.detail}` : `${what}.`;
}
