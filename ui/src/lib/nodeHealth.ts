// Whether a message node's numbers look wrong, and why, for the canvas to mark it: most of its
// sends held back (suppressed: no consent, no address, quiet hours skipped, suppression list)
// or failed, or many of those sent bounced. Pure, so that the thresholds are tested on their own.

export interface SendCounts {
  sent: number;
  failed?: number;
  suppressed?: number;
  bounced?: number;
}

/** Fewer attempts than this say too little to warn about. */
export const MIN_ATTEMPTS = 5;
/** The share of attempts suppressed or failed from which a node is marked. */
export const HELD_SHARE = 0.5;
/** The share of sent messages bounced from which a node is marked. */
export const BOUNCED_SHARE = 0.1;

const percent = (part: number, whole: number) => `${Math.round((100 * part) / whole)}%`;

/** Why the node's numbers look wrong, or `null` when they do not. */
export function sendWarning(s: SendCounts): string | null {
  const failed = s.failed ?? 0;
  const suppressed = s.suppressed ?? 0;
  const bounced = s.bounced ?? 0;
  const attempts = s.sent + failed + suppressed;
  if (attempts < MIN_ATTEMPTS) return null;
  const reasons: string[] = [];
  if (suppressed / attempts >= HELD_SHARE) {
    reasons.push(`${percent(suppressed, attempts)} of sends were suppressed (no consent, no address, or a suppressed address): check the audience and consent`);
  } else if (failed / attempts >= HELD_SHARE) {
    reasons.push(`${percent(failed, attempts)} of sends failed: check the channel's settings and the failed messages`);
  } else if ((suppressed + failed) / attempts >= HELD_SHARE) {
    reasons.push(`${percent(suppressed + failed, attempts)} of sends were suppressed or failed`);
  }
  if (s.sent >= MIN_ATTEMPTS && bounced / s.sent >= BOUNCED_SHARE) {
    reasons.push(`${percent(bounced, s.sent)} of sent messages bounced: check the addresses`);
  }
  return reasons.length ? reasons.join('\n') : null;
}
