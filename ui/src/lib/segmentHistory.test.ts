import { describe, expect, it } from 'vitest';
import { CHART_SIZE, chartOf, dayLabel, historyQuery, type HistoryPoint, niceMax } from './segmentHistory';

const day = (date: string, members: number, entered = 0, left = 0): HistoryPoint => ({ time: `${date}T00:00:00Z`, members, entered, left });

describe('segment history', () => {
  it('asks for the last days, today included, by the server clock', () => {
    expect(historyQuery(30, 'Europe/Rome')).toEqual({ bucket: 'day', from: '29d', tz: 'Europe/Rome' });
    expect(historyQuery(1, 'UTC').from).toBe('0d');
  });

  it('rounds the top of the axis up to 1, 2 or 5 times a power of ten', () => {
    expect([0, 1, 2, 3, 7, 10, 11, 120, 999].map(niceMax)).toEqual([1, 1, 2, 5, 10, 10, 20, 200, 1000]);
  });

  it('labels days in the zone asked for', () => {
    expect(dayLabel('2026-03-01T23:30:00Z', 'UTC')).toBe('Mar 1');
    expect(dayLabel('2026-03-01T23:30:00Z', 'Asia/Tokyo')).toBe('Mar 2');
  });

  it('turns buckets into a line over the plot, members on an axis from 0', () => {
    const history = [day('2026-03-01', 0), day('2026-03-02', 2, 2), day('2026-03-03', 1, 0, 1)];
    const chart = chartOf(history, 'UTC');
    const { left, right, width, top, height, bottom } = CHART_SIZE;
    const base = height - bottom;
    expect(chart.points.map((p) => [p.x, p.y])).toEqual([
      [left, base],
      [(left + width - right) / 2, top],
      [width - right, (top + base) / 2],
    ]);
    expect(chart.line).toBe(`M${left},${base} L${(left + width - right) / 2},${top} L${width - right},${(top + base) / 2}`);
    expect(chart.area.endsWith(`L${width - right},${base} L${left},${base} Z`)).toBe(true);
    expect(chart.yTicks.map((t) => t.value)).toEqual([0, 1, 2]);
    expect(chart.points[1].label).toBe('Mar 2: 2 members (+2, −0)');
    expect(chart.summary).toEqual({ now: 1, entered: 2, left: 1 });
  });

  it('keeps a few day labels, the last day always among them', () => {
    const history = Array.from({ length: 30 }, (_, i) => day(`2026-04-${String(i + 1).padStart(2, '0')}`, i));
    const labels = chartOf(history, 'UTC').xLabels.map((l) => l.text);
    expect(labels.length).toBeLessThanOrEqual(CHART_SIZE.maxXLabels);
    expect(labels[labels.length - 1]).toBe('Apr 30');
    expect(labels[0]).toBe('Apr 5');
  });

  it('draws one point in the middle, and nothing without points', () => {
    const one = chartOf([day('2026-03-01', 5, 5)], 'UTC');
    expect(one.points[0].x).toBe((CHART_SIZE.left + CHART_SIZE.width - CHART_SIZE.right) / 2);
    expect(one.yTicks.map((t) => t.value)).toEqual([0, 5]);
    const none = chartOf([], 'UTC');
    expect([none.line, none.area, none.summary.now]).toEqual(['', '', 0]);
  });
});
