import { describe, expect, it } from "vitest";
import { callFeature, features } from "./features";

describe("call features", () => {
  it("offers every feature on SIP calls, all but transfer on XMPP calls, none without an account", () => {
    for (const f of ["hold", "transfer", "merge", "record"] as const) {
      expect(callFeature(f, "sip"), f).toBe(true);
      expect(callFeature(f, null), f).toBe(false);
    }
    expect(callFeature("hold", "xmpp")).toBe(true);
    expect(callFeature("record", "xmpp")).toBe(true);
    expect(callFeature("merge", "xmpp")).toBe(true);
    expect(callFeature("transfer", "xmpp")).toBe(false); // Jingle has no transfer
  });

  it("offers nothing the engine cannot do yet, whatever the account", () => {
    Object.assign(features, { hold: false });
    try {
      expect(callFeature("hold", "sip")).toBe(false);
      expect(callFeature("hold", "xmpp")).toBe(false);
    } finally {
      Object.assign(features, { hold: true });
    }
  });
});
