import { useEffect, useState } from 'react';
import { api, describe, ok } from '../api/client';
import { ErrorBanner, Loading, StatusBadge, useLoad } from '../components/common';
import { money, overviewById, pct, type JourneyOverview } from '../lib/report';
import { Link, navigate } from '../router';

interface JourneySummary {
  id: string;
  name: string;
  status: string;
  live_version: number | null;
  entered: number;
  active: number;
  converted: number;
  /** Versions the engine cannot use (unreadable or no longer valid), with the reason. */
  broken?: { version: number | null; reason: string }[];
}

interface GalleryItem {
  file: string;
  id: string;
  name: string;
  description: string | null;
  document: Record<string, unknown>;
}

const ID_RE = /^[A-Za-z0-9_-]{1,100}$/;

export function slug(name: string): string {
  return name
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 100);
}

export function JourneyList() {
  const list = useLoad(() => ok<{ journeys: JourneySummary[] }>(api.GET('/v1/journeys')), []);
  // The last 30 days of every journey, in one request (GET /v1/reports/overview).
  const overview = useLoad(() => ok<{ journeys: JourneyOverview[] }>(api.GET('/v1/reports/overview', { params: { query: { days: 30 } } })), []);
  const figures = overviewById(overview.data?.journeys ?? []);
  const gallery = useLoad(() => ok<{ templates: GalleryItem[] }>(api.GET('/v1/journey-templates')), []);
  const [creating, setCreating] = useState<GalleryItem | 'blank' | null>(null);
  // The numbers move while journeys run.
  useEffect(() => {
    const t = setInterval(() => {
      void list.reload();
      void overview.reload();
    }, 5000);
    return () => clearInterval(t);
  }, [list.reload, overview.reload]); // eslint-disable-line react-hooks/exhaustive-deps

  return (
    <div className="page">
      <div className="page-head">
        <h1>Journeys</h1>
        <button className="primary" onClick={() => setCreating('blank')}>
          New journey
        </button>
      </div>
      <ErrorBanner error={list.error} />
      <ErrorBanner error={overview.error} />
      {list.loading && !list.data && <Loading what="journeys" />}
      {list.data && (
        <table className="table" aria-label="Journeys">
          <thead>
            <tr>
              <th>Name</th>
              <th>Status</th>
              <th>Version</th>
              <th className="num">Entered</th>
              <th className="num">Active now</th>
              <th className="num">Converted</th>
              <th className="num" title="Messages sent in the last 30 days">Sent (30 d)</th>
              <th className="num" title="Opened by people, of delivered, last 30 days">Open rate</th>
              <th className="num" title="Clicked by people, of delivered, last 30 days">Click rate</th>
              <th className="num" title="Converted, of entered, last 30 days">Conversion rate</th>
              <th className="num" title="Revenue of conversions in the last 30 days">Revenue (30 d)</th>
            </tr>
          </thead>
          <tbody>
            {list.data.journeys.length === 0 && (
              <tr>
                <td colSpan={11} className="muted">
                  No journeys yet: start from scratch or from a template below.
                </td>
              </tr>
            )}
            {list.data.journeys.map((j) => {
              const f = figures.get(j.id);
              return (
                <tr key={j.id} data-journey={j.id}>
                  <td>
                    <Link to={`/journeys/${encodeURIComponent(j.id)}`}>{j.name}</Link>
                    <div className="muted small">{j.id}</div>
                  </td>
                  <td>
                    <StatusBadge status={j.status} />
                    {(j.broken ?? []).map((b) => (
                      <div key={b.version ?? 0} className="badge status-broken" title={b.reason}>
                        version {b.version} broken
                      </div>
                    ))}
                  </td>
                  <td>{j.live_version ?? '—'}</td>
                  <td className="num">{j.entered}</td>
                  <td className="num">{j.active}</td>
                  <td className="num">{j.converted}</td>
                  <td className="num" data-figure="sent">{f ? f.sent : '—'}</td>
                  <td className="num" data-figure="open_rate">{pct(f?.open_rate)}</td>
                  <td className="num" data-figure="click_rate">{pct(f?.click_rate)}</td>
                  <td className="num" data-figure="conversion_rate">{pct(f?.conversion_rate)}</td>
                  <td className="num" data-figure="revenue">{f ? money(f.revenue) : '—'}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
      <h2>Start from a template</h2>
      <ErrorBanner error={gallery.error} />
      {gallery.loading && !gallery.data && <Loading what="templates" />}
      <div className="gallery">
        {gallery.data?.templates.map((t) => (
          <button key={t.file} className="gallery-item" onClick={() => setCreating(t)}>
            <strong>{t.name ?? t.id}</strong>
            <span className="muted">{t.description ?? t.file}</span>
          </button>
        ))}
      </div>
      {creating && <CreateDialog from={creating} onClose={() => setCreating(null)} />}
    </div>
  );
}

function CreateDialog({ from, onClose }: { from: GalleryItem | 'blank'; onClose: () => void }) {
  const [name, setName] = useState(from === 'blank' ? '' : from.name ?? '');
  const [id, setId] = useState(from === 'blank' ? '' : from.id ?? '');
  const [touchedId, setTouchedId] = useState(from !== 'blank');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const effectiveId = touchedId ? id : slug(name);
  const submit = async () => {
    setBusy(true);
    setError(null);
    try {
      const document = from === 'blank' ? { nodes: [], edges: [] } : structuredClone(from.document);
      const body = { ...document, id: effectiveId, name: name || effectiveId };
      await ok(api.POST('/v1/journeys', { body: body as never }));
      navigate(`/journeys/${encodeURIComponent(effectiveId)}`);
    } catch (e) {
      setError(describe(e));
      setBusy(false);
    }
  };
  return (
    <div className="modal-backdrop" onClick={onClose}>
      <form
        className="modal"
        role="dialog"
        aria-label="New journey"
        onClick={(e) => e.stopPropagation()}
        onSubmit={(e) => {
          e.preventDefault();
          void submit();
        }}
      >
        <h2>{from === 'blank' ? 'New journey' : `New journey from “${from.name}”`}</h2>
        <label htmlFor="new-name">Name</label>
        <input id="new-name" value={name} onChange={(e) => setName(e.target.value)} autoFocus />
        <label htmlFor="new-id">Id (used in URLs)</label>
        <input
          id="new-id"
          value={effectiveId}
          onChange={(e) => {
            setTouchedId(true);
            setId(e.target.value);
          }}
        />
        {effectiveId !== '' && !ID_RE.test(effectiveId) && <div className="field-error">Letters, digits, - and _ only.</div>}
        <ErrorBanner error={error} />
        <div className="actions">
          <button type="button" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" className="primary" disabled={busy || !ID_RE.test(effectiveId)}>
            Create
          </button>
        </div>
      </form>
    </div>
  );
}
