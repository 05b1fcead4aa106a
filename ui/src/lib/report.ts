// A journey's report (GET /v1/journeys/{id}/report, docs/reports.md) and the journeys' overview
// (GET /v1/reports/overview) as the report tab and the journey list show them: which range to
// ask for, the series turned into the columns a chart draws, the funnel through the nodes, and
// figures in words. Pure, so it is unit-tested; the components only draw what this computes.

/** The counts of a total, a bucket, a node or a channel (the answer flattens them). */
export interface Counts {
  entered: number;
  sent: number;
  delivered: number;
  bounced: number;
  failed: number;
  suppressed: number;
  opened: number;
  human_opened: number;
  clicked: number;
  human_clicked: number;
  unsubscribed: number;
  complained: number;
  converted: number;
  attributed: number;
  revenue: number;
}

/** Rates are fractions, `null` when their denominator is 0. */
export interface Rates {
  delivery_rate: number | null;
  bounce_rate: number | null;
  open_rate: number | null;
  open_rate_all: number | null;
  click_rate: number | null;
  click_rate_all: number | null;
  click_to_open_rate: number | null;
  conversion_rate: number | null;
  unsubscribe_rate: number | null;
  complaint_rate: number | null;
}

export interface ReactionTime {
  count: number;
  median_seconds: number | null;
  p90_seconds: number | null;
}

export interface Summary extends Counts, Rates {
  reaction_times: { to_open: ReactionTime; to_click: ReactionTime; to_conversion: ReactionTime };
}

export interface SeriesPoint extends Counts, Rates {
  start: string;
}

export interface NodeRow extends Summary {
  node: string;
  kind: string;
  channel?: string | null;
}

export interface JourneyReport {
  journey_id: string;
  from: string;
  to: string;
  bucket: Bucket;
  tz: string;
  attribution: { model: string; window: string; goal: string | null; currency: string; revenue_property: string };
  totals: Summary;
  series: SeriesPoint[];
  nodes: NodeRow[];
  channels: (Summary & { channel: string })[];
}

export interface JourneyOverview extends Counts, Rates {
  journey_id: string;
  name: string;
  status: string;
}

export type Bucket = 'hour' | 'day' | 'week';

/** The ranges offered, in days up to and including today. */
export const RANGES = [
  { days: 7, label: 'Last 7 days' },
  { days: 30, label: 'Last 30 days' },
  { days: 90, label: 'Last 90 days' },
] as const;
export const DEFAULT_DAYS = 30;
export const BUCKETS: Bucket[] = ['hour', 'day', 'week'];
/** The server answers at most 2,000 buckets: hours go up to 30 days (744 of them). */
export const MAX_HOUR_DAYS = 30;

export interface ReportParams {
  days: number;
  bucket: Bucket;
  tz: string;
  /** A published version, or undefined for all. */
  version?: number;
  /** One experiment variant (`test-node:variant`), or undefined for the whole journey. */
  variant?: string;
}

/** The parameters in the page's address (`?days=7&bucket=hour&tz=Europe/Rome&version=2&variant=test:bold`),
 * so that a reload, a bookmark or a shared link shows the same report; what is missing or not
 * understood takes its default (30 days, by day, the browser's zone `tz`, all versions, the
 * whole journey). */
export function paramsFromAddress(search: string, tz: string): ReportParams {
  const q = new URLSearchParams(search);
  const days = Number(q.get('days'));
  const bucket = q.get('bucket') as Bucket;
  const version = Number(q.get('version'));
  const p: ReportParams = {
    days: RANGES.some((r) => r.days === days) ? days : DEFAULT_DAYS,
    bucket: BUCKETS.includes(bucket) ? bucket : 'day',
    tz: q.get('tz') || tz,
  };
  if (Number.isInteger(version) && version > 0) p.version = version;
  const variant = q.get('variant');
  if (variant) p.variant = variant;
  return p;
}

