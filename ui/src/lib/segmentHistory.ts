// A segment's members over time (GET /v1/segments/{id}/history, docs/api.md#segments) as the
// segment page draws it: which range to ask for, and the points of the answer turned into the
// coordinates, axis ticks and labels of a small SVG chart. Pure, so it is unit-tested; the
// component (components/MembersChart.tsx) only draws what this computes.

/** One bucket of the answer. */
export interface HistoryPoint {
  time: string;
  members: number;
  entered: number;
  left: number;
}

/** The ranges offered, in days up to and including today. */
export const RANGES = [
  { days: 7, label: 'Last 7 days' },
  { days: 30, label: 'Last 30 days' },
  { days: 90, label: 'Last 90 days' },
  { days: 365, label: 'Last 12 months' },
] as const;

export const DEFAULT_DAYS = 30;

/** The query for the last `days` days (today included) in the zone `tz`. `from` is a duration
 * before the server's now, so a simulated server clock is followed without reading it first. */
export function historyQuery(days: number, tz: string): { bucket: 'day'; from: string; tz: string } {
  return { bucket: 'day', from: `${Math.max(1, Math.floor(days)) - 1}d`, tz };
}

/** The browser's time zone, or UTC when it does not say. */
export function browserZone(): string {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  } catch {
    return 'UTC';
  }
}

/** The smallest of 1, 2, 5 × 10^k that is at least `n` (at least 1): the top of the y axis. */
export function niceMax(n: number): number {
  if (!(n > 1)) return 1;
  const magnitude = 10 ** Math.floor(Math.log10(n));
  for (const step of [1, 2, 5, 10]) {
    if (step * magnitude >= n) return step * magnitude;
  }
  return 10 * magnitude;
}

/** A day's label, `Mar 1`, in `tz`. */
export function dayLabel(time: string, tz: string): string {
  const d = new Date(time);
  if (Number.isNaN(d.getTime())) return time;
  try {
    return new Intl.DateTimeFormat('en', { month: 'short', day: 'numeric', timeZone: tz }).format(d);
  } catch {
    return d.toISOString().slice(0, 10);
  }
}

export interface ChartPoint extends HistoryPoint {
  x: number;
  y: number;
  /** `Mar 1: 120 members (+4, −1)`, for the point's tooltip. */
  label: string;
}

export interface Chart {
  points: ChartPoint[];
  /** The SVG path of the members line (empty without points). */
  line: string;
  /** The area under it, closed along the x axis. */
  area: string;
  /** The y axis: its ticks (0, half, top) and their heights. */
  yTicks: { value: number; y: number }[];
  /** At most `maxXLabels` day labels, evenly spaced, the last day always among them. */
  xLabels: { x: number; text: string }[];
  /** Members at the end of the range, and how many entered and left over it. */
  summary: { now: number; entered: number; left: number };
}

export interface ChartSize {
  width: number;
  height: number;
  /** Room on the left for the y labels, and below for the x labels. */
  left: number;
  bottom: number;
  top: number;
  right: number;
  maxXLabels: number;
}

export const CHART_SIZE: ChartSize = { width: 640, height: 180, left: 40, bottom: 22, top: 8, right: 12, maxXLabels: 6 };

const round = (n: number) => Math.round(n * 10) / 10;

/** The chart of a history: one point per bucket, x by position (buckets are days, each one
 * step), y by members on an axis from 0 to a round top. */
export function chartOf(history: HistoryPoint[], tz: string, size: ChartSize = CHART_SIZE): Chart {
  const plotW = size.width - size.left - size.right;
  const plotH = size.height - size.top - size.bottom;
  const top = niceMax(Math.max(0, ...history.map((p) => p.members)));
  const base = size.top + plotH;
  const xOf = (i: number) => round(size.left + (history.length <= 1 ? plotW / 2 : (i * plotW) / (history.length - 1)));
  const yOf = (v: number) => round(base - (Math.max(0, v) * plotH) / top);
  const points = history.map((p, i) => {
    const label = `${dayLabel(p.time, tz)}: ${p.members} member${p.members === 1 ? '' : 's'} (+${p.entered}, −${p.left})`;
    return { ...p, x: xOf(i), y: yOf(p.members), label };
  });
  const line = points.map((p, i) => `${i === 0 ? 'M' : 'L'}${p.x},${p.y}`).join(' ');
  const area = points.length ? `${line} L${points[points.length - 1].x},${base} L${points[0].x},${base} Z` : '';
  const yTicks = [0, top / 2, top].filter((v, i, all) => Number.isInteger(v) && all.indexOf(v) === i).map((value) => ({ value, y: yOf(value) }));
  const every = Math.max(1, Math.ceil(points.length / size.maxXLabels));
  const xLabels = points.filter((_, i) => (points.length - 1 - i) % every === 0).map((p) => ({ x: p.x, text: dayLabel(p.time, tz) }));
  const summary = {
    now: history.length ? history[history.length - 1].members : 0,
    entered: history.reduce((n, p) => n + p.entered, 0),
    left: history.reduce((n, p) => n + p.left, 0),
  };
  return { points, line, area, yTicks, xLabels, summary };
}
