// A journey's report over time: sends, people's opens and clicks, conversions (left axis) and
// revenue (right axis) per bucket, drawn by uPlot on a canvas. What it draws is also in the
// page: the columns in `data-chart` (for tests and tools) and a table of the buckets under the
// chart (for screen readers, and for anyone who wants the exact numbers).
import { useEffect, useRef } from 'react';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { bucketLabel, CHART_LINES, chartData, money, type Bucket, type SeriesPoint } from '../lib/report';

export function ReportChart({ series, bucket, tz, currency }: { series: SeriesPoint[]; bucket: Bucket; tz: string; currency: string }) {
  const box = useRef<HTMLDivElement>(null);
  const data = chartData(series);
  const key = JSON.stringify(data);

  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const width = () => Math.max(320, el.clientWidth);
    const opts: uPlot.Options = {
      width: width(),
      height: 280,
      tzDate: (ts) => {
        try {
          return uPlot.tzDate(new Date(ts * 1000), tz);
        } catch {
          return new Date(ts * 1000);
        }
      },
      scales: { x: { time: true }, count: { range: (_u, _min, max) => [0, Math.max(1, max)] }, revenue: { range: (_u, _min, max) => [0, Math.max(1, max)] } },
      series: [
        {},
        ...CHART_LINES.map((l) => ({
          label: l.label,
          stroke: l.color,
          width: 2,
          scale: l.axis,
          points: { show: series.length <= 60 },
          value: l.axis === 'revenue' ? (_u: uPlot, v: number | null) => (v == null ? '—' : money(v, currency)) : undefined,
        })),
      ],
      axes: [
        {},
        { scale: 'count', label: 'Count', values: (_u, ticks) => ticks.map((t) => (Number.isInteger(t) ? String(t) : '')) },
        { scale: 'revenue', side: 1, label: `Revenue (${currency})`, grid: { show: false } },
      ],
    };
    const plot = new uPlot(opts, [data.x, ...CHART_LINES.map((l) => data.columns[l.key])], el);
    const resize = new ResizeObserver(() => plot.setSize({ width: width(), height: 280 }));
    resize.observe(el);
    return () => {
      resize.disconnect();
      plot.destroy();
    };
    // `key` stands for the data; the options change with the zone and currency only.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [key, tz, currency]);

  return (
    <figure className="report-chart">
      <div ref={box} data-testid="report-chart" data-chart={key} data-bucket={bucket} aria-hidden="true" />
      <figcaption>
        <details>
          <summary className="muted small">The numbers behind the chart</summary>
          <table className="table compact" aria-label="Report over time">
            <thead>
              <tr>
                <th>{bucket === 'hour' ? 'Hour' : bucket === 'week' ? 'Week from' : 'Day'}</th>
                {CHART_LINES.map((l) => (
                  <th key={l.key} className="num">
                    {l.label}
                  </th>
                ))}
              </tr>
            </thead>
            <tbody>
              {series.map((p) => (
                <tr key={p.start}>
                  <td>{bucketLabel(p.start, bucket, tz)}</td>
                  {CHART_LINES.map((l) => (
                    <td key={l.key} className="num">
                      {l.key === 'revenue' ? money(p.revenue) : p[l.key]}
                    </td>
                  ))}
                </tr>
              ))}
            </tbody>
          </table>
        </details>
      </figcaption>
    </figure>
  );
}
