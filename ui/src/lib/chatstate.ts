// Our own typing notifications (XEP-0085): "composing" when the person starts typing, "paused"
// after a few quiet seconds, "active" when the message is sent or the text is cleared.
// Pure: it is told the time, and returns the state to send (or null for nothing new).

export type OwnChatState = "active" | "composing" | "paused";

/** XEP-0085 §5.2: pause after a short while without typing. */
export const PAUSE_AFTER_MS = 5_000;

export class ChatStateSender {
  private state: OwnChatState = "active";
  private lastInputAt = 0;

  /** The composer's text changed. */
  input(text: string, now: number): OwnChatState | null {
    if (text.trim() === "") return this.set("active");
    this.lastInputAt = now;
    return this.set("composing");
  }

  /** Called every second or so: turns "composing" into "paused" when typing stopped. */
  tick(now: number): OwnChatState | null {
    if (this.state === "composing" && now - this.lastInputAt >= PAUSE_AFTER_MS) {
      return this.set("paused");
    }
    return null;
  }

  /** The message went out: the message itself says we are active, nothing more to send. */
  sent(): void {
    this.state = "active";
  }

  current(): OwnChatState {
    return this.state;
  }

  private set(next: OwnChatState): OwnChatState | null {
    if (next === this.state) return null;
    // "active" after only "paused"/"active" adds nothing worth a stanza, except after composing.
    const was = this.state;
    this.state = next;
    if (next === "active" && was === "paused") return "active";
    return next;
  }
}
