// Failed messages, and the "Requeue failed" action: puts the failed messages that match a
// filter back in the queue (POST /v1/messages/requeue), e.g. after a provider outage longer than
// the retry lifetime or a fixed configuration error. Bounced and suppressed messages stay.
import { useState } from 'react';
import { api, describe, ok } from '../api/client';
import { ErrorBanner, Loading, StatusBadge, useLoad, when } from '../components/common';
import { emptyRequeueForm, failedListQuery, requeueFilter, type RequeueForm } from '../lib/requeue';
import { Link } from '../router';

interface FailedMessage {
  id: number;
  contact_id: number;
  user_id: string | null;
  journey_id: string | null;
  node: string | null;
  channel: string;
  recipient: string | null;
  status: string;
  error: string | null;
  attempts: number;
  created_at: string;
  failed_at: string | null;
}

export function Messages() {
  const [form, setForm] = useState<RequeueForm>(emptyRequeueForm);
  const [shown, setShown] = useState<RequeueForm>(emptyRequeueForm);
  const [error, setError] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const journeys = useLoad(() => ok<{ journeys: { id: string; name: string }[] }>(api.GET('/v1/journeys')), []);
  const failed = useLoad(
    () => ok<{ messages: FailedMessage[] }>(api.GET('/v1/messages', { params: { query: failedListQuery(shown) as never } })),
    [shown],
  );
  const set = (patch: Partial<RequeueForm>) => setForm({ ...form, ...patch });

  const requeue = async () => {
    setError(null);
    setNotice(null);
    const r = requeueFilter(form);
    if ('error' in r) {
      setError(r.error);
      return;
    }
    if (!window.confirm('Put every failed message that matches this filter back in the queue?')) return;
    setBusy(true);
    try {
      const body = await ok<{ requeued: number }>(api.POST('/v1/messages/requeue', { body: r.filter }));
      setNotice(`Requeued ${body.requeued} failed message${body.requeued === 1 ? '' : 's'}.`);
      await failed.reload();
    } catch (e) {
      setError(describe(e));
    } finally {
      setBusy(false);
    }
  };

  const messages = failed.data?.messages ?? [];
  return (
    <div className="page">
      <h1>Failed messages</h1>
      <p className="muted">
        Messages that could not be delivered: a permanent error, or temporary errors for the whole retry lifetime. Requeueing
        keeps each message&apos;s id and idempotency key and starts its attempts over; bounced and suppressed messages are never
        requeued.
      </p>
      <form
        className="filters"
        aria-label="Requeue filter"
        onSubmit={(e) => {
          e.preventDefault();
          setShown(form);
        }}
      >
        <label>
          Journey
          <select value={form.journeyId} onChange={(e) => set({ journeyId: e.target.value })}>
            <option value="">any</option>
            {(journeys.data?.journeys ?? []).map((j) => (
              <option key={j.id} value={j.id}>
                {j.name || j.id}
              </option>
            ))}
          </select>
        </label>
        <label>
          Channel
          <select value={form.channel} onChange={(e) => set({ channel: e.target.value as RequeueForm['channel'] })}>
            <option value="">any</option>
            <option value="email">email</option>
            <option value="sms">sms</option>
            <option value="webhook">webhook</option>
          </select>
        </label>
        <label>
          Failed since
          <input placeholder="2h, 3d or 2025-03-01T09:00" value={form.failedSince} onChange={(e) => set({ failedSince: e.target.value })} />
        </label>
        <label>
          Failed until
          <input placeholder="now" value={form.failedUntil} onChange={(e) => set({ failedUntil: e.target.value })} />
        </label>
        <label>
          Error contains
          <input placeholder="connection refused" value={form.error} onChange={(e) => set({ error: e.target.value })} />
        </label>
        <button type="submit">Show</button>
        <button type="button" className="primary" disabled={busy} onClick={() => void requeue()}>
          Requeue failed
        </button>
      </form>
      <ErrorBanner error={error ?? failed.error} onClose={() => setError(null)} />
      {notice && (
        <div className="notice" role="status">
          {notice}
        </div>
      )}
      {failed.loading && !failed.data ? (
        <Loading what="failed messages" />
      ) : (
        <table className="table" aria-label="Failed messages">
          <thead>
            <tr>
              <th>Id</th>
              <th>Contact</th>
              <th>Journey</th>
              <th>Channel</th>
              <th>Recipient</th>
              <th>Failed</th>
              <th>Attempts</th>
              <th>Error</th>
            </tr>
          </thead>
          <tbody>
            {messages.length === 0 && (
              <tr>
                <td colSpan={8} className="muted">
                  No failed message.
                </td>
              </tr>
            )}
            {messages.map((m) => (
              <tr key={m.id}>
                <td>
                  #{m.id} <StatusBadge status={m.status} />
                </td>
                <td>
                  <Link to={`/contacts/${m.contact_id}`}>{m.user_id ?? `#${m.contact_id}`}</Link>
                </td>
                <td>{m.journey_id ?? '—'}</td>
                <td>{m.channel}</td>
                <td>{m.recipient ?? '—'}</td>
                <td>{when(m.failed_at ?? m.created_at)}</td>
                <td>{m.attempts}</td>
                <td className="error-text">{m.error}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}
