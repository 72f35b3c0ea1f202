// The live app state (a Svelte rune) and the actions the views call. Each action calls the shell
// through `api` and folds the result with the pure functions of state.ts; failures become toasts.
import { api, insideLyrebird, NotInsideLyrebird, onEngineEvent, onOpenUri } from "./api";
import { parseLink } from "./links";
import * as S from "./state";
import type { AccountSettings, EngineEvent, XmppAction, XmppReply } from "./types";
import { num } from "./types";
import { fileNameOf } from "./state";

/** How long engine events gather before they are folded and rendered together. */
const EVENT_BATCH_MS = 8;

export type View = "contacts" | "chats" | "calls" | "transfers" | "settings";

class AppStore {
  state = $state.raw<S.AppState>(S.emptyState());
  view = $state<View>("contacts");
  /** Not inside the Lyrebird window (a plain browser): shown, and nothing is called. */
  detached = $state(false);
  /** The shell could not be reached at start. */
  bootError = $state<string | null>(null);
  /** Put on the dialpad / room form by a link; the view takes it. */
  dialPrefill = $state("");
  roomPrefill = $state("");
  /** Ticks once a second for the call timer and expiring indicators (only the views that
   * show one read it, so an idle window does not re-render). */
  now = $state(Date.now());

  private started = false;

  update(fn: (s: S.AppState) => S.AppState): void {
    this.state = fn(this.state);
    this.scheduleExpiry();
  }

  private expiryTimer: ReturnType<typeof setTimeout> | null = null;
  private expiryAt = Infinity;

  /** Sets a timer for the moment the next information toast or ended call's summary is due
   * to go. The once-a-second tick would get there too, but a throttled or late tick must not
   * leave them on screen: they go when due. */
  private scheduleExpiry(): void {
    const due = [S.nextToastExpiry(this.state), S.nextCallFold(this.state)].filter(
      (t): t is number => t !== null,
    );
    if (due.length === 0) return;
    const at = Math.min(...due);
    if (this.expiryTimer !== null && this.expiryAt <= at) return;
    if (this.expiryTimer !== null) clearTimeout(this.expiryTimer);
    this.expiryAt = at;
    this.expiryTimer = setTimeout(() => {
      this.expiryTimer = null;
      this.expiryAt = Infinity;
      this.expire(Date.now());
    }, Math.max(0, at - Date.now()) + 5);
  }

  /** Drops what has had its time on screen. */
  private expire(now: number): void {
    const s0 = this.state;
    let s = S.expireTyping(s0, now);
    s = S.expireToasts(s, now);
    s = S.dropEndedCalls(s, now);
    if (s !== s0) this.state = s;
    this.scheduleExpiry();
  }

  fail(error: unknown): void {
    if (error instanceof NotInsideLyrebird) return;
    this.update((s) => S.addErrorToast(s, error, Date.now()));
  }

  info(text: string): void {
    this.update((s) => S.addToast(s, text, Date.now(), "info"));
  }

  /** Runs a command; a failure becomes a toast and `undefined`. */
  async run<T>(work: () => Promise<T>): Promise<T | undefined> {
    try {
      return await work();
    } catch (error) {
      this.fail(error);
      return undefined;
    }
  }

