// The transfers slice: files sent and received over MSRP (RFC 4975/5547) and shared over
// HTTP upload (XEP-0363), live ones and the ones read from history.
import type { Bootstrap, EngineEvent, StoredTransfer, TransferState } from "../types";
import { num } from "../types";
import { idKey, type Fold } from "./common";

/** `data-state` of a transfer item. */
export type TransferStatus =
  | "offering"
  | "offered"
  | "active"
  | "interrupted"
  | "completed"
  | "failed"
  | "declined"
  | "cancelled";

export interface TransferView {
  key: string;
  /** Engine transfer id for MSRP transfers of this session (accept/decline/cancel need it). */
  id: number | bigint | null;
  /** HTTP upload / download (XEP-0363) rather than MSRP. */
  http: boolean;
  /** Read from history: nothing can be done to it any more. */
  past: boolean;
  account: number;
  direction: "incoming" | "outgoing";
  peer: string;
  /** The name the sender gave with an offer (RFC 5547 has none; SIP's From may). */
  peerName: string | null;
  fileName: string;
  bytes: number;
  total: number | null;
  percent: number;
  rateBps: number;
  etaMs: number | null;
  status: TransferStatus;
  path: string | null;
  detail: string | null;
  startedAt: number;
  /** For computing a rate when the engine does not send one (HTTP transfers). */
  sampleAt: number;
  sampleBytes: number;
}

export interface TransfersState {
  transfers: Record<string, TransferView>;
}

export function emptyTransfers(): TransfersState {
  return { transfers: {} };
}

function storedTransferStatus(state: StoredTransfer["state"]): TransferStatus {
  switch (state) {
    case "completed":
      return "completed";
    case "failed":
      return "failed";
    case "cancelled":
      return "cancelled";
    // An offer or transfer that was live when the app stopped cannot be resumed from here.
    default:
      return "interrupted";
  }
}

function transferFromStored(t: StoredTransfer): TransferView {
  const size = t.size_bytes === null ? null : num(t.size_bytes);
  const bytes = num(t.bytes_confirmed);
  const status = storedTransferStatus(t.state);
  return {
    key: `h${num(t.id)}`,
    id: null,
    http: false,
    past: true,
    account: num(t.account),
    direction: t.direction === "in" ? "incoming" : "outgoing",
    peer: t.peer_address,
    peerName: null,
    fileName: t.file_name,
    bytes,
    total: size,
    percent: status === "completed" ? 100 : size ? Math.min(100, (bytes / size) * 100) : 0,
    rateBps: 0,
    etaMs: null,
    status,
    path: t.local_path ?? null,
    detail: t.error ?? null,
    startedAt: num(t.started_at_ms),
    sampleAt: 0,
    sampleBytes: bytes,
  };
}

export function transfersFromBootstrap<S extends TransfersState>(state: S, boot: Bootstrap): S {
  const transfers: Record<string, TransferView> = {};
  for (const t of boot.transfers) {
    const v = transferFromStored(t);
    transfers[v.key] = v;
  }
  return { ...state, transfers: { ...transfers, ...state.transfers } };
}

// ---------------------------------------------------------------- transfers

function setTransfer<S extends TransfersState>(state: S, t: TransferView): S {
  return { ...state, transfers: { ...state.transfers, [t.key]: t } };
}

function newTransfer(
  key: string,
  id: number | bigint | null,
  account: number,
  direction: TransferView["direction"],
  peer: string,
  fileName: string,
  total: number | null,
  now: number,
  http: boolean,
): TransferView {
  return {
    key,
    id,
    http,
    past: false,
    account,
    direction,
    peer,
    peerName: null,
    fileName,
    bytes: 0,
    total,
    percent: 0,
    rateBps: 0,
    etaMs: null,
    status: direction === "incoming" ? "offered" : "offering",
    path: null,
    detail: null,
    startedAt: now,
    sampleAt: now,
    sampleBytes: 0,
  };
}

export function transferStatusOf(s: TransferState): TransferStatus {
  return s.state;
}

/** An HTTP upload we started with the xmpp `share_file` action. */
export function httpTransferStarted<S extends TransfersState>(
  state: S,
  account: number,
  transfer: number | bigint,
  to: string,
  fileName: string,
  now: number,
): S {
  const key = `x${account}-${idKey(transfer)}`;
  if (state.transfers[key]) return state;
  return setTransfer(state, {
    ...newTransfer(key, null, account, "outgoing", to, fileName, null, now, true),
    status: "active",
  });
}

/** Transfers: the ones that need a decision first, then the live ones, then the newest. */
export function transferList(state: TransfersState): TransferView[] {
  const order = (t: TransferView): number =>
    t.direction === "incoming" && t.status === "offered" ? 0 : t.past ? 2 : 1;
  return Object.values(state.transfers).sort(
    (a, b) => order(a) - order(b) || b.startedAt - a.startedAt,
  );
}

export function pendingOffers(state: TransfersState): number {
  return Object.values(state.transfers).filter(
    (t) => !t.past && t.direction === "incoming" && t.status === "offered",
  ).length;
}

export function fileNameOf(path: string): string {
  const parts = path.split(/[\\/]/);
  return parts[parts.length - 1] || path;
}


