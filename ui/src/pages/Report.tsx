// A journey's report tab: over a chosen range (the last 7, 30 or 90 days), in hours, days or
// weeks of a time zone (the browser's by default), for all versions or one: the totals as
// headline figures with reaction times, a chart over time, the funnel through the nodes, a
// table per node, the experiments' variants (each with a link to its own report), and the
// report as CSV. Rates are people's (`open_rate`); the figures with machines' opens and clicks
// are shown beside them, smaller. The counts link to who is behind them (pages/People.tsx).
// Everything shown comes from GET /v1/journeys/{id}/report, /experiments and /stats (who waits
// now) as they answer; lib/report.ts shapes it.
import { useEffect, useState, type ReactNode } from 'react';
import { api, describe, ok, ServerError } from '../api/client';
import { ErrorBanner, Loading, StatusBadge, useLoad, when } from '../components/common';
import { JourneyTabs } from '../components/JourneyTabs';
import { ReportChart } from '../components/ReportChart';
import { browserZone } from '../lib/segmentHistory';
import {
  addressOfParams,
  BUCKETS,
  bucketFor,
  duration,
  funnel,
  liftText,
  MAX_HOUR_DAYS,
  money,
  paramsFromAddress,
  pct,
  RANGES,
  rateWithInterval,
  reportQuery,
  reportSearch,
  type Bucket,
  type JourneyReport,
  type ReactionTime,
  type ReportParams,
} from '../lib/report';
import { peoplePath, type PeopleParams } from '../lib/people';
import { Link } from '../router';

/** Where a number's link goes: who is behind it (`show` and the rest), or none. */
type DrillTo = (p: Omit<PeopleParams, 'limit' | 'version' | 'report'>) => string;

/** A count that links to the contacts behind it. */
function Drill({ to, children, title }: { to: string | null; children: ReactNode; title?: string }) {
  if (!to) return <>{children}</>;
  return (
    <Link to={to} className="drill" data-drill={to} title={title ?? 'Who is behind this number'}>
      {children}
    </Link>
  );
}

interface Edge {
  from: string;
  to: string;
}

interface Lift {
  relative?: number | null;
  absolute: number;
  p_value: number;
}
interface Variant {
  name?: string;
  entered: number;
  converted: number;
  rate: number;
  rate_low: number | null;
  rate_high: number | null;
  lift_over_holdout?: Lift | null;
}
interface Experiment {
  node: string;
  confidence: number;
  min_sample: number;
  variants: Variant[];
  holdout: Variant | null;
  leader: string | null;
  enough_data: boolean;
  winner: string | null;
  decided_at: string | null;
}

function zones(current: string): string[] {
  let all: string[] = [];
  try {
    all = (Intl as unknown as { supportedValuesOf?: (k: string) => string[] }).supportedValuesOf?.('timeZone') ?? [];
  } catch {
    // an older browser: the browser's zone and UTC only
  }
  return [...new Set([current, browserZone(), 'UTC', ...all])];
}

