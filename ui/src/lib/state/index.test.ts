// The root reducer: the stored state at start, and events that raced ahead of it.
import { describe, expect, it } from "vitest";
import * as S from ".";
import { bootstrap, chat, bootedState as booted, T0 } from "../fixtures";

describe("bootstrap", () => {
  it("shows stored contacts, conversations and calls before any event", () => {
    const s = booted();
    expect(s.booted).toBe(true);
    expect(Object.keys(s.accounts)).toEqual(["1", "2"]);
    expect(s.accounts["1"]?.status).toBe("connecting");
    expect(s.accounts["1"]?.label).toBe("Alice (sip:alice@lyrebird.test)");
    const people = S.mergedContacts(s);
    expect(people.map((p) => p.key)).toEqual(["bob@lyrebird.test", "carol@lyrebird.test", "dave@lyrebird.test"]);
    expect(S.conversationList(s).map((c) => c.peer)).toEqual(["carol@lyrebird.test", "sip:bob@lyrebird.test"]);
    expect(S.totalUnread(s)).toBe(2);
    expect(s.callHistory.map((h) => [h.direction, h.missed])).toEqual([
      ["in", true],
      ["out", false],
    ]);
    expect(s.downloadsDir).toBe("/home/alice/Downloads/Lyrebird");
    expect(s.recordingsDir).toBe("/home/alice/.local/share/lyrebird/recordings");
  });

  it("shows transfers left unfinished by the last run as interrupted, with no actions", () => {
    const s = S.applyBootstrap(
      S.emptyState(),
      bootstrap({
        transfers: [
          {
            id: 3,
            account: 1,
            transfer_key: "abc",
            direction: "in",
            peer_address: "sip:bob@lyrebird.test",
            file_name: "report.pdf",
            size_bytes: 2000,
            mime_type: "application/pdf",
            sha256: null,
            local_path: null,
            state: "active",
            bytes_confirmed: 500,
            started_at_ms: T0,
            ended_at_ms: null,
            error: null,
          },
        ],
      }),
    );
    const t = S.transferList(s)[0];
    expect(t?.status).toBe("interrupted");
    expect(t?.past).toBe(true);
    expect(t?.id).toBeNull();
    expect(t?.percent).toBe(25);
  });

  it("keeps events that raced ahead of the bootstrap answer", () => {
    const early = S.applyEvent(S.emptyState(), chat({ id: "m1", body: "early" }), T0);
    const s = S.applyBootstrap(early, bootstrap());
    expect(s.messages["2|carol@lyrebird.test"]?.map((m) => m.body)).toEqual(["early"]);
    expect(s.conversations["2|carol@lyrebird.test"]?.unread).toBe(2);
  });
});
