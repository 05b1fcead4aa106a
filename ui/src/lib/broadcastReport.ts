// What a broadcast's Report section makes of GET /v1/broadcasts/{id}/report (docs/reports.md,
// "Broadcasts"): the query it asks, the bucket it defaults to, and a row per template (an A/B
// test's variants) with its rates per message sent in words. Pure, so it is unit-tested.
import type { components } from '../api/schema';
import { pct } from './report';

export type BroadcastReportView = components['schemas']['BroadcastReportView'];
export type BroadcastVariant = components['schemas']['BroadcastVariant'];
type RateInterval = components['schemas']['RateInterval'];

/** `hour` or `day`: a broadcast's life is short, weeks are not offered. */
export type BroadcastBucket = 'hour' | 'day';

/** The query for the section: the whole broadcast (the server's default range), in `bucket`
 * (the server's default when none is chosen) of `tz`. */
export function broadcastReportQuery(bucket: BroadcastBucket | undefined, tz: string): { bucket?: BroadcastBucket; tz: string } {
  return bucket ? { bucket, tz } : { tz };
}

/** A rate per message sent with its 95% interval: `12.5% (8.1–18.2%)`, `—` before any is sent. */
export function perSent(r: RateInterval): string {
  if (r.rate === null || r.rate === undefined) return '—';
  if (r.low === null || r.low === undefined || r.high === null || r.high === undefined) return pct(r.rate);
  return `${pct(r.rate)} (${(r.low * 100).toFixed(1)}–${pct(r.high)})`;
}

export interface VariantLine {
  template: string;
  winner: boolean;
  sent: number;
  opens: string;
  clicks: string;
  conversions: string;
  /** The column the test decides on, to show it strong. */
  decides: 'opens' | 'clicks' | 'conversions' | null;
}

/** A line per template, in the server's order, the winner marked. */
export function variantLines(r: Pick<BroadcastReportView, 'variants' | 'winner' | 'test_metric'>): VariantLine[] {
  return r.variants.map((v) => ({
    template: v.template,
    winner: r.winner === v.template,
    sent: v.sent,
    opens: perSent(v.per_sent.opens),
    clicks: perSent(v.per_sent.clicks),
    conversions: perSent(v.per_sent.conversions),
    decides: r.test_metric ?? null,
  }));
}