export function Report({ journeyId }: { journeyId: string }) {
  const [params, setParams] = useState<ReportParams>(() => paramsFromAddress(window.location.search, browserZone()));
  const set = (change: Partial<ReportParams>) => setParams((p) => ({ ...p, ...change }));
  // The address keeps the parameters: a reload, a bookmark or a shared link shows the same.
  useEffect(() => {
    const search = addressOfParams(params, browserZone());
    if (search !== window.location.search) window.history.replaceState(null, '', `${window.location.pathname}${search}`);
  }, [params]);
  const journey = useLoad(
    () => ok<{ id: string; name: string; status: string; live_version: number | null; draft: { edges?: Edge[] } }>(api.GET('/v1/journeys/{id}', { params: { path: { id: journeyId } } })),
    [journeyId],
  );
  const versions = useLoad(
    () => ok<{ versions: { version: number; published_at: string; document: { edges?: Edge[] } }[] }>(api.GET('/v1/journeys/{id}/versions', { params: { path: { id: journeyId } } })),
    [journeyId],
  );
  const report = useLoad(
    () => ok<JourneyReport>(api.GET('/v1/journeys/{id}/report', { params: { path: { id: journeyId }, query: reportQuery(params) } })),
    [journeyId, params.days, params.bucket, params.tz, params.version, params.variant],
  );
  // Who waits at each node now (all versions): the report counts what happened, not who is where.
  const stats = useLoad(
    () => ok<{ nodes: { node: string; waiting: number }[] }>(api.GET('/v1/journeys/{id}/stats', { params: { path: { id: journeyId } } })),
    [journeyId],
  );
  const experiments = useLoad(
    () => ok<{ experiments: Experiment[] }>(api.GET('/v1/journeys/{id}/experiments', { params: { path: { id: journeyId } } })),
    [journeyId],
  );
  const [csvError, setCsvError] = useState<string | null>(null);
  const bucket = bucketFor(params.days, params.bucket);
  const r = report.data;
  const currency = r?.attribution.currency ?? 'USD';
  // The funnel follows the edges of the version shown (the live one for all versions).
  const shownVersion = params.version ?? journey.data?.live_version ?? undefined;
  const edges = versions.data?.versions.find((v) => v.version === shownVersion)?.document.edges ?? journey.data?.draft.edges;
  // The lists keep this report's address for the way back.
  const back = addressOfParams(params, browserZone()).slice(1) || undefined;
  const drill: DrillTo = (p) =>
    // Who waits now is counted over all versions (the stats), so its list is too.
    peoplePath(journeyId, p.show === 'waiting' ? { ...p, report: back } : { ...p, version: params.version, report: back });
  const waiting = new Map((stats.data?.nodes ?? []).map((n) => [n.node, n.waiting]));

  const download = async (rows: 'series' | 'nodes') => {
    setCsvError(null);
    try {
      const res = await fetch(`/v1/journeys/${encodeURIComponent(journeyId)}/report?${reportSearch(params, rows)}`, {
        headers: { Accept: 'text/csv' },
        credentials: 'same-origin',
      });
      if (!res.ok) throw new ServerError(res.status, await res.json().catch(() => null));
      const url = URL.createObjectURL(await res.blob());
      const a = document.createElement('a');
      a.href = url;
      a.download = `${journeyId}-report${rows === 'nodes' ? '-nodes' : ''}.csv`;
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 1000);
    } catch (e) {
      setCsvError(describe(e));
    }
  };

  return (
    <div className="page report">
      <div className="page-head">
        <div>
          <Link to="/journeys" className="muted small">
            ← Journeys
          </Link>
          <h1>
            {journey.data?.name ?? journeyId} {journey.data && <StatusBadge status={journey.data.status} />}
          </h1>
        </div>
      </div>
      <JourneyTabs journeyId={journeyId} active="report" />
      <div className="report-controls">
        <label>
          <span className="muted small">Range</span>
          <select aria-label="Range" value={params.days} onChange={(e) => set({ days: Number(e.target.value) })}>
            {RANGES.map((x) => (
              <option key={x.days} value={x.days}>
                {x.label}
              </option>
            ))}
          </select>
        </label>
        <label>
          <span className="muted small">Per</span>
          <select aria-label="Bucket" value={bucket} onChange={(e) => set({ bucket: e.target.value as Bucket })}>
            {BUCKETS.map((b) => (
              <option key={b} value={b} disabled={b === 'hour' && params.days > MAX_HOUR_DAYS}>
                {b}
              </option>
            ))}
          </select>
        </label>
        <label>
          <span className="muted small">Time zone</span>
          <select aria-label="Time zone" value={params.tz} onChange={(e) => set({ tz: e.target.value })}>
            {zones(params.tz).map((z) => (
              <option key={z} value={z}>
                {z}
              </option>
            ))}
          </select>
        </label>
        <label>
          <span className="muted small">Version</span>
          <select
            aria-label="Version"
            value={params.version ?? ''}
            onChange={(e) => set({ version: e.target.value === '' ? undefined : Number(e.target.value) })}
          >
            <option value="">All versions</option>
            {(versions.data?.versions ?? []).map((v) => (
              <option key={v.version} value={v.version}>
                Version {v.version} ({when(v.published_at)})
              </option>
            ))}
          </select>
        </label>
        <span className="spacer" />
        <button className="link" onClick={() => void download('series')}>
          Download CSV
        </button>
        <button className="link" onClick={() => void download('nodes')}>
          CSV per node
        </button>
      </div>
      {params.variant && (
        <div className="notice" role="status" data-testid="variant-shown">
          Only variant <strong>{params.variant.split(':').pop()}</strong>
          {params.variant.includes(':') ? ` of ${params.variant.split(':')[0]}` : ''}: its nodes, entries and the conversions credited to its
          messages.{' '}
          <button className="link" onClick={() => set({ variant: undefined })}>
            Whole journey
          </button>
        </div>
      )}
      <ErrorBanner error={journey.error ?? versions.error ?? stats.error} />
      <ErrorBanner error={csvError} onClose={() => setCsvError(null)} />
      <ErrorBanner error={report.error} />
      {report.loading && !r && <Loading what="the report" />}
      {r && (
        <>
          {/* The totals of a variant are not a list the people API narrows to: no links then. */}
          <Headline r={r} drill={params.variant ? null : drill} />
          <h2>Over time</h2>
          <ReportChart series={r.series} bucket={r.bucket} tz={r.tz} currency={currency} />
          <h2>Funnel</h2>
          <Funnel r={r} edges={edges} waiting={waiting} drill={drill} />
          <h2>Nodes</h2>
          <NodeTable r={r} waiting={waiting} drill={drill} />
          <p className="muted small">
            Conversions: {r.attribution.goal ? <code>{r.attribution.goal}</code> : 'no goal event'}, credited to the last touch (window:{' '}
            {r.attribution.window}); revenue from <code>{r.attribution.revenue_property}</code> in {r.attribution.currency}. Open and click
            rates count people; the figures with machines (privacy proxies, link scanners) are shown smaller.
            The counts link to the contacts behind them, listed over all of the time (not only this range).
          </p>
        </>
      )}
      <h2>Experiments</h2>
      <ErrorBanner error={experiments.error} />
      {experiments.data && (
        <Experiments list={experiments.data.experiments} variant={params.variant} onVariant={(variant) => set({ variant })} />
      )}
    </div>
  );
}

