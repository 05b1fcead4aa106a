// One contact: traits, lists, journeys, and the timeline of events, steps and messages.
import { api, ok } from '../api/client';
import { ErrorBanner, Loading, StatusBadge, useLoad, when } from '../components/common';
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

type Entry = Record<string, any> & { type: string; at: string };

export function ContactPage({ contactId }: { contactId: string }) {
  const contact = useLoad(() => ok<Contact>(api.GET('/v1/contacts/{id}', { params: { path: { id: contactId } } })), [contactId]);
  const timeline = useLoad(() => ok<{ entries: Entry[] }>(api.GET('/v1/contacts/{id}/timeline', { params: { path: { id: contactId } } })), [contactId]);
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
      <h2>Timeline</h2>
      <ErrorBanner error={timeline.error} />
      {timeline.loading && !timeline.data && <Loading what="the timeline" />}
      {timeline.data && (
        <ol className="timeline" data-testid="timeline">
          {timeline.data.entries.length === 0 && <li className="muted">Nothing yet.</li>}
          {timeline.data.entries.map((e, i) => (
            <li key={i} className={`tl tl-${e.type}`}>
              <time>{when(e.at)}</time>
              <span className={`badge kind-${e.type}`}>{e.type}</span>
              <TimelineText entry={e} />
            </li>
          ))}
        </ol>
      )}
    </div>
  );
}

export function timelineText(e: Entry): string {
  switch (e.type) {
    case 'event':
      return `${e.name}${e.properties && Object.keys(e.properties).length ? ` ${JSON.stringify(e.properties)}` : ''}`;
    case 'step':
      return `${e.journey_id} › ${e.node}: ${e.action}${e.detail ? ` ${JSON.stringify(e.detail)}` : ''}`;
    case 'message':
      return [e.channel, e.status, e.template && `template ${e.template}`, e.subject && `“${e.subject}”`, e.recipient && `to ${e.recipient}`, e.error].filter(Boolean).join(' · ');
    default: {
      const { type: _t, at: _a, ...rest } = e;
      return JSON.stringify(rest);
    }
  }
}

function TimelineText({ entry }: { entry: Entry }) {
  return <span className="tl-text">{timelineText(entry)}</span>;
}
