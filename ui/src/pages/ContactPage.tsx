// One contact: traits, consent (changed by an admin with a reason, which the timeline keeps),
// lists, journeys, and the timeline of events, steps and messages, newest first.
import { useState } from 'react';
import { api, describe, ok } from '../api/client';
import { ErrorBanner, Loading, StatusBadge, useLoad, when } from '../components/common';
import { type Entry, engagementText, timelineText } from '../lib/contacts';
import { Link } from '../router';

interface Contact {
  id: number;
  user_id: string | null;
  email: string | null;
  phone: string | null;
  timezone: string | null;
  anonymous_ids: string[];
  traits: Record<string, unknown>;
  lists: Array<string | { name: string }>;
  enrollments: Array<{ id: number; journey_id: string; version: number; node: string; status: string; key: string | null; entered_at: string; wake_at: string | null }>;
  created_at: string;
}


export function ContactPage({ contactId }: { contactId: string }) {
  const contact = useLoad(() => ok<Contact>(api.GET('/v1/contacts/{id}', { params: { path: { id: Number(contactId) } } })), [contactId]);
  const timeline = useLoad(() => ok<{ entries: Entry[] }>(api.GET('/v1/contacts/{id}/timeline', { params: { path: { id: Number(contactId) } } })), [contactId]);
  const messages = useLoad(
    () => ok<{ messages: Message[] }>(api.GET('/v1/messages', { params: { query: { contact_id: Number(contactId), limit: 1000, preview: true } } })),
    [contactId],
  );
  const subscriptions = useLoad(
    () => ok<{ subscriptions: Array<{ channel: string; topic: string; status: string; updated_at: string }> }>(api.GET('/v1/contacts/{id}/subscriptions', { params: { path: { id: Number(contactId) } } })),
    [contactId],
  );
  const byId = new Map((messages.data?.messages ?? []).map((m) => [m.id, m]));
  /** The subscription whose "change" was clicked, to start the form from. */
  const [editing, setEditing] = useState<Subscription | null>(null);
  const c = contact.data;
  return (
    <div className="page contact-page">
      <Link to="/contacts" className="muted">
        ← Contacts
      </Link>
      <ErrorBanner error={contact.error} />
      {contact.loading && !c && <Loading what="the contact" />}
      {c && (
        <>
          <h1>
            {c.user_id ?? c.email ?? `Contact #${c.id}`} <span className="muted small">#{c.id}</span>
          </h1>
          <div className="cards">
            <section className="card">
              <h2>Traits</h2>
              <dl className="kv" data-testid="traits">
                {[['email', c.email], ['phone', c.phone], ['timezone', c.timezone]].map(([k, v]) => (
                  <div key={k as string}>
                    <dt>{k}</dt>
                    <dd>{(v as string) ?? '—'}</dd>
                  </div>
                ))}
                {Object.entries(c.traits ?? {})
                  .filter(([k]) => !['email', 'phone', 'timezone'].includes(k))
                  .map(([k, v]) => (
                    <div key={k}>
                      <dt>{k}</dt>
                      <dd>{typeof v === 'string' ? v : JSON.stringify(v)}</dd>
                    </div>
                  ))}
              </dl>
              {c.anonymous_ids?.length > 0 && <p className="muted small">Anonymous ids: {c.anonymous_ids.join(', ')}</p>}
              <h2>Subscriptions</h2>
              {subscriptions.data?.subscriptions.length ? (
                <dl className="kv" data-testid="subscriptions">
                  {subscriptions.data.subscriptions.map((x) => (
                    <div key={`${x.channel}/${x.topic}`}>
                      <dt>
                        {x.channel} · {x.topic === '*' ? 'all marketing' : x.topic}
                      </dt>
                      <dd>
                        <StatusBadge status={x.status} />{' '}
                        <button className="link small" onClick={() => setEditing({ channel: x.channel, topic: x.topic, status: x.status })}>
                          change
                        </button>
                      </dd>
                    </div>
                  ))}
                </dl>
              ) : (
                <p className="muted small">No subscription records: counts as subscribed.</p>
              )}
              <ConsentEditor
                contactId={c.id}
                start={editing}
                onSaved={() => {
                  void subscriptions.reload();
                  void timeline.reload();
                }}
              />
            </section>
            <section className="card">
              <h2>Lists</h2>
              {c.lists?.length ? (
                <ul>
                  {c.lists.map((l) => {
                    const name = typeof l === 'string' ? l : l.name;
                    return <li key={name}>{name}</li>;
                  })}
                </ul>
              ) : (
                <p className="muted">In no list.</p>
              )}
              <h2>Journeys</h2>
              {c.enrollments?.length ? (
                <table className="table compact" data-testid="enrollments">
                  <thead>
                    <tr>
                      <th>Journey</th>
                      <th>Status</th>
                      <th>At node</th>
                      <th>Entered</th>
                    </tr>
                  </thead>
                  <tbody>
                    {c.enrollments.map((e) => (
                      <tr key={e.id}>
                        <td>
                          <Link to={`/journeys/${encodeURIComponent(e.journey_id)}`}>{e.journey_id}</Link> v{e.version}
                          {e.key && <span className="muted small"> key {e.key}</span>}
                        </td>
                        <td>
                          <StatusBadge status={e.status} />
                        </td>
                        <td>
                          {e.node}
                          {e.wake_at && <div className="muted small">until {when(e.wake_at)}</div>}
                        </td>
                        <td>{when(e.entered_at)}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              ) : (
                <p className="muted">In no journey.</p>
              )}
            </section>
          </div>
        </>
      )}
      <div className="page-head">
        <h2>Timeline</h2>
        <button
          className="small"
          onClick={() => {
            void contact.reload();
            void timeline.reload();
          }}
          disabled={timeline.loading}
        >
          Refresh
        </button>
      </div>
      <ErrorBanner error={timeline.error} />
      {timeline.loading && !timeline.data && <Loading what="the timeline" />}
      {timeline.data && (
        <ol className="timeline" data-testid="timeline">
          {timeline.data.entries.length === 0 && <li className="muted">Nothing yet.</li>}
          {/* Newest first: what happened last is what one comes to see. */}
          {[...timeline.data.entries].reverse().map((e, i) => (
            <li key={i} className={`tl tl-${e.type}`}>
              <time>{when(e.at)}</time>
              <span className={`badge kind-${e.type}`}>{e.type}</span>
              <TimelineText entry={e} />
              {e.type === 'event' && e.properties && Object.keys(e.properties).length > 0 && <RawJson value={e.properties} />}
              {e.type === 'message' && byId.has(e.message_id) && engagementText(byId.get(e.message_id)!, when) && (
                <span className="muted small engagement">{engagementText(byId.get(e.message_id)!, when)}</span>
              )}
              {e.type === 'message' && byId.has(e.message_id) && <MessageView message={byId.get(e.message_id)!} />}
            </li>
          ))}
        </ol>
      )}
    </div>
  );
}

/** A channel, topic and status of a contact's consent. */
interface Subscription {
  channel: string;
  topic: string;
  status: string;
}

/** Changes one subscription, with the reason the admin gives (recorded on the timeline with
 * the change's event). */
function ConsentEditor({ contactId, start, onSaved }: { contactId: number; start: Subscription | null; onSaved: () => void }) {
  const blank: Subscription = { channel: 'email', topic: '*', status: 'unsubscribed' };
  const [form, setForm] = useState<Subscription>(start ?? blank);
  const [reason, setReason] = useState('');
  const [saving, setSaving] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [saved, setSaved] = useState<string | null>(null);
  // A "change" clicked on a subscription starts the form from it.
  const [startedFrom, setStartedFrom] = useState(start);
  if (start !== startedFrom) {
    setStartedFrom(start);
    if (start) setForm({ ...start, status: start.status === 'subscribed' ? 'unsubscribed' : 'subscribed' });
  }
  const topics = useLoad(() => ok<{ topics: Array<{ channel: string; topic: string }> }>(api.GET('/v1/topics')), []);
  const save = async () => {
    setSaving(true);
    setError(null);
    setSaved(null);
    try {
      const topic = form.topic.trim() || '*';
      const r = await ok<{ previous_status?: string | null }>(
        api.PUT('/v1/contacts/{id}/subscriptions/{channel}/{topic}', {
          params: { path: { id: contactId, channel: form.channel, topic } },
          body: { status: form.status as 'subscribed' | 'unsubscribed', reason: reason.trim() },
        }),
      );
      const what = `${form.channel} · ${topic === '*' ? 'all marketing' : topic}`;
      // An unchanged status records no event, so neither its reason.
      setSaved(r.previous_status === form.status ? `Nothing changed: ${what} was already ${form.status}.` : `Saved: ${what} is ${form.status}.`);
      setReason('');
      onSaved();
    } catch (e) {
      setError(describe(e));
    } finally {
      setSaving(false);
    }
  };
  return (
    <form
      className="consent-edit"
      aria-label="Change consent"
      onSubmit={(e) => {
        e.preventDefault();
        void save();
      }}
    >
      <select aria-label="Channel" value={form.channel} onChange={(e) => setForm({ ...form, channel: e.target.value })}>
        <option value="email">email</option>
        <option value="sms">sms</option>
      </select>
      <input aria-label="Topic" list="consent-topics" title="A topic, or * for all marketing" value={form.topic} onChange={(e) => setForm({ ...form, topic: e.target.value })} />
      <datalist id="consent-topics">
        <option value="*">all marketing</option>
        {(topics.data?.topics ?? [])
          .filter((t) => t.channel === form.channel)
          .map((t) => (
            <option key={t.topic} value={t.topic} />
          ))}
      </datalist>
      <select aria-label="Status" value={form.status} onChange={(e) => setForm({ ...form, status: e.target.value })}>
        {/* Not `pending`: only double opt-in sets it, and a change to it records no event to
            keep the reason with. */}
        <option value="subscribed">subscribed</option>
        <option value="unsubscribed">unsubscribed</option>
      </select>
      <input className="reason" aria-label="Reason" placeholder="Reason (kept on the timeline)" maxLength={500} value={reason} onChange={(e) => setReason(e.target.value)} required />
      <button type="submit" disabled={saving || !reason.trim()}>
        Change consent
      </button>
      <ErrorBanner error={error} />
      {saved && <span className="ok-text">{saved}</span>}
    </form>
  );
}

interface Message {
  id: number;
  channel: string;
  recipient: string | null;
  subject: string | null;
  html: string | null;
  text: string | null;
  status: string;
  error: string | null;
  opened_at?: string | null;
  clicked_at?: string | null;
}

/** A sent email's HTML for an admin to look at. The server gives it without the open pixel and
 * with untracked links (`preview: true`); in case one is left (a pixel signed with an older
 * tracking secret), nothing remote loads here either and links open nowhere (a link meant for a
 * new window is refused by the frame's sandbox). */
function withoutRemoteLoads(html: string): string {
  const policy = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; font-src data:";
  return `<meta http-equiv="Content-Security-Policy" content="${policy}"><base target="_blank">${html}`;
}

/** The message as it was rendered, on demand (email HTML in a sandboxed frame). */
function MessageView({ message }: { message: Message }) {
  const [open, setOpen] = useState(false);
  return (
    <span className="message-view">
      <button className="link small" onClick={() => setOpen(!open)} aria-expanded={open}>
        {open ? 'hide' : 'show'}
      </button>
      {open && (
        <div className="message-body">
          {message.recipient && <div className="muted small">to {message.recipient}</div>}
          {message.html ? (
            <>
              <div className="muted small">Remote images are not loaded and links do not open here, so that looking at a message is not counted as its contact opening or clicking it.</div>
              <iframe title={`Message ${message.id}`} sandbox="" srcDoc={withoutRemoteLoads(message.html)} />
            </>
          ) : (
            <pre className="text-part">{message.text}</pre>
          )}
        </div>
      )}
    </span>
  );
}

/** A value as JSON, on demand. */
function RawJson({ value }: { value: unknown }) {
  const [open, setOpen] = useState(false);
  return (
    <span className="message-view">
      <button className="link small" onClick={() => setOpen(!open)} aria-expanded={open}>
        {open ? 'hide JSON' : 'JSON'}
      </button>
      {open && <pre className="text-part">{JSON.stringify(value, null, 2)}</pre>}
    </span>
  );
}

function TimelineText({ entry }: { entry: Entry }) {
  return <span className="tl-text">{timelineText(entry)}</span>;
}