function Figure({ label, value, sub, testid }: { label: string; value: ReactNode; sub?: ReactNode; testid: string }) {
  return (
    <div className="figure" data-testid={`figure-${testid}`}>
      <div className="muted small">{label}</div>
      <div className="figure-value">{value}</div>
      {sub && <div className="muted small">{sub}</div>}
    </div>
  );
}

function reaction(t: ReactionTime): string {
  return t.count === 0 ? 'none yet' : `median ${duration(t.median_seconds)}, 90% within ${duration(t.p90_seconds)} (${t.count})`;
}

function Headline({ r, drill }: { r: JourneyReport; drill: DrillTo | null }) {
  const t = r.totals;
  const currency = r.attribution.currency;
  const to = (p: Parameters<DrillTo>[0]) => (drill ? drill(p) : null);
  return (
    <section aria-label="Totals">
      <div className="figures">
        <Figure testid="entered" label="Entered" value={t.entered} />
        <Figure
          testid="sent"
          label="Sent"
          value={<Drill to={to({ show: 'messaged' })}>{t.sent}</Drill>}
          sub={
            <>
              <Drill to={to({ show: 'messaged', status: 'delivered' })}>{t.delivered} delivered</Drill> ({pct(t.delivery_rate)}),{' '}
              <Drill to={to({ show: 'messaged', status: 'bounced' })}>{t.bounced} bounced</Drill>
            </>
          }
        />
        <Figure
          testid="open_rate"
          label="Open rate"
          value={pct(t.open_rate)}
          sub={
            <>
              <Drill to={to({ show: 'messaged', status: 'opened' })}>{t.human_opened} people</Drill>; {pct(t.open_rate_all)} with machines
            </>
          }
        />
        <Figure
          testid="click_rate"
          label="Click rate"
          value={pct(t.click_rate)}
          sub={
            <>
              <Drill to={to({ show: 'messaged', status: 'clicked' })}>{t.human_clicked} people</Drill>; {pct(t.click_rate_all)} with machines
            </>
          }
        />
        <Figure testid="click_to_open_rate" label="Click to open" value={pct(t.click_to_open_rate)} />
        <Figure
          testid="conversion_rate"
          label="Conversion rate"
          value={pct(t.conversion_rate)}
          sub={<Drill to={to({ show: 'converted' })}>{t.converted} converted</Drill>}
        />
        <Figure testid="revenue" label="Revenue" value={money(t.revenue, currency)} />
        <Figure
          testid="unsubscribed"
          label="Unsubscribed"
          value={<Drill to={to({ show: 'messaged', status: 'unsubscribed' })}>{t.unsubscribed}</Drill>}
          sub={<Drill to={to({ show: 'messaged', status: 'complained' })}>{t.complained} complaints</Drill>}
        />
      </div>
      <dl className="reaction-times" data-testid="reaction-times">
        <div>
          <dt>To open</dt>
          <dd>{reaction(t.reaction_times.to_open)}</dd>
        </div>
        <div>
          <dt>To click</dt>
          <dd>{reaction(t.reaction_times.to_click)}</dd>
        </div>
        <div>
          <dt>To conversion</dt>
          <dd>{reaction(t.reaction_times.to_conversion)}</dd>
        </div>
      </dl>
    </section>
  );
}