  /** Reads the stored state, then listens to the engine. Resolves once the first state is in. */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    setInterval(() => this.tick(), 1000);
    if (!insideLyrebird()) {
      this.detached = true;
      if (import.meta.env.DEV && location.search.includes("firstrun")) {
        // The first-run form, as a new person sees it.
        this.detached = false;
        this.update((s) => ({ ...s, booted: true }));
      } else if (import.meta.env.DEV && location.search.includes("demo")) {
        const { demoState } = await import("./demo");
        this.state = demoState(Date.now());
        const view = new URLSearchParams(location.search).get("view");
        if (view) this.view = view as View;
      } else {
        this.update((s) => ({ ...s, booted: true }));
      }
      return;
    }
    // Listen first so nothing that happens while bootstrap runs is lost; events that arrive
    // before the bootstrap answer are folded after it.
    const early: EngineEvent[] = [];
    let booted = false;
    await onEngineEvent((ev) => {
      if (booted) this.onEvent(ev);
      else early.push(ev);
    }).catch((e: unknown) => this.fail(e));
    await onOpenUri((uri) => this.openLink(uri)).catch((e: unknown) => this.fail(e));
    try {
      const boot = await api.bootstrap();
      this.update((s) => S.applyBootstrap(s, boot));
    } catch (error) {
      this.bootError = S.errorWords(error);
      this.update((s) => ({ ...s, booted: true }));
    }
    booted = true;
    const now = Date.now();
    this.update((s) => S.applyEvents(s, early, now));
  }

  openLink(uri: string): void {
    const action = parseLink(uri);
    if (!action) {
      this.info(`Lyrebird cannot open ${uri}.`);
      return;
    }
    if (action.kind === "dial") {
      this.dialPrefill = action.target;
      this.view = "calls";
      return;
    }
    const account = Object.values(this.state.accounts).find((a) => a.kind === "xmpp");
    if (!account) {
      this.info(`Add an XMPP account to open ${uri}.`);
      return;
    }
    if (action.kind === "chat") {
      void this.openChat(account.id, action.jid);
    } else {
      this.roomPrefill = action.room;
      this.view = "chats";
    }
  }

  private queue: EngineEvent[] = [];
  private flushTimer: ReturnType<typeof setTimeout> | null = null;

  /** Engine events are folded in small batches: an archive catch-up or a roster of hundreds
   * arrives as hundreds of IPC messages, and one render per batch keeps the window responsive. */
  onEvent(ev: EngineEvent): void {
    this.queue.push(ev);
    this.flushTimer ??= setTimeout(() => this.flush(), EVENT_BATCH_MS);
  }

  private flush(): void {
    this.flushTimer = null;
    const events = this.queue;
    this.queue = [];
    const now = Date.now();
    let s = this.state;
    const read = new Set<string>();
    for (const ev of events) {
      const before = s;
      s = S.applyEvent(s, ev, now);
      const key = this.followUp(ev, before, s);
      if (key) read.add(key);
    }
    this.state = s;
    this.scheduleExpiry();
    for (const key of read) {
      const conv = s.conversations[key];
      if (conv) void this.run(() => api.markRead(conv.account, conv.peer));
    }
  }

  /** What an event asks of the shell besides the state change; returns a conversation that
   * is on screen and got a message (to be marked read). */
  private followUp(ev: EngineEvent, before: S.AppState, after: S.AppState): string | null {
    if (ev.event === "xmpp_online") {
      void this.refreshRoster(num(ev.account));
    } else if (ev.event === "call_state" && ev.state.state === "ended") {
      // The store's record (with its derived "missed") replaces ours a moment later.
      setTimeout(() => void this.refreshCalls(), 400);
    } else if (ev.event === "chat_message" || ev.event === "message_received") {
      const key =
        ev.event === "chat_message" ? S.convKey(ev.account, ev.peer) : S.convKey(ev.account, ev.from);
      if (after.openConversation === key && before.openConversation === key && after.windowFocused) {
        return key;
      }
    }
    return null;
  }

  private tick(): void {
    const now = Date.now();
    this.now = now;
    this.expire(now);
  }

  async refreshRoster(account: number): Promise<void> {
    const reply = await this.run(() => api.xmpp(account, { cmd: "roster" }));
    if (reply && "contacts" in reply) this.update((s) => S.applyRoster(s, account, reply.contacts));
  }

  async refreshCalls(): Promise<void> {
    const calls = await this.run(() => api.recentCalls(50));
    if (calls) this.update((s) => S.setCallHistory(s, calls));
  }

  // ------------------------------------------------------------ accounts

  async saveAccount(settings: AccountSettings, password: string, remember: boolean): Promise<boolean> {
    const saved = await this.run(() => api.saveAccount(settings, password, remember));
    if (!saved) return false;
    this.update((s) => S.upsertAccount(s, saved));
    return true;
  }

  async forgetAccount(account: number): Promise<void> {
    const ok = await this.run(async () => {
      await api.forgetAccount(account);
      return true;
    });
    if (ok) this.update((s) => S.removeAccount(s, account));
  }

  // ------------------------------------------------------------ calls

  async startCall(account: number, target: string): Promise<void> {
    const id = await this.run(() => api.startCall(account, target));
    if (id !== undefined) this.update((s) => S.callStarted(s, account, id, target, Date.now()));
  }

  async answer(call: S.CallView): Promise<void> {
    await this.run(() => api.answerCall(call.id));
  }

  async decline(call: S.CallView): Promise<void> {
    await this.run(() => api.rejectCall(call.id));
  }

  async hangup(call: S.CallView): Promise<void> {
    await this.run(() => api.hangupCall(call.id));
  }

  /** The person chose which call the keypad and the meters are for. */
  setActiveCall(call: S.CallView): void {
    this.update((s) => S.setActiveCall(s, call.key));
  }

  /** Folds an ended call's summary into history before its time is up. */
  dismissEndedCall(call: S.CallView): void {
    this.update((s) => S.foldEndedCall(s, call.key));
  }

  async sendDtmf(call: S.CallView, digit: string): Promise<void> {
    await this.run(() => api.sendDtmf(call.id, digit));
  }

  async setHeld(call: S.CallView, hold: boolean): Promise<void> {
    // The engine says when hold took effect (call_hold); nothing changes here until then.
    await this.run(() => api.holdCall(call.id, hold));
  }

  async transferCall(call: S.CallView, target: string): Promise<void> {
    await this.run(() => api.transferCall(call.id, target));
  }

  async attendedTransfer(call: S.CallView, to: S.CallView): Promise<void> {
    await this.run(() => api.attendedTransfer(call.id, to.id));
  }

  async splitCall(call: S.CallView): Promise<void> {
    // The engine says who is left in the conference (`conference`); nothing changes here first.
    await this.run(() => api.splitCall(call.id));
  }

  async leaveConference(): Promise<void> {
    await this.run(() => api.leaveConference());
  }

  async mergeCalls(calls: S.CallView[]): Promise<void> {
    await this.run(() => api.mergeCalls(calls.map((c) => c.id)));
  }

  async setRecording(call: S.CallView, record: boolean): Promise<void> {
    await this.run(() => api.recordCall(call.id, record));
  }

  async toggleMute(call: S.CallView): Promise<void> {
    const muted = !call.muted;
    this.update((s) => S.setMuted(s, call.key, muted));
    const ok = await this.run(async () => {
      await api.setMuted(call.id, muted);
      return true;
    });
    if (!ok) this.update((s) => S.setMuted(s, call.key, !muted));
  }

  // ------------------------------------------------------------ chat

  /** The window gained or lost focus: what arrived in the open conversation meanwhile is
   * read once the person is back. */
  windowFocus(focused: boolean): void {
    const before = this.state;
    this.update((s) => S.setWindowFocused(s, focused));
    const key = before.openConversation;
    const conv = key ? before.conversations[key] : undefined;
    if (focused && conv && conv.unread > 0) {
      void this.run(() => api.markRead(conv.account, conv.peer));
    }
  }

  async openChat(account: number, peer: string, room = false): Promise<void> {
    this.update((s) => S.openConversation(s, account, peer, room));
    this.view = "chats";
    const key = S.convKey(account, peer);
    const conv = this.state.conversations[key];
    void this.run(() => api.markRead(account, peer));
    if (conv && !conv.loaded) {
      const records = await this.run(() =>
        room ? api.roomHistory(account, peer, 200) : api.conversation(account, peer, 200),
      );
      if (records) this.update((s) => S.applyHistory(s, key, records));
    }
  }

  accountKind(account: number): "sip" | "xmpp" | null {
    return this.state.accounts[String(account)]?.kind ?? null;
  }

  async send(conv: S.ConversationView, body: string): Promise<boolean> {
    const text = body.trim();
    if (text === "") return false;
    const now = Date.now();
    if (this.accountKind(conv.account) === "sip") {
      const id = await this.run(() => api.sendSipMessage(conv.account, conv.peer, text));
      if (id === undefined) return false;
      this.update((s) => S.addOutgoingSip(s, conv.account, conv.peer, id, text, now));
      return true;
    }
    const action: XmppAction = conv.room
      ? { cmd: "room_message", room: conv.peer, body: text }
      : { cmd: "message", to: conv.peer, body: text };
    const reply = await this.run(() => api.xmpp(conv.account, action));
    if (!reply) return false;
    const id = messageIdOf(reply);
    if (id) this.update((s) => S.addOutgoing(s, conv.account, conv.peer, conv.room, id, text, now));
    return true;
  }

  async correct(conv: S.ConversationView, messageId: string, body: string): Promise<boolean> {
    const text = body.trim();
    if (text === "") return false;
    const ok = await this.run(async () => {
      await api.xmpp(conv.account, { cmd: "correct", to: conv.peer, message: messageId, body: text, room: conv.room });
      return true;
    });
    if (ok) this.update((s) => S.applyOwnCorrection(s, conv.key, messageId, text));
    return ok === true;
  }

  async chatState(conv: S.ConversationView, state: string): Promise<void> {
    if (conv.room || this.accountKind(conv.account) !== "xmpp") return;
    // A lost typing notification is harmless: no toast.
    try {
      await api.xmpp(conv.account, { cmd: "chat_state", to: conv.peer, state });
    } catch {
      /* ignored on purpose */
    }
  }

  async sendFiles(conv: S.ConversationView, paths: string[]): Promise<void> {
    for (const path of paths) {
      if (this.accountKind(conv.account) === "sip") {
        await this.run(() => api.sendFile(conv.account, conv.peer, path));
      } else {
        const reply = await this.run(() =>
          api.xmpp(conv.account, {
            cmd: "share_file",
            to: conv.peer,
            path,
            room: conv.room,
            content_type: null,
          }),
        );
        if (reply && "transfer" in reply) {
          const transfer = reply.transfer;
          this.update((s) =>
            S.httpTransferStarted(s, conv.account, transfer, conv.peer, fileNameOf(path), Date.now()),
          );
        }
      }
    }
  }

  async joinRoom(account: number, room: string, nick: string): Promise<void> {
    this.update((s) => S.roomJoining(s, account, room, nick));
    const ok = await this.run(async () => {
      await api.xmpp(account, { cmd: "join", room, nick, history: 20 });
      return true;
    });
    if (ok) await this.openChat(account, room, true);
  }

  async leaveRoom(account: number, room: string): Promise<void> {
    await this.run(() => api.xmpp(account, { cmd: "leave", room }));
  }

  async xmpp(account: number, action: XmppAction): Promise<XmppReply | undefined> {
    return this.run(() => api.xmpp(account, action));
  }

  dismissSubscription(account: number, from: string): void {
    this.update((s) => S.dismissSubscription(s, account, from));
  }
}

export function messageIdOf(reply: XmppReply): string | null {
  return typeof reply === "object" && reply !== null && "message" in reply ? reply.message : null;
}

export const app = new AppStore();
