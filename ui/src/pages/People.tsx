// Who is behind a number of a journey's report: the contacts waiting at a node now (and until
// when), a node's (or the journey's) messages with what became of each, or its conversions,
// a page at a time (More), narrowed by channel and status for messages, as CSV, each row
// linking to the contact's timeline. Everything comes from GET /v1/journeys/{id}/people as it
// answers; lib/people.ts shapes the address and the queries. The address keeps the parameters,
// so the report's numbers link here and a reload shows the same list.
import { useEffect, useRef, useState } from 'react';
import { api, describe, ok, ServerError } from '../api/client';
import { ErrorBanner, Loading, StatusBadge, useLoad, when } from '../components/common';
import { JourneyTabs } from '../components/JourneyTabs';
import {
  addressOfPeople,
  CHANNELS,
  CSV_PAGE,
  csvNextCursor,
  joinCsvPages,
  MESSAGE_STATUSES,
  PEOPLE_KINDS,
  peopleFromAddress,
  peopleQuery,
  peopleSearch,
  peopleTitle,
  reportPathOf,
  type PeopleKind,
  type PeopleParams,
} from '../lib/people';
import { money } from '../lib/report';
import { Link } from '../router';

interface PersonRow {
  cursor: number;
  contact_id: number;
  user_id?: string | null;
  email?: string | null;
  node?: string | null;
  entered_at?: string | null;
  wake_at?: string | null;
  message_id?: number | null;
  channel?: string | null;
  status?: string | null;
  sent_at?: string | null;
  human_opened_at?: string | null;
  human_clicked_at?: string | null;
  opened_at?: string | null;
  clicked_at?: string | null;
  unsubscribed_at?: string | null;
  complained_at?: string | null;
  converted_at?: string | null;
  revenue?: number | null;
  currency?: string | null;
}

/** The rows shown, the parameters they answer and where the next page starts (none: last). */
interface Listing {
  rows: PersonRow[];
  next: number | null;
  params: PeopleParams;
}

const SHOW_LABEL: Record<PeopleKind, string> = { waiting: 'Waiting now', messaged: 'Messaged', converted: 'Converted' };