function Funnel({ r, edges, waiting, drill }: { r: JourneyReport; edges?: Edge[]; waiting: Map<string, number>; drill: DrillTo }) {
  const steps = funnel(r.nodes, edges);
  if (steps.length === 0) return <p className="muted">No nodes.</p>;
  return (
    <table className="table compact funnel" aria-label="Funnel">
      <thead>
        <tr>
          <th>Node</th>
          <th className="num">Entered</th>
          <th className="num">Of the first</th>
          <th className="num" title="Of the node that leads to it">Of the node before</th>
          <th className="num" title="Enrollments at the node now, all versions">Waiting now</th>
          <th className="funnel-bar-cell" aria-hidden="true" />
        </tr>
      </thead>
      <tbody>
        {steps.map((s) => (
          <tr key={s.node} data-node={s.node}>
            <td>
              {s.node} <span className="muted small">{s.kind}</span>
            </td>
            <td className="num">{s.entered}</td>
            <td className="num">{pct(s.ofFirst)}</td>
            <td className="num">{pct(s.ofPrevious)}</td>
            <td className="num" data-figure="waiting">
              <Drill to={drill({ show: 'waiting', node: s.node })}>{waiting.get(s.node) ?? 0}</Drill>
            </td>
            <td className="funnel-bar-cell" aria-hidden="true">
              <div className="funnel-bar" style={{ width: `${Math.round((s.ofFirst ?? 0) * 100)}%` }} />
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function NodeTable({ r, waiting, drill }: { r: JourneyReport; waiting: Map<string, number>; drill: DrillTo }) {
  const currency = r.attribution.currency;
  return (
    <table className="table compact" aria-label="Nodes">
      <thead>
        <tr>
          <th>Node</th>
          <th className="num">Entered</th>
          <th className="num">Sent</th>
          <th className="num">Delivered</th>
          <th className="num">Open rate</th>
          <th className="num">Click rate</th>
          <th className="num">Conversion rate</th>
          <th className="num">Unsubscribed</th>
          <th className="num">Revenue</th>
          <th className="num" title="Conversions credited to the node (last touch)">Credited</th>
          <th className="num" title="Enrollments at the node now, all versions">Waiting now</th>
        </tr>
      </thead>
      <tbody>
        {r.nodes.map((n) => (
          <tr key={n.node} data-node={n.node}>
            <td>
              {n.node} <span className="muted small">{n.kind}</span>
            </td>
            <td className="num">{n.entered}</td>
            <td className="num" data-figure="sent">
              <Drill to={drill({ show: 'messaged', node: n.node })}>{n.sent}</Drill>
            </td>
            <td className="num" data-figure="delivered">
              <Drill to={drill({ show: 'messaged', node: n.node, status: 'delivered' })}>{n.delivered}</Drill>
            </td>
            <td className="num" data-figure="opened">
              <Drill to={drill({ show: 'messaged', node: n.node, status: 'opened' })} title={`${n.human_opened} people opened: who`}>
                {pct(n.open_rate)}
              </Drill>
              {n.open_rate_all !== null && <div className="muted small">{pct(n.open_rate_all)} with machines</div>}
            </td>
            <td className="num" data-figure="clicked">
              <Drill to={drill({ show: 'messaged', node: n.node, status: 'clicked' })} title={`${n.human_clicked} people clicked: who`}>
                {pct(n.click_rate)}
              </Drill>
              {n.click_rate_all !== null && <div className="muted small">{pct(n.click_rate_all)} with machines</div>}
            </td>
            <td className="num">{pct(n.conversion_rate)}</td>
            <td className="num" data-figure="unsubscribed">
              <Drill to={drill({ show: 'messaged', node: n.node, status: 'unsubscribed' })}>{n.unsubscribed}</Drill>
            </td>
            <td className="num">{money(n.revenue, currency)}</td>
            <td className="num" data-figure="attributed">
              <Drill to={drill({ show: 'converted', node: n.node })}>{n.attributed}</Drill>
            </td>
            <td className="num" data-figure="waiting">
              <Drill to={drill({ show: 'waiting', node: n.node })}>{waiting.get(n.node) ?? 0}</Drill>
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function Experiments({ list, variant, onVariant }: { list: Experiment[]; variant?: string; onVariant: (variant: string | undefined) => void }) {
  if (list.length === 0) return <p className="muted">This journey has no experiment nodes.</p>;
  return (
    <>
      {list.map((x) => (
        <section key={x.node} className="experiment" aria-label={`Experiment ${x.node}`}>
          <h3>
            {x.node}{' '}
            {x.winner ? (
              <span className="badge status-live">
                winner {x.winner}
                {x.decided_at ? `, ${when(x.decided_at)}` : ''}
              </span>
            ) : (
              <span className="muted small">
                {x.enough_data ? `leading: ${x.leader ?? 'none'}` : `not enough data yet (at least ${x.min_sample} per variant)`}
              </span>
            )}
          </h3>
          <table className="table compact" aria-label={`Variants of ${x.node}`}>
            <thead>
              <tr>
                <th>Variant</th>
                <th className="num">Entered</th>
                <th className="num">Converted</th>
                <th className="num">Conversion rate ({Math.round(x.confidence * 100)}% interval)</th>
                <th className="num">Lift over holdout</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {[...x.variants, ...(x.holdout ? [{ ...x.holdout, name: 'holdout' }] : [])].map((v) => (
                <tr key={v.name} data-variant={v.name}>
                  <td>
                    {v.name}
                    {v.name === x.winner && <span className="badge status-live">winner</span>}
                  </td>
                  <td className="num">{v.entered}</td>
                  <td className="num">{v.converted}</td>
                  <td className="num">{rateWithInterval(v.rate, v.rate_low, v.rate_high)}</td>
                  <td className="num">{v.name === 'holdout' ? '' : liftText(v.lift_over_holdout)}</td>
                  <td>
                    {/* The holdout has no nodes of its own: no report of it. */}
                    {v.name !== 'holdout' &&
                      (variant === `${x.node}:${v.name}` ? (
                        <button className="link" onClick={() => onVariant(undefined)}>
                          Whole journey
                        </button>
                      ) : (
                        <button className="link" onClick={() => onVariant(`${x.node}:${v.name}`)} aria-label={`Report of ${v.name}`}>
                          Its report
                        </button>
                      ))}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </section>
      ))}
    </>
  );
}
