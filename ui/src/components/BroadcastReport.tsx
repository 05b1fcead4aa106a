// A broadcast's Report section, under its progress: the whole broadcast (from its start) as
// headline figures, a chart by hour or day in the browser's time zone, and a line per template
// (an A/B test's variants) with opens, clicks and conversions per message sent and their 95%
// intervals, and the report as CSV. Everything shown comes from GET /v1/broadcasts/{id}/report
// as it answers; lib/broadcastReport.ts shapes it. Asked again while the broadcast is moving.
import { useEffect, useState } from 'react';
import { api, describe, ok, ServerError } from '../api/client';
import { ErrorBanner, Loading, useLoad } from './common';
import { ReportChart } from './ReportChart';
import { broadcastReportQuery, variantLines, type BroadcastBucket, type BroadcastReportView } from '../lib/broadcastReport';
import { money, pct, type SeriesPoint } from '../lib/report';
import { browserZone } from '../lib/segmentHistory';
import { Link } from '../router';

const POLL_MS = 5000;

function Figure({ label, value, sub, testid }: { label: string; value: React.ReactNode; sub?: React.ReactNode; testid: string }) {
  return (
    <div className="figure" data-testid={`bc-figure-${testid}`}>
      <div className="muted small">{label}</div>
      <div className="figure-value">{value}</div>
      {sub && <div className="muted small">{sub}</div>}
    </div>
  );
}

export function BroadcastReport({ id, moving }: { id: string; moving: boolean }) {
  const [bucket, setBucket] = useState<BroadcastBucket | undefined>(undefined);
  const tz = browserZone();
  const report = useLoad(
    () => ok<BroadcastReportView>(api.GET('/v1/broadcasts/{id}/report', { params: { path: { id }, query: broadcastReportQuery(bucket, tz) } })),
    [id, bucket, tz],
  );
  useEffect(() => {
    if (!moving) return;
    const timer = setInterval(() => void report.reload(), POLL_MS);
    return () => clearInterval(timer);
  }, [moving, report.reload]);
  const [csvError, setCsvError] = useState<string | null>(null);
  const r = report.data;
  const currency = r?.goal?.currency ?? 'USD';

  const download = async (rows: 'series' | 'variants') => {
    setCsvError(null);
    try {
      const q = new URLSearchParams({ ...broadcastReportQuery(bucket, tz), rows });
      const res = await fetch(`/v1/broadcasts/${encodeURIComponent(id)}/report?${q}`, { headers: { Accept: 'text/csv' }, credentials: 'same-origin' });
      if (!res.ok) throw new ServerError(res.status, await res.json().catch(() => null));
      const url = URL.createObjectURL(await res.blob());
      const a = document.createElement('a');
      a.href = url;
      a.download = `${id}-report${rows === 'variants' ? '-templates' : ''}.csv`;
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 1000);
    } catch (e) {
      setCsvError(describe(e));
    }
  };

  return (
    <section className="card broadcast-report report" data-testid="broadcast-report" aria-label="Report">
      <h2>Report</h2>
      <div className="report-controls">
        <label>
          <span className="muted small">Per</span>
          <select aria-label="Bucket" value={bucket ?? r?.bucket ?? 'hour'} onChange={(e) => setBucket(e.target.value as BroadcastBucket)}>
            <option value="hour">hour</option>
            <option value="day">day</option>
          </select>
        </label>
        <span className="muted small">in {tz}</span>
        <span className="spacer" />
        <button className="link" onClick={() => void download('series')}>
          Download CSV
        </button>
        <button className="link" onClick={() => void download('variants')}>
          CSV per template
        </button>
      </div>
      <ErrorBanner error={report.error} />
      <ErrorBanner error={csvError} onClose={() => setCsvError(null)} />
      {report.loading && !r && <Loading what="the report" />}
      {r && (
        <>
          <div className="figures">
            <Figure testid="entered" label="Recipients" value={r.totals.entered} sub={`${r.totals.suppressed} suppressed`} />
            <Figure
              testid="sent"
              label="Sent"
              value={r.totals.sent}
              sub={`${r.totals.delivered} delivered (${pct(r.totals.delivery_rate)}), ${r.totals.bounced} bounced, ${r.totals.failed} failed`}
            />
            <Figure testid="open_rate" label="Open rate" value={pct(r.totals.open_rate)} sub={`${r.totals.human_opened} people; ${pct(r.totals.open_rate_all)} with machines`} />
            <Figure testid="click_rate" label="Click rate" value={pct(r.totals.click_rate)} sub={`${r.totals.human_clicked} people; ${pct(r.totals.click_rate_all)} with machines`} />
            {r.goal && (
              <>
                <Figure testid="conversion_rate" label="Conversion rate" value={pct(r.totals.conversion_rate)} sub={`${r.totals.converted} converted`} />
                <Figure testid="revenue" label="Revenue" value={money(r.totals.revenue, currency)} />
              </>
            )}
            <Figure testid="unsubscribed" label="Unsubscribed" value={r.totals.unsubscribed} sub={`${r.totals.complained} complaints`} />
          </div>
          {/* The server writes every rate, null when it has no denominator. */}
          <ReportChart series={r.series as SeriesPoint[]} bucket={r.bucket} tz={r.tz} currency={currency} />
          <table className="table compact" aria-label="Templates">
            <thead>
              <tr>
                <th>Template</th>
                <th className="num">Sent</th>
                <th className="num">Opens per sent</th>
                <th className="num">Clicks per sent</th>
                <th className="num">Conversions per sent</th>
              </tr>
            </thead>
            <tbody>
              {variantLines(r).map((v) => (
                <tr key={v.template} data-testid={`bc-report-variant-${v.template}`}>
                  <td>
                    <Link to={`/templates/${encodeURIComponent(v.template)}`}>{v.template}</Link>
                    {v.winner && <span className="badge"> winner</span>}
                  </td>
                  <td className="num" data-testid="bc-report-sent">
                    {v.sent}
                  </td>
                  <td className={`num${v.decides === 'opens' ? ' strong' : ''}`}>{v.opens}</td>
                  <td className={`num${v.decides === 'clicks' ? ' strong' : ''}`}>{v.clicks}</td>
                  <td className={`num${v.decides === 'conversions' ? ' strong' : ''}`} data-testid="bc-report-conversions">
                    {v.conversions}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          <p className="muted small">
            {r.goal ? (
              <>
                Conversions: <code>{r.goal.event}</code> within {r.goal.within} of the send, once per recipient; revenue from <code>{r.goal.revenue_property}</code> in {r.goal.currency}.{' '}
              </>
            ) : (
              'No goal: nobody converts. '
            )}
            Open and click rates count people; per template, opens and clicks per message sent count anyone (as the A/B test does), with 95% intervals.
          </p>
        </>
      )}
    </section>
  );
}
