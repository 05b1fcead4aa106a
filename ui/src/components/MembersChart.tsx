// A segment's members over time: a line per day over a chosen range (the last 30 days by
// default), drawn in plain SVG from what lib/segmentHistory computes. Plain SVG rather than a
// chart library: one series of at most a year of days needs a path, a few labels and a tooltip
// per point, which a library would add tens of kilobytes for; and the points stay in the DOM,
// readable by assistive technology (a summary and a <title> per point) and by the e2e tests.
import { useState } from 'react';
import { api, ok } from '../api/client';
import { chartOf, CHART_SIZE, DEFAULT_DAYS, historyQuery, type HistoryPoint, RANGES } from '../lib/segmentHistory';
import { ErrorBanner, Loading, useLoad } from './common';

export function MembersChart({ segmentId, tz, version }: { segmentId: string; tz: string; version?: string }) {
  const [days, setDays] = useState<number>(DEFAULT_DAYS);
  const history = useLoad(
    () => ok<{ points: HistoryPoint[] }>(api.GET('/v1/segments/{id}/history', { params: { path: { id: segmentId }, query: historyQuery(days, tz) } })),
    [segmentId, days, tz, version],
  );
  const range = RANGES.find((r) => r.days === days)?.label ?? `Last ${days} days`;
  const chart = history.data ? chartOf(history.data.points, tz) : null;
  const { width, height, left, right } = CHART_SIZE;
  return (
    <div className="members-chart">
      <div className="chart-head">
        <label htmlFor="members-range" className="muted small">
          Range
        </label>
        <select id="members-range" value={days} onChange={(e) => setDays(Number(e.target.value))}>
          {RANGES.map((r) => (
            <option key={r.days} value={r.days}>
              {r.label}
            </option>
          ))}
        </select>
        {chart && (
          <span className="muted small" data-testid="members-summary">
            {range}: {chart.summary.entered} entered, {chart.summary.left} left
          </span>
        )}
      </div>
      <ErrorBanner error={history.error} />
      {history.loading && !chart && <Loading what="members over time" />}
      {chart && (
        <svg
          viewBox={`0 0 ${width} ${height}`}
          role="img"
          aria-label={`Members per day, ${range.toLowerCase()}: ${chart.summary.now} at the end, ${chart.summary.entered} entered, ${chart.summary.left} left`}
          data-testid="members-chart"
          data-members={chart.points.map((p) => p.members).join(',')}
          data-days={chart.points.length}
        >
          {chart.yTicks.map((t) => (
            <g key={t.value}>
              <line x1={left} x2={width - right} y1={t.y} y2={t.y} className="chart-grid" />
              <text x={left - 6} y={t.y} className="chart-label" textAnchor="end" dominantBaseline="middle">
                {t.value}
              </text>
            </g>
          ))}
          <path d={chart.area} className="chart-area" />
          <path d={chart.line} className="chart-line" />
          {chart.points.map((p) => (
            <circle key={p.time} cx={p.x} cy={p.y} r={chart.points.length > 60 ? 1.5 : 3} className="chart-point">
              <title>{p.label}</title>
            </circle>
          ))}
          {chart.xLabels.map((l) => (
            <text key={l.x} x={l.x} y={height - 6} className="chart-label" textAnchor="middle">
              {l.text}
            </text>
          ))}
        </svg>
      )}
    </div>
  );
}
