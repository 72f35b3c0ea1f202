// The accounts slice: each saved account with its connection state in words, plus what the
// shell told us at start about where things are kept.
import type { AccountSettings, AccountState, Bootstrap, EngineEvent, SavedAccount } from "../types";
import { num } from "../types";
import { idKey, type AccountKindWord, type Fold } from "./common";

/** `data-state` of an account item. */
export type AccountStatus =
  | "connecting"
  | "registered"
  | "online"
  | "failed"
  | "reconnecting"
  | "stopped";

export interface AccountView {
  id: number;
  kind: AccountKindWord;
  /** SIP address of record or bare JID. */
  address: string;
  label: string;
  settings: AccountSettings;
  passwordSaved: boolean;
  status: AccountStatus;
  /** Why it is in this state, in words ("" when there is nothing to say). */
  detail: string;
  /** The server refused the password or none is stored: ask for it. */
  needsPassword: boolean;
}

export interface AccountsState {
  accounts: Record<string, AccountView>;
  keyringAvailable: boolean;
  downloadsDir: string;
  /** Where call recordings go. */
  recordingsDir: string;
  /** Audio devices chosen in the settings (null: the system default). */
  audio: { input: string | null; output: string | null; musicOnHold: boolean };
}

export function emptyAccounts(): AccountsState {
  return {
    accounts: {},
    keyringAvailable: true,
    downloadsDir: "",
    recordingsDir: "",
    audio: { input: null, output: null, musicOnHold: true },
  };
}

export function accountAddress(settings: AccountSettings): string {
  return settings.kind === "sip" ? settings.aor : settings.jid;
}

function accountView(saved: SavedAccount, previous?: AccountView): AccountView {
  const settings = saved.settings;
  const address = accountAddress(settings);
  const display = settings.kind === "sip" ? settings.display_name : null;
  return {
    id: num(saved.id),
    kind: settings.kind,
    address,
    label: display ? `${display} (${address})` : address,
    settings,
    passwordSaved: saved.password_saved,
    status: previous?.status ?? "connecting",
    detail: previous?.detail ?? "",
    needsPassword: previous?.needsPassword ?? false,
  };
}

export function accountsFromBootstrap<S extends AccountsState>(state: S, boot: Bootstrap): S {
  const accounts: Record<string, AccountView> = {};
  for (const saved of boot.accounts) {
    const key = idKey(saved.id);
    accounts[key] = accountView(saved, state.accounts[key]);
  }
  return {
    ...state,
    keyringAvailable: boot.keyring_available,
    downloadsDir: boot.downloads_dir,
    recordingsDir: boot.recordings_dir,
    audio: {
      input: boot.audio.input_device ?? null,
      output: boot.audio.output_device ?? null,
      musicOnHold: boot.audio.music_on_hold ?? true,
    },
    accounts,
  };
}

export function accountStatus(s: AccountState): AccountStatus {
  switch (s.state) {
    case "connecting":
    case "connected":
      return "connecting";
    case "registered":
      return "registered";
    case "registration_failed":
    case "authentication_failed":
    case "untrusted":
      return "failed";
    case "reconnecting":
      return "reconnecting";
    case "unregistered":
    case "stopped":
      return "stopped";
  }
}

/** Whether an account in this state can no longer vouch for what it learnt while connected
 * (presence, room membership). */
export function accountLostTouch(s: AccountState): boolean {
  const status = accountStatus(s);
  return status !== "registered" && status !== "connecting";
}

export function accountStateWords(s: AccountState): string {
  switch (s.state) {
    case "connecting":
      return "Connecting…";
    case "connected":
      return "Connected, signing in…";
    case "registered":
      return "Ready for calls";
    case "registration_failed":
      return s.status === 401 || s.status === 403 || s.status === 407
        ? `The server refused the password (${s.status} ${s.reason})`
        : `Registration refused (${s.status} ${s.reason})`;
    case "authentication_failed":
      return s.reason === "password needed"
        ? "Password needed"
        : `The server refused the password (${s.reason})`;
    case "untrusted":
      // The engine's words end a sentence; the caller adds its own full stop.
      return s.reason.replace(/\.$/, "");
    case "reconnecting":
      return `Connection lost (${s.reason}); retrying in ${Math.ceil(num(s.delay_ms) / 1000)} s`;
    case "unregistered":
      return "Signed out";
    case "stopped":
      return "Stopped";
  }
}

export function upsertAccount<S extends AccountsState>(state: S, saved: SavedAccount): S {
  const key = idKey(saved.id);
  const previous = state.accounts[key];
  const view = accountView(saved, previous);
  // A re-saved account starts again: forget the old failure.
  return {
    ...state,
    accounts: {
      ...state.accounts,
      [key]: { ...view, status: "connecting", detail: "", needsPassword: false },
    },
  };
}

export function forgetAccount<S extends AccountsState>(state: S, account: number): S {
  const accounts = { ...state.accounts };
  delete accounts[idKey(account)];
  return { ...state, accounts };
}

function setAccount<S extends AccountsState>(
  state: S,
  account: number,
  change: (a: AccountView) => AccountView,
): S {
  const key = idKey(account);
  const current = state.accounts[key];
  if (!current) return state;
  return { ...state, accounts: { ...state.accounts, [key]: change(current) } };
}

export function reduceAccounts<S extends AccountsState>(
  state: S,
  ev: EngineEvent,
  fold: Fold,
): S {
  switch (ev.event) {
    case "account_state": {
      const account = num(ev.account);
      const status = accountStatus(ev.state);
      const words = accountStateWords(ev.state);
      const name = state.accounts[idKey(account)]?.address ?? `Account ${account}`;
      const s = setAccount(state, account, (a) => ({
        ...a,
        // An XMPP account that is "connected" again after being online is not online yet.
        status,
        detail: words,
        needsPassword:
          ev.state.state === "authentication_failed" ||
          (ev.state.state === "registration_failed" && [401, 403, 407].includes(ev.state.status)),
      }));
      const passwordNeeded =
        ev.state.state === "authentication_failed" && ev.state.reason === "password needed";
      if (status === "failed" && !passwordNeeded) fold.say(`${name}: ${words}.`);
      return s;
    }
    case "xmpp_online":
      return setAccount(state, num(ev.account), (a) => ({
        ...a,
        status: "online",
        detail: ev.resumed ? "Online (session resumed)" : "Online",
        needsPassword: false,
      }));
    case "warning":
      // Engine warnings are for the log: the engine answered and carried on. Only the keyring
      // one concerns the person (the password will not be remembered).
      if (/keyring/i.test(ev.detail)) fold.say(ev.detail, "info");
      return state;
    default:
      return state;
  }
}