/** The address's search string for `p`: only what differs from the defaults. */
export function addressOfParams(p: ReportParams, tz: string): string {
  const q = new URLSearchParams();
  if (p.days !== DEFAULT_DAYS) q.set('days', String(p.days));
  const bucket = bucketFor(p.days, p.bucket);
  if (bucket !== 'day') q.set('bucket', bucket);
  if (p.tz !== tz) q.set('tz', p.tz);
  if (p.version !== undefined) q.set('version', String(p.version));
  if (p.variant) q.set('variant', p.variant);
  const s = q.toString();
  return s ? `?${s}` : '';
}

/** The bucket to use for `days`: hours only up to MAX_HOUR_DAYS, else days. */
export function bucketFor(days: number, bucket: Bucket): Bucket {
  return bucket === 'hour' && days > MAX_HOUR_DAYS ? 'day' : bucket;
}

/** The query for the last `days` days (today, or this hour, included) in the zone `tz`. `from`
 * is a duration before the server's now, so a simulated server clock is followed. */
export function reportQuery(p: ReportParams): { from: string; bucket: Bucket; tz: string; version?: number; variant?: string } {
  const days = Math.max(1, Math.floor(p.days));
  const bucket = bucketFor(days, p.bucket);
  const from = bucket === 'hour' ? `${days * 24 - 1}h` : `${days - 1}d`;
  const q: { from: string; bucket: Bucket; tz: string; version?: number; variant?: string } = { from, bucket, tz: p.tz };
  if (p.version !== undefined) q.version = p.version;
  if (p.variant) q.variant = p.variant;
  return q;
}

/** The same query as a URL search string (for the CSV download), `rows` added when given. */
export function reportSearch(p: ReportParams, rows?: 'series' | 'nodes'): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(reportQuery(p))) q.set(k, String(v));
  if (rows) q.set('rows', rows);
  return q.toString();
}

/** The lines of the chart: people's opens and clicks (not machines'), and revenue on its own
 * axis. */
export const CHART_LINES = [
  { key: 'sent', label: 'Sent', color: '#2563eb', axis: 'count' },
  { key: 'human_opened', label: 'Opened (people)', color: '#059669', axis: 'count' },
  { key: 'human_clicked', label: 'Clicked (people)', color: '#d97706', axis: 'count' },
  { key: 'converted', label: 'Conversions', color: '#7c3aed', axis: 'count' },
  { key: 'revenue', label: 'Revenue', color: '#db2777', axis: 'revenue' },
] as const satisfies readonly { key: keyof Counts; label: string; color: string; axis: 'count' | 'revenue' }[];

export type ChartKey = (typeof CHART_LINES)[number]['key'];

/** The series as columns, as uPlot takes them: the buckets' starts in seconds, then one column
 * per line of CHART_LINES. */
export interface ChartData {
  x: number[];
  columns: Record<ChartKey, number[]>;
}

export function chartData(series: SeriesPoint[]): ChartData {
  const columns = Object.fromEntries(CHART_LINES.map((l) => [l.key, series.map((p) => p[l.key] ?? 0)])) as Record<ChartKey, number[]>;
  return { x: series.map((p) => Math.floor(new Date(p.start).getTime() / 1000)), columns };
}