export function People({ journeyId }: { journeyId: string }) {
  const [params, setParams] = useState<PeopleParams>(() => peopleFromAddress(window.location.search));
  const [listing, setListing] = useState<Listing | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const journey = useLoad(
    () => ok<{ id: string; name: string; status: string }>(api.GET('/v1/journeys/{id}', { params: { path: { id: journeyId } } })),
    [journeyId],
  );
  const stats = useLoad(
    () => ok<{ nodes: { node: string }[] }>(api.GET('/v1/journeys/{id}/stats', { params: { path: { id: journeyId } } })),
    [journeyId],
  );

  // Only the answer to the latest request is shown (a filter changed while a page loads).
  const latest = useRef(0);
  /** Loads the page after `after` (none: the first) of `p`, adding it to what is shown. */
  const load = async (p: PeopleParams, after: number | null) => {
    const seq = ++latest.current;
    setBusy(true);
    setError(null);
    try {
      const r = await ok<{ people: PersonRow[]; next_cursor?: number | null }>(
        api.GET('/v1/journeys/{id}/people', { params: { path: { id: journeyId }, query: peopleQuery(p, after) } }),
      );
      if (seq !== latest.current) return;
      setListing((prev) => ({
        rows: after === null || !prev ? r.people : [...prev.rows, ...r.people],
        next: r.next_cursor ?? null,
        params: p,
      }));
    } catch (e) {
      if (seq === latest.current) setError(describe(e));
    } finally {
      if (seq === latest.current) setBusy(false);
    }
  };

  // The address keeps the parameters; a change starts the list over.
  useEffect(() => {
    const search = addressOfPeople(params);
    if (search !== window.location.search) window.history.replaceState(null, '', `${window.location.pathname}${search}`);
    void load(params, null);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [journeyId, params]);

  const set = (change: Partial<PeopleParams>) => setParams((p) => peopleFromAddress(addressOfPeople({ ...p, ...change })));

  const download = async () => {
    setError(null);
    try {
      // Every page, CSV_PAGE rows at a time, as one file.
      const pages: string[] = [];
      let after: number | null = null;
      do {
        const res = await fetch(`/v1/journeys/${encodeURIComponent(journeyId)}/people?${peopleSearch(params, after, CSV_PAGE)}`, {
          headers: { Accept: 'text/csv' },
          credentials: 'same-origin',
        });
        if (!res.ok) throw new ServerError(res.status, await res.json().catch(() => null));
        const text = await res.text();
        pages.push(text);
        after = csvNextCursor(params.show, text, CSV_PAGE);
      } while (after !== null);
      const url = URL.createObjectURL(new Blob([joinCsvPages(pages)], { type: 'text/csv' }));
      const a = document.createElement('a');
      a.href = url;
      a.download = `${journeyId}-${params.show}${params.node ? `-${params.node}` : ''}${params.status ? `-${params.status}` : ''}.csv`;
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 1000);
    } catch (e) {
      setError(describe(e));
    }
  };

  const reportLink = reportPathOf(journeyId, params);
  const rows = listing?.rows ?? [];
  const shown = listing?.params.show ?? params.show;
  const nodes = stats.data?.nodes.map((n) => n.node) ?? [];
  return (
    <div className="page people">
      <div className="page-head">
        <div>
          <Link to={reportLink} className="muted small">
            ← Report
          </Link>
          <h1>
            {journey.data?.name ?? journeyId} {journey.data && <StatusBadge status={journey.data.status} />}
          </h1>
        </div>
      </div>
      <JourneyTabs journeyId={journeyId} active="report" />
      <h2 data-testid="people-title">{peopleTitle(params)}</h2>
      <p className="muted small">
        All of the time, not only a report&apos;s range; {params.show === 'waiting' ? 'enrollments waiting now' : params.show === 'messaged' ? 'oldest message first' : 'one conversion per enrollment'}.
      </p>
      <div className="report-controls" role="group" aria-label="People filter">
        <label>
          <span className="muted small">Show</span>
          <select aria-label="Show" value={params.show} onChange={(e) => set({ show: e.target.value as PeopleKind })}>
            {PEOPLE_KINDS.map((k) => (
              <option key={k} value={k}>
                {SHOW_LABEL[k]}
              </option>
            ))}
          </select>
        </label>
        <label>
          <span className="muted small">Node</span>
          <select aria-label="Node" value={params.node ?? ''} onChange={(e) => set({ node: e.target.value || undefined })}>
            <option value="">All nodes</option>
            {[...new Set([...(params.node ? [params.node] : []), ...nodes])].map((n) => (
              <option key={n} value={n}>
                {n}
              </option>
            ))}
          </select>
        </label>
        {params.show === 'messaged' && (
          <>
            <label>
              <span className="muted small">Channel</span>
              <select aria-label="Channel" value={params.channel ?? ''} onChange={(e) => set({ channel: e.target.value || undefined })}>
                <option value="">any</option>
                {CHANNELS.map((c) => (
                  <option key={c} value={c}>
                    {c}
                  </option>
                ))}
              </select>
            </label>
            <label>
              <span className="muted small">Status</span>
              <select aria-label="Status" value={params.status ?? ''} onChange={(e) => set({ status: e.target.value || undefined })}>
                <option value="">any</option>
                {MESSAGE_STATUSES.map((s) => (
                  <option key={s} value={s}>
                    {s}
                  </option>
                ))}
              </select>
            </label>
          </>
        )}
        <span className="spacer" />
        <button className="link" onClick={() => void download()}>
          Download CSV
        </button>
      </div>
      <ErrorBanner error={journey.error ?? stats.error} />
      <ErrorBanner error={error} onClose={() => setError(null)} />
      {!listing && busy ? (
        <Loading what="the contacts" />
      ) : (
        <>
          <table className="table compact" aria-label="People" data-show={shown}>
            <thead>
              <tr>
                <th>Contact</th>
                <th>Email</th>
                <th>Node</th>
                {shown === 'waiting' && (
                  <>
                    <th>Entered</th>
                    <th>Waits until</th>
                  </>
                )}
                {shown === 'messaged' && (
                  <>
                    <th>Channel</th>
                    <th>Status</th>
                    <th>Sent</th>
                    <th>Opened</th>
                    <th>Clicked</th>
                    <th>Unsubscribed</th>
                    <th>Complained</th>
                  </>
                )}
                {shown === 'converted' && (
                  <>
                    <th>Converted</th>
                    <th className="num">Revenue</th>
                    <th>Message credited</th>
                  </>
                )}
              </tr>
            </thead>
            <tbody>
              {rows.length === 0 && (
                <tr>
                  <td colSpan={10} className="muted">
                    Nobody.
                  </td>
                </tr>
              )}
              {rows.map((r) => (
                <tr key={r.cursor} data-contact={r.contact_id} data-cursor={r.cursor}>
                  <td>
                    <Link to={`/contacts/${r.contact_id}`}>{r.user_id ?? `#${r.contact_id}`}</Link>
                  </td>
                  <td>{r.email ?? '—'}</td>
                  <td>{r.node ?? '—'}</td>
                  {shown === 'waiting' && (
                    <>
                      <td>{when(r.entered_at)}</td>
                      <td>{r.wake_at ? when(r.wake_at) : <span className="muted">an event</span>}</td>
                    </>
                  )}
                  {shown === 'messaged' && (
                    <>
                      <td>{r.channel ?? '—'}</td>
                      <td>{r.status ? <StatusBadge status={r.status} /> : '—'}</td>
                      <td>{when(r.sent_at)}</td>
                      <td title={r.opened_at && !r.human_opened_at ? 'by a machine only' : undefined}>
                        {when(r.human_opened_at) || (r.opened_at ? <span className="muted">machine</span> : '')}
                      </td>
                      <td title={r.clicked_at && !r.human_clicked_at ? 'by a machine only' : undefined}>
                        {when(r.human_clicked_at) || (r.clicked_at ? <span className="muted">machine</span> : '')}
                      </td>
                      <td>{when(r.unsubscribed_at)}</td>
                      <td>{when(r.complained_at)}</td>
                    </>
                  )}
                  {shown === 'converted' && (
                    <>
                      <td>{when(r.converted_at)}</td>
                      <td className="num">{r.revenue === null || r.revenue === undefined ? '—' : money(r.revenue, r.currency ?? undefined)}</td>
                      <td>{r.message_id ? `#${r.message_id}` : <span className="muted">none (the node)</span>}</td>
                    </>
                  )}
                </tr>
              ))}
            </tbody>
          </table>
          <p className="muted small" data-testid="people-count">
            {rows.length} shown{listing?.next !== null && listing?.next !== undefined ? ', more to come' : ''}
          </p>
          {listing?.next !== null && listing?.next !== undefined && (
            <button disabled={busy} onClick={() => void load(listing.params, listing.next)}>
              More
            </button>
          )}
        </>
      )}
    </div>
  );
}
