import { describe, expect, it } from "vitest";
import { judgeQuality, meterPosition, QualityMeter, QUALITY_WINDOW_MS } from "./quality";
import type { MediaStats } from "./types";

function stats(received: number, lost: number, jitter_ms = 5): MediaStats {
  return {
    packets_sent: received,
    bytes_sent: 0,
    packets_received: received,
    bytes_received: 0,
    packets_lost: lost,
    packets_late: 0,
    jitter_ms,
    jitter_buffer_ms: 40,
    codec: "opus",
    input_level: 0.1,
    output_level: 0.1,
    video_sent: null,
    video_received: null,
  };
}

describe("call quality", () => {
  it("is unknown before any packet", () => {
    expect(new QualityMeter().push(stats(0, 0), 0)).toBe("unknown");
  });

  it("judges loss over the last seconds, not the whole call", () => {
    const q = new QualityMeter();
    let t = 0;
    let received = 0;
    let lost = 0;
    // A bad start: 10 % loss.
    for (; t <= 3000; t += 200) {
      received += 9;
      lost += 1;
      q.push(stats(received, lost), t);
    }
    expect(q.quality()).toBe("poor");
    // Then clean audio for longer than the window.
    for (; t <= 3000 + QUALITY_WINDOW_MS + 400; t += 200) {
      received += 10;
      q.push(stats(received, lost), t);
    }
    expect(q.lossFraction()).toBe(0);
    expect(q.quality()).toBe("good");
  });

  it("uses thresholds for loss and jitter", () => {
    expect(judgeQuality(null, 0)).toBe("unknown");
    expect(judgeQuality(0.001, 10)).toBe("good");
    expect(judgeQuality(0.02, 10)).toBe("fair");
    expect(judgeQuality(0, 45)).toBe("fair");
    expect(judgeQuality(0.08, 10)).toBe("poor");
    expect(judgeQuality(0, 120)).toBe("poor");
  });

  it("maps RMS levels onto a meter that moves for speech", () => {
    expect(meterPosition(0)).toBe(0);
    expect(meterPosition(1)).toBe(1);
    expect(meterPosition(0.001)).toBeCloseTo(0);
    expect(meterPosition(0.0316)).toBeCloseTo(0.5, 2);
    expect(meterPosition(Number.NaN)).toBe(0);
  });
});
