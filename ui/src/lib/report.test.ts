import { describe, expect, it } from 'vitest';
import {
  addressOfParams,
  bucketFor,
  bucketLabel,
  chartData,
  duration,
  funnel,
  liftText,
  money,
  overviewById,
  paramsFromAddress,
  pct,
  rateWithInterval,
  reportQuery,
  reportSearch,
  type JourneyOverview,
  type NodeRow,
  type SeriesPoint,
} from './report';

const zero = {
  entered: 0, sent: 0, delivered: 0, bounced: 0, failed: 0, suppressed: 0, opened: 0, human_opened: 0, clicked: 0,
  human_clicked: 0, unsubscribed: 0, complained: 0, converted: 0, attributed: 0, revenue: 0,
  delivery_rate: null, bounce_rate: null, open_rate: null, open_rate_all: null, click_rate: null, click_rate_all: null,
  click_to_open_rate: null, conversion_rate: null, unsubscribe_rate: null, complaint_rate: null,
};
const noTimes = { to_open: { count: 0, median_seconds: null, p90_seconds: null }, to_click: { count: 0, median_seconds: null, p90_seconds: null }, to_conversion: { count: 0, median_seconds: null, p90_seconds: null } };
const node = (id: string, kind: string, entered: number): NodeRow => ({ ...zero, node: id, kind, entered, reaction_times: noTimes });

describe('reportQuery', () => {
  it('asks for the last days up to now, today included, in the zone', () => {
    expect(reportQuery({ days: 7, bucket: 'day', tz: 'Europe/Rome' })).toEqual({ from: '6d', bucket: 'day', tz: 'Europe/Rome' });
    expect(reportQuery({ days: 30, bucket: 'week', tz: 'UTC', version: 2 })).toEqual({ from: '29d', bucket: 'week', tz: 'UTC', version: 2 });
  });
  it('counts hours back in hours, and asks for days when hours would be too many', () => {
    expect(reportQuery({ days: 7, bucket: 'hour', tz: 'UTC' })).toEqual({ from: '167h', bucket: 'hour', tz: 'UTC' });
    expect(bucketFor(30, 'hour')).toBe('hour');
    expect(bucketFor(90, 'hour')).toBe('day');
    expect(reportQuery({ days: 90, bucket: 'hour', tz: 'UTC' }).bucket).toBe('day');
  });
  it('builds the CSV download search string', () => {
    expect(reportSearch({ days: 7, bucket: 'day', tz: 'Europe/Rome' }, 'nodes')).toBe('from=6d&bucket=day&tz=Europe%2FRome&rows=nodes');
  });
});

describe('the address', () => {
  it('keeps only what differs from the defaults, and reads it back', () => {
    expect(addressOfParams({ days: 30, bucket: 'day', tz: 'Europe/Rome' }, 'Europe/Rome')).toBe('');
    const p = { days: 7, bucket: 'hour' as const, tz: 'UTC', version: 2 };
    const search = addressOfParams(p, 'Europe/Rome');
    expect(search).toBe('?days=7&bucket=hour&tz=UTC&version=2');
    expect(paramsFromAddress(search, 'Europe/Rome')).toEqual(p);
  });
  it('takes the defaults for what it does not understand', () => {
    expect(paramsFromAddress('?days=12&bucket=month&version=x', 'Asia/Tokyo')).toEqual({ days: 30, bucket: 'day', tz: 'Asia/Tokyo' });
    expect(addressOfParams({ days: 90, bucket: 'hour', tz: 'UTC' }, 'UTC'), 'hours over 90 days are asked as days').toBe('?days=90');
  });
  it('keeps a variant, and asks the report of it', () => {
    const p = { days: 30, bucket: 'day' as const, tz: 'UTC', variant: 'test:bold' };
    expect(addressOfParams(p, 'UTC')).toBe('?variant=test%3Abold');
    expect(paramsFromAddress('?variant=test%3Abold', 'UTC')).toEqual(p);
    expect(reportQuery(p)).toEqual({ from: '29d', bucket: 'day', tz: 'UTC', variant: 'test:bold' });
    expect(new URLSearchParams(reportSearch(p, 'nodes')).get('variant')).toBe('test:bold');
  });
});

