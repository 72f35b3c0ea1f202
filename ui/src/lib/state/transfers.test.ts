// The transfers slice: MSRP and HTTP transfers from offer to end.
import { describe, expect, it } from "vitest";
import * as S from ".";
import { onlineState as online, T0 } from "../fixtures";

describe("transfers", () => {
  it("offers an incoming file, then shows progress to completion", () => {
    let s = online();
    s = S.applyEvent(
      s,
      {
        event: "transfer_offered",
        account: 1,
        transfer: 5,
        from: "sip:bob@lyrebird.test",
        display_name: "Bob",
        file_name: "photo.jpg",
        size: 4_000_000,
        mime_type: "image/jpeg",
        sha256: null,
      },
      T0,
    );
    expect(S.pendingOffers(s)).toBe(1);
    expect(S.transferList(s)[0]).toMatchObject({ status: "offered", direction: "incoming", fileName: "photo.jpg", peer: "sip:bob@lyrebird.test", peerName: "Bob" });
    s = S.applyEvent(s, { event: "transfer_state", account: 1, transfer: 5, state: { state: "active", from_byte: 0 } }, T0);
    s = S.applyEvent(
      s,
      { event: "transfer_progress", account: 1, transfer: 5, bytes: 1_000_000, total: 4_000_000, percent: 25, rate_bps: 500_000, eta_ms: 6000 },
      T0,
    );
    expect(S.transferList(s)[0]).toMatchObject({ status: "active", percent: 25, rateBps: 500_000, etaMs: 6000 });
    s = S.applyEvent(
      s,
      {
        event: "transfer_state",
        account: 1,
        transfer: 5,
        state: { state: "completed", bytes: 4_000_000, sha256: "ab", path: "/dl/photo.jpg", duplicate_bytes: 0, out_of_order_writes: 0 },
      },
      T0,
    );
    // A progress event that was queued behind the completion does not undo it.
    s = S.applyEvent(
      s,
      { event: "transfer_progress", account: 1, transfer: 5, bytes: 3_000_000, total: 4_000_000, percent: 75, rate_bps: 1, eta_ms: 1 },
      T0,
    );
    expect(S.transferList(s)[0]).toMatchObject({ status: "completed", percent: 100, path: "/dl/photo.jpg", rateBps: 0 });
    expect(S.pendingOffers(s)).toBe(0);
  });

  it("follows an outgoing MSRP transfer from offering to cancelled by the peer", () => {
    let s = online();
    s = S.applyEvent(
      s,
      { event: "transfer_state", account: 1, transfer: 6, state: { state: "offering", peer: "sip:bob@lyrebird.test", file_name: "notes.txt", size: 1234 } },
      T0,
    );
    expect(S.transferList(s)[0]).toMatchObject({ direction: "outgoing", status: "offering", total: 1234 });
    s = S.applyEvent(s, { event: "transfer_state", account: 1, transfer: 6, state: { state: "interrupted", reason: "relay gone", confirmed: 600 } }, T0);
    expect(S.transferList(s)[0]).toMatchObject({ status: "interrupted", bytes: 600, detail: "relay gone" });
    s = S.applyEvent(s, { event: "transfer_state", account: 1, transfer: 6, state: { state: "cancelled", by_peer: true } }, T0);
    expect(S.transferList(s)[0]).toMatchObject({ status: "cancelled", detail: "Cancelled by the other side" });
  });

  it("reports a failed or declined transfer", () => {
    let s = online();
    s = S.applyEvent(s, { event: "transfer_state", account: 1, transfer: 7, state: { state: "offering", peer: "sip:b@x", file_name: "a.bin", size: 1 } }, T0);
    s = S.applyEvent(s, { event: "transfer_state", account: 1, transfer: 7, state: { state: "declined", status: 603 } }, T0);
    expect(s.transfers["7"]?.status).toBe("declined");
    s = S.applyEvent(s, { event: "transfer_state", account: 1, transfer: 7, state: { state: "failed", reason: "hash mismatch" } }, T0);
    expect(s.toasts.at(-1)?.text).toBe("Transfer of a.bin failed: hash mismatch.");
  });

  it("measures rate and time left for HTTP uploads, then shows the link in the chat", () => {
    let s = S.httpTransferStarted(online(), 2, 1, "carol@lyrebird.test", "big.iso", T0);
    const key = "x2-1";
    const progress = (bytes: number, at: number) =>
      (s = S.applyEvent(s, { event: "file_progress", account: 2, transfer: 1, direction: "upload", bytes, total: 10_000_000 }, at));
    progress(0, T0);
    progress(1_000_000, T0 + 1000);
    expect(s.transfers[key]?.rateBps).toBe(1_000_000);
    expect(s.transfers[key]?.etaMs).toBe(9000);
    expect(s.transfers[key]?.percent).toBe(10);
    progress(3_000_000, T0 + 2000); // 2 MB/s now, smoothed with the earlier 1 MB/s
    expect(s.transfers[key]?.rateBps).toBe(1_700_000);
    s = S.applyEvent(
      s,
      { event: "file_shared", account: 2, transfer: 1, to: "carol@lyrebird.test", url: "https://up.lyrebird.test/abc/big.iso", sha256: "00", message: "share-1" },
      T0 + 3000,
    );
    expect(s.transfers[key]).toMatchObject({ status: "completed", percent: 100 });
    expect(s.messages["2|carol@lyrebird.test"]?.at(-1)).toMatchObject({ id: "share-1", direction: "out", url: "https://up.lyrebird.test/abc/big.iso" });
  });

  it("shows downloads of shared links and their failures", () => {
    let s = online();
    s = S.applyEvent(s, { event: "file_progress", account: 2, transfer: 4, direction: "download", bytes: 10, total: null }, T0);
    expect(s.transfers["x2-4"]).toMatchObject({ direction: "incoming", status: "active", percent: 0 });
    s = S.applyEvent(s, { event: "file_downloaded", account: 2, transfer: 4, url: "https://x/y.png", path: "/dl/y.png", sha256: "00", bytes: 20 }, T0);
    expect(s.transfers["x2-4"]).toMatchObject({ status: "completed", fileName: "y.png", path: "/dl/y.png" });
    s = S.applyEvent(s, { event: "file_failed", account: 2, transfer: 9, reason: "404 from the upload server" }, T0);
    expect(s.toasts.at(-1)?.text).toBe("File transfer failed: 404 from the upload server.");
  });

  it("puts offers waiting for a decision first", () => {
    let s = S.httpTransferStarted(online(), 2, 1, "carol@lyrebird.test", "a", T0 + 10);
    s = S.applyEvent(
      s,
      { event: "transfer_offered", account: 1, transfer: 2, from: "sip:b@x", display_name: null, file_name: "b", size: null, mime_type: null, sha256: null },
      T0,
    );
    expect(S.transferList(s).map((t) => t.fileName)).toEqual(["b", "a"]);
  });
});
