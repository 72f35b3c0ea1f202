// Call quality from the media statistics the shell streams every 200 ms.
//
// Loss and jitter are judged over the last few seconds, not since the call began (a bad minute
// an hour ago says nothing now) and not over one 200 ms sample (ten packets are too few).
import type { MediaStats } from "./types";
import { num } from "./types";

export type Quality = "good" | "fair" | "poor" | "unknown";

interface Sample {
  at: number;
  received: number;
  lost: number;
}

/** How far back the judgement looks. */
export const QUALITY_WINDOW_MS = 5_000;

export class QualityMeter {
  private samples: Sample[] = [];
  private jitterMs = 0;

  /** Adds a statistics snapshot taken at `now` and returns the quality. */
  push(stats: MediaStats, now: number): Quality {
    this.samples.push({ at: now, received: num(stats.packets_received), lost: num(stats.packets_lost) });
    while (this.samples.length > 2 && now - (this.samples[1]?.at ?? now) >= QUALITY_WINDOW_MS) {
      this.samples.shift();
    }
    this.jitterMs = stats.jitter_ms;
    return this.quality();
  }

  /** Lost packets as a fraction of those expected over the window. */
  lossFraction(): number | null {
    const first = this.samples[0];
    const last = this.samples[this.samples.length - 1];
    if (!first || !last) return null;
    const received = last.received - first.received;
    const lost = last.lost - first.lost;
    const expected = received + lost;
    if (this.samples.length < 2) {
      // One sample: judge by what the whole call has seen so far.
      const total = last.received + last.lost;
      return total > 0 ? last.lost / total : null;
    }
    return expected > 0 ? lost / expected : null;
  }

  quality(): Quality {
    return judgeQuality(this.lossFraction(), this.jitterMs);
  }
}

/** ITU-T G.1020-style thresholds for voice: under 1 % loss and 30 ms jitter is good; under
 * 5 % and 60 ms still fair; anything worse is poor. No packets yet → unknown. */
export function judgeQuality(loss: number | null, jitterMs: number): Quality {
  if (loss === null) return "unknown";
  if (loss < 0.01 && jitterMs < 30) return "good";
  if (loss < 0.05 && jitterMs < 60) return "fair";
  return "poor";
}

export function qualityWords(q: Quality): string {
  switch (q) {
    case "good":
      return "Good connection";
    case "fair":
      return "Fair connection";
    case "poor":
      return "Poor connection";
    case "unknown":
      return "Connection quality not known yet";
  }
}

/** An RMS level (0..1 of full scale) as a meter position: −60 dBFS → 0, 0 dBFS → 1, so quiet
 * speech (≈ −30 dBFS) shows half-way instead of barely moving. */
export function meterPosition(rms: number): number {
  if (!Number.isFinite(rms) || rms <= 0) return 0;
  const db = 20 * Math.log10(Math.min(1, rms));
  return Math.max(0, Math.min(1, (db + 60) / 60));
}
