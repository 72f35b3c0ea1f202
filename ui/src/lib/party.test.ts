import { describe, expect, it } from "vitest";
import { onlineState } from "./fixtures";
import { initialsOf, partyOf } from "./party";

describe("party", () => {
  it("names a party by the contact's name first, then the name sent, then the user part", () => {
    const s = onlineState();
    expect(partyOf(s, "sip:bob@lyrebird.test", "Robert").name).toBe("Bob");
    expect(partyOf(s, "sip:zoe@lyrebird.test;transport=ws", "Zoë Z").name).toBe("Zoë Z");
    expect(partyOf(s, "sip:zoe@lyrebird.test", "  ").name).toBe("zoe");
    expect(partyOf(s, "sip:bob@localhost").address).toBe("bob@localhost");
    expect(partyOf(s, "carol@lyrebird.test/phone").name).toBe("Carol");
  });

  it("makes one or two letters for the avatar, and the same colour every time", () => {
    expect(initialsOf("Bob Baker")).toBe("BB");
    expect(initialsOf("bob")).toBe("B");
    expect(initialsOf("Bob B.")).toBe("BB");
    expect(initialsOf("émile")).toBe("É");
    expect(initialsOf("+1 555 0100")).toBe("1");
    expect(initialsOf("")).toBe("?");
    expect(initialsOf("<b>Zoe</b>")).toBe("Z");
    expect(initialsOf("Bob <sip:bob@x>")).toBe("B");
    const s = onlineState();
    expect(partyOf(s, "sip:bob@lyrebird.test").hue).toBe(partyOf(s, "bob@lyrebird.test").hue);
  });
});
