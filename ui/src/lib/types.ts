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
  EngineEvent,
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

/** u64 fields may be generated as `bigint` or `number`; serde_json always sends numbers. */
export type Num = number | bigint;

export function num(value: Num | null | undefined): number {
  if (value === null || value === undefined) return 0;
  return typeof value === "bigint" ? Number(value) : value;
}
