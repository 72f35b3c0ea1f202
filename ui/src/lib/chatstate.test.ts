import { describe, expect, it } from "vitest";
import { ChatStateSender, PAUSE_AFTER_MS } from "./chatstate";

describe("our typing notifications", () => {
  it("sends composing once, paused after a quiet while, active when cleared", () => {
    const c = new ChatStateSender();
    expect(c.input("h", 0)).toBe("composing");
    expect(c.input("he", 100)).toBeNull();
    expect(c.tick(100 + PAUSE_AFTER_MS - 1)).toBeNull();
    expect(c.tick(100 + PAUSE_AFTER_MS)).toBe("paused");
    expect(c.tick(100 + PAUSE_AFTER_MS * 2)).toBeNull();
    expect(c.input("hel", 20_000)).toBe("composing");
    expect(c.input("", 20_100)).toBe("active");
    expect(c.current()).toBe("active");
  });

  it("sends nothing more after the message went out", () => {
    const c = new ChatStateSender();
    c.input("hi", 0);
    c.sent();
    expect(c.tick(PAUSE_AFTER_MS * 3)).toBeNull();
    expect(c.input("", 10)).toBeNull();
  });
});
