// Call features the window can show but the engine cannot do yet: their buttons stay hidden
// until the shell has the command behind them. Turn one on here once its command is wired.
export const features = {
  /** Hold and resume (`hold_call`). */
  hold: true,
  /** Blind transfer to another address (`transfer_call`). */
  transfer: true,
  /** Mixing calls into a conference (`merge_calls`). */
  merge: true,
  /** Recording a call to a file (`record_call`). */
  record: true,
};

export type Feature = keyof typeof features;

/** Whether `feature` can be offered for a call on an account of this kind. SIP calls have them
 * all. XMPP (Jingle) calls can be held (XEP-0167 session-info), recorded and merged (the
 * engine records and mixes the media, whatever the signalling), but not transferred: Jingle
 * has no transfer (nothing like SIP's REFER). */
export function callFeature(feature: Feature, accountKind: "sip" | "xmpp" | null): boolean {
  if (!features[feature]) return false;
  switch (accountKind) {
    case "sip":
      return true;
    case "xmpp":
      return feature !== "transfer";
    case null:
      return false;
  }
}
