// The one place the UI names the generated bindings (ui/src/bindings, written by ts-rs from the
// Rust types; never edited by hand). Everything else imports from here, so a renamed Rust type
// is fixed in one line.
export type {
  AccountCheck,
  AccountSettings,
  AccountState,
  AudioDevices,
  Bootstrap,
  CallRecord,
  CallState,
  ContactEntry,
  ConversationSummary,
  EngineError,
  MediaStats,
  Message as MessageRecord,
  RosterContact,
  SavedAccount,
  SearchHit,
  SipSettings,
  Transfer as StoredTransfer,
  TransferState,
  XmppAction,
  XmppReply,
  XmppSettings,
} from "../bindings";
import type { AccountId, CallId, EngineEvent as GeneratedEngineEvent } from "../bindings";

/** u64 fields may be generated as `bigint` or `number`; serde_json always sends numbers. */
export type Num = number | bigint;

export function num(value: Num | null | undefined): number {
  if (value === null || value === undefined) return 0;
  return typeof value === "bigint" ? Number(value) : value;
}

// ---------------------------------------------------------------- not generated yet
// Call events the engine is about to send, written by hand until ts-rs generates them into
// ../bindings. Same envelope as the generated ones: a JSON object tagged by "event" (serde
// `tag = "event"`, snake_case), ids as numbers. Once the bindings have them, delete this block
// and export `EngineEvent` from the bindings again: the reducers need no change.
export type UngeneratedCallEvent =
  /** The call is being recorded into `path`, or no longer (null). */
  | { event: "call_recording"; account: AccountId; call: CallId; path: string | null }
  /** The calls now mixed together in a local conference (empty: no conference). */
  | { event: "conference"; calls: CallId[] };

/** Everything the engine sends on the "engine" event. */
export type EngineEvent = GeneratedEngineEvent | UngeneratedCallEvent;
