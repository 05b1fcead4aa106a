import { describe, expect, it } from 'vitest';
import { broadcastReportQuery, perSent, variantLines } from './broadcastReport';

const interval = (rate: number | null, low: number | null, high: number | null) => ({ rate, low, high });

describe('broadcast report', () => {
  it('asks for the server default bucket unless one is chosen', () => {
    expect(broadcastReportQuery(undefined, 'Europe/Rome')).toEqual({ tz: 'Europe/Rome' });
    expect(broadcastReportQuery('day', 'UTC')).toEqual({ bucket: 'day', tz: 'UTC' });
  });

  it('writes a rate per message sent with its interval', () => {
    expect(perSent(interval(0.125, 0.081, 0.182))).toBe('12.5% (8.1–18.2%)');
    expect(perSent(interval(null, null, null))).toBe('—');
    expect(perSent(interval(0.5, null, null))).toBe('50.0%');
  });

  it('marks the winner and the metric the test decides on', () => {
    const variant = (template: string, sent: number, converted: number) => ({
      template,
      sent,
      per_sent: {
        opens: interval(0, 0, 0),
        clicks: interval(0, 0, 0),
        conversions: interval(converted / sent, 0, 1),
      },
    });
    const lines = variantLines({
      variants: [variant('a', 10, 1), variant('b', 10, 4)] as never,
      winner: 'b',
      test_metric: 'conversions',
    });
    expect(lines.map((l) => [l.template, l.winner, l.conversions.split(' ')[0], l.decides])).toEqual([
      ['a', false, '10.0%', 'conversions'],
      ['b', true, '40.0%', 'conversions'],
    ]);
  });
});