/** A bucket's start as a label in `tz`: `Mar 1` for days and weeks, `Mar 1, 14:00` for hours. */
export function bucketLabel(start: string, bucket: Bucket, tz: string): string {
  const d = new Date(start);
  if (Number.isNaN(d.getTime())) return start;
  const opts: Intl.DateTimeFormatOptions =
    bucket === 'hour'
      ? { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', hourCycle: 'h23', timeZone: tz }
      : { month: 'short', day: 'numeric', timeZone: tz };
  try {
    return new Intl.DateTimeFormat('en', opts).format(d);
  } catch {
    return d.toISOString().slice(0, bucket === 'hour' ? 16 : 10);
  }
}

export interface FunnelStep {
  node: string;
  kind: string;
  entered: number;
  /** entered / the first step's entered. */
  ofFirst: number | null;
  /** entered / the entered of the node before it: its one predecessor by the journey's edges
   * (null when it has none or several), or, without edges, the step before in the list. */
  ofPrevious: number | null;
}

/** Entered per node in the journey's order (the answer's; nodes the journey no longer has,
 * kind `removed`, are left out), with each step's share of the first and of the node before.
 * With the journey's `edges`, the node before is the one that leads to it, so that two
 * branches side by side are not compared with each other. */
export function funnel(nodes: NodeRow[], edges?: { from: string; to: string }[]): FunnelStep[] {
  const steps = nodes.filter((n) => n.kind !== 'removed');
  const first = steps[0]?.entered ?? 0;
  const entered = new Map(steps.map((n) => [n.node, n.entered]));
  const share = (n: number, of: number | undefined) => (of === undefined || of <= 0 ? null : n / of);
  return steps.map((n, i) => {
    let before: number | undefined;
    if (edges) {
      const from = [...new Set(edges.filter((e) => e.to === n.node).map((e) => e.from))];
      before = from.length === 1 ? entered.get(from[0]) : undefined;
    } else if (i > 0) {
      before = steps[i - 1].entered;
    }
    return { node: n.node, kind: n.kind, entered: n.entered, ofFirst: share(n.entered, first), ofPrevious: share(n.entered, before) };
  });
}

/** A rate as a percentage with one decimal, `—` when there is none. */
export function pct(rate: number | null | undefined): string {
  if (rate === null || rate === undefined || !Number.isFinite(rate)) return '—';
  return `${(rate * 100).toFixed(1)}%`;
}

/** An amount of money: two decimals, with the currency when it is known. */
export function money(amount: number | null | undefined, currency?: string): string {
  const n = typeof amount === 'number' && Number.isFinite(amount) ? amount : 0;
  if (currency) {
    try {
      return new Intl.NumberFormat('en', { style: 'currency', currency }).format(n);
    } catch {
      // not an ISO currency: fall through
    }
  }
  return n.toFixed(2);
}

/** A duration in seconds in words: `45 s`, `12 min`, `3.5 h`, `2.1 d`; `—` without one. */
export function duration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '—';
  if (seconds < 60) return `${Math.round(seconds)} s`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
  if (seconds < 86400) return `${(seconds / 3600).toFixed(1)} h`;
  return `${(seconds / 86400).toFixed(1)} d`;
}

/** A variant's conversion rate with its interval: `12.5% (8.1–18.0%)`. */
export function rateWithInterval(rate: number, low: number | null | undefined, high: number | null | undefined): string {
  if (low === null || low === undefined || high === null || high === undefined) return pct(rate);
  return `${pct(rate)} (${(low * 100).toFixed(1)}–${pct(high)})`;
}

/** Lift over the holdout in words: `+25.0% (p 0.031)`; the absolute difference in points when
 * the holdout converted nobody. */
export function liftText(lift: { relative?: number | null; absolute: number; p_value: number } | null | undefined): string {
  if (!lift) return '—';
  const p = `p ${lift.p_value < 0.001 ? '<0.001' : lift.p_value.toFixed(3)}`;
  if (lift.relative === null || lift.relative === undefined) {
    const pts = lift.absolute * 100;
    return `${pts >= 0 ? '+' : ''}${pts.toFixed(1)} pts (${p})`;
  }
  const r = lift.relative * 100;
  return `${r >= 0 ? '+' : ''}${r.toFixed(1)}% (${p})`;
}

/** The overview's journeys by id, for the journey list. */
export function overviewById(journeys: JourneyOverview[]): Map<string, JourneyOverview> {
  return new Map(journeys.map((j) => [j.journey_id, j]));
}