export function reduceTransfers<S extends TransfersState>(state: S, ev: EngineEvent, fold: Fold): S {
  const now = fold.now;
  switch (ev.event) {
    case "transfer_offered": {
      const key = idKey(ev.transfer);
      const t = newTransfer(
        key,
        ev.transfer,
        num(ev.account),
        "incoming",
        ev.from,
        ev.file_name,
        ev.size === null ? null : num(ev.size),
        now,
        false,
      );
      return setTransfer(state, { ...t, peerName: ev.display_name ?? null });
    }
    case "transfer_state": {
      const key = idKey(ev.transfer);
      const ts = ev.state;
      let t = state.transfers[key];
      if (!t) {
        if (ts.state === "offering") {
          t = newTransfer(key, ev.transfer, num(ev.account), "outgoing", ts.peer, ts.file_name, num(ts.size), now, false);
        } else {
          t = newTransfer(key, ev.transfer, num(ev.account), "outgoing", "", "", null, now, false);
        }
      }
      let next: TransferView = { ...t, status: transferStatusOf(ts) };
      switch (ts.state) {
        case "offering":
          next = { ...next, peer: ts.peer, fileName: ts.file_name, total: num(ts.size) };
          break;
        case "interrupted":
          next = { ...next, detail: ts.reason, bytes: num(ts.confirmed), rateBps: 0, etaMs: null };
          break;
        case "completed":
          next = {
            ...next,
            bytes: num(ts.bytes),
            total: next.total ?? num(ts.bytes),
            percent: 100,
            path: ts.path ?? null,
            rateBps: 0,
            etaMs: null,
            detail: null,
          };
          break;
        case "failed":
          next = { ...next, detail: ts.reason, rateBps: 0, etaMs: null };
          break;
        case "declined":
          next = { ...next, detail: `Declined (${ts.status})`, rateBps: 0, etaMs: null };
          break;
        case "cancelled":
          next = { ...next, detail: ts.by_peer ? "Cancelled by the other side" : "Cancelled", rateBps: 0, etaMs: null };
          break;
        default:
          break;
      }
      if (ts.state === "failed") fold.say(`Transfer of ${next.fileName || "a file"} failed: ${ts.reason}.`);
      return setTransfer(state, next);
    }
    case "transfer_progress": {
      const key = idKey(ev.transfer);
      const t = state.transfers[key];
      if (!t) return state;
      if (t.status === "completed" || t.status === "cancelled" || t.status === "failed") return state;
      return setTransfer(state, {
        ...t,
        status: "active",
        bytes: num(ev.bytes),
        total: num(ev.total),
        percent: ev.percent,
        rateBps: num(ev.rate_bps),
        etaMs: ev.eta_ms === null ? null : num(ev.eta_ms),
      });
    }

    case "file_progress": {
      const account = num(ev.account);
      const key = `x${account}-${idKey(ev.transfer)}`;
      const incoming = ev.direction === "download";
      const t =
        state.transfers[key] ??
        newTransfer(key, null, account, incoming ? "incoming" : "outgoing", "", "", null, now, true);
      const bytes = num(ev.bytes);
      const total = ev.total === null ? t.total : num(ev.total);
      const elapsed = now - t.sampleAt;
      // HTTP progress has no rate: measure it over at least half a second, smoothed.
      let rate = t.rateBps;
      let sampleAt = t.sampleAt;
      let sampleBytes = t.sampleBytes;
      if (elapsed >= 500) {
        const instant = ((bytes - t.sampleBytes) * 1000) / elapsed;
        rate = t.rateBps > 0 ? 0.7 * instant + 0.3 * t.rateBps : instant;
        sampleAt = now;
        sampleBytes = bytes;
      }
      const percent = total ? Math.min(100, Math.floor((bytes / total) * 10000) / 100) : 0;
      return setTransfer(state, {
        ...t,
        status: "active",
        bytes,
        total,
        percent,
        rateBps: Math.max(0, Math.round(rate)),
        etaMs: total && rate > 0 ? Math.round(((total - bytes) / rate) * 1000) : null,
        sampleAt,
        sampleBytes,
      });
    }
    case "file_shared": {
      const account = num(ev.account);
      const key = `x${account}-${idKey(ev.transfer)}`;
      const t =
        state.transfers[key] ?? newTransfer(key, null, account, "outgoing", ev.to, fileNameOf(ev.url), null, now, true);
      return setTransfer(state, {
        ...t,
        peer: ev.to,
        status: "completed",
        percent: 100,
        bytes: t.total ?? t.bytes,
        rateBps: 0,
        etaMs: null,
      });
    }
    case "file_downloaded": {
      const account = num(ev.account);
      const key = `x${account}-${idKey(ev.transfer)}`;
      const t =
        state.transfers[key] ?? newTransfer(key, null, account, "incoming", "", fileNameOf(ev.path), null, now, true);
      return setTransfer(state, {
        ...t,
        fileName: t.fileName || fileNameOf(ev.path),
        status: "completed",
        percent: 100,
        bytes: num(ev.bytes),
        total: num(ev.bytes),
        path: ev.path,
        rateBps: 0,
        etaMs: null,
      });
    }
    case "file_failed": {
      const account = num(ev.account);
      const key = `x${account}-${idKey(ev.transfer)}`;
      const t = state.transfers[key];
      fold.say(`File transfer failed: ${ev.reason}.`);
      return t ? setTransfer(state, { ...t, status: "failed", detail: ev.reason, rateBps: 0, etaMs: null }) : state;
    }

    default:
      return state;
  }
}
