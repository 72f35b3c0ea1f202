import { describe, expect, it } from "vitest";
import { parseLink } from "./links";

describe("links that open Lyrebird", () => {
  it("dials sip:, sips: and tel: links", () => {
    expect(parseLink("sip:bob@lyrebird.test")).toEqual({ kind: "dial", target: "sip:bob@lyrebird.test" });
    expect(parseLink("SIPS:carol@example.com?subject=hi")).toEqual({ kind: "dial", target: "sips:carol@example.com" });
    expect(parseLink("tel:+1-555-010-2030;ext=7")).toEqual({ kind: "dial", target: "+15550102030" });
    expect(parseLink("tel:call-me")).toBeNull();
  });

  it("opens chats and rooms from xmpp: links", () => {
    expect(parseLink("xmpp:bob@lyrebird.test")).toEqual({ kind: "chat", jid: "bob@lyrebird.test" });
    expect(parseLink("xmpp:bob@lyrebird.test/phone?message")).toEqual({ kind: "chat", jid: "bob@lyrebird.test" });
    expect(parseLink("xmpp:team@conference.lyrebird.test?join")).toEqual({ kind: "join", room: "team@conference.lyrebird.test" });
    expect(parseLink("xmpp:%62ob@lyrebird.test")).toEqual({ kind: "chat", jid: "bob@lyrebird.test" });
    expect(parseLink("xmpp:nonsense")).toBeNull();
    expect(parseLink("xmpp:%E0%A4%A@x")).toBeNull();
  });

  it("ignores anything else", () => {
    expect(parseLink("https://example.com")).toBeNull();
    expect(parseLink("sip:")).toBeNull();
    expect(parseLink("")).toBeNull();
  });
});