describe('chartData', () => {
  it('turns buckets into columns: seconds, then people’s opens and clicks, not machines’', () => {
    const series: SeriesPoint[] = [
      { ...zero, start: '2026-03-01T00:00:00Z', sent: 3, opened: 3, human_opened: 2, clicked: 2, human_clicked: 1, converted: 1, revenue: 42.5 },
      { ...zero, start: '2026-03-02T00:00:00Z' },
    ];
    const c = chartData(series);
    expect(c.x).toEqual([1772323200, 1772409600]);
    expect(c.columns).toEqual({ sent: [3, 0], human_opened: [2, 0], human_clicked: [1, 0], converted: [1, 0], revenue: [42.5, 0] });
  });
  it('labels buckets in the zone', () => {
    expect(bucketLabel('2026-03-01T23:00:00Z', 'day', 'Europe/Rome')).toBe('Mar 2');
    expect(bucketLabel('2026-03-01T23:00:00Z', 'hour', 'UTC')).toBe('Mar 1, 23:00');
  });
});

describe('funnel', () => {
  it('follows the nodes in order with shares of the first and previous step, removed nodes left out', () => {
    const f = funnel([node('start', 'trigger', 10), node('wait', 'wait', 8), node('mail', 'send_email', 4), node('old', 'removed', 3)]);
    expect(f.map((s) => [s.node, s.entered, s.ofFirst, s.ofPrevious])).toEqual([
      ['start', 10, 1, null],
      ['wait', 8, 0.8, 0.8],
      ['mail', 4, 0.4, 0.5],
    ]);
  });
  it('compares a branch with the node that leads to it, not with the branch beside it', () => {
    const nodes = [node('start', 'trigger', 10), node('test', 'experiment', 10), node('a', 'send_email', 6), node('b', 'send_email', 4), node('join', 'wait', 8)];
    const edges = [
      { from: 'start', to: 'test' },
      { from: 'test', to: 'a' },
      { from: 'test', to: 'b' },
      { from: 'a', to: 'join' },
      { from: 'b', to: 'join' },
    ];
    expect(funnel(nodes, edges).map((s) => [s.node, s.ofPrevious])).toEqual([
      ['start', null],
      ['test', 1],
      ['a', 0.6],
      ['b', 0.4],
      ['join', null],
    ]);
  });
  it('has no shares without entries', () => {
    expect(funnel([node('start', 'trigger', 0), node('mail', 'send_email', 0)]).map((s) => [s.ofFirst, s.ofPrevious])).toEqual([
      [null, null],
      [null, null],
    ]);
  });
});

describe('figures in words', () => {
  it('rates, money and durations', () => {
    expect(pct(2 / 3)).toBe('66.7%');
    expect(pct(null)).toBe('—');
    expect(money(42.5, 'EUR')).toBe('€42.50');
    expect(money(10)).toBe('10.00');
    expect(duration(45)).toBe('45 s');
    expect(duration(125)).toBe('2 min');
    expect(duration(5400)).toBe('1.5 h');
    expect(duration(3 * 86400)).toBe('3.0 d');
    expect(duration(null)).toBe('—');
  });
  it('intervals and lift', () => {
    expect(rateWithInterval(0.125, 0.081, 0.18)).toBe('12.5% (8.1–18.0%)');
    expect(rateWithInterval(0, null, null)).toBe('0.0%');
    expect(liftText({ relative: 0.25, absolute: 0.02, p_value: 0.0312 })).toBe('+25.0% (p 0.031)');
    expect(liftText({ relative: null, absolute: 0.05, p_value: 0.0001 })).toBe('+5.0 pts (p <0.001)');
    expect(liftText(null)).toBe('—');
  });
  it('finds the overview of a journey by id', () => {
    const j: JourneyOverview = { ...zero, journey_id: 'cart', name: 'Cart', status: 'live', sent: 3 };
    expect(overviewById([j]).get('cart')?.sent).toBe(3);
  });
});
