// Broadcasts: one email or SMS to a segment or a list, minus exclusions (docs/api.md#broadcasts).
// Every broadcast with its progress; a draft written in a form whose server errors appear at the
// field they concern; a test send of its template to a few addresses; sending after a
// confirmation that names the audience and its exact size (minus exclusions, as the server counts
// it); then live progress (asked for every 1.5 s while the engine works on it) with pause, resume
// and cancel as the status allows, an A/B test's results, and a paged list of the broadcast's
// messages (/broadcasts/{id}/messages: the Messages page lists failed messages only). The logic is
// in ui/src/lib/broadcasts.ts.
import { BroadcastReport } from '../components/BroadcastReport';
import { type ReactNode, useEffect, useState } from 'react';
import { api, describe, ok, ServerError } from '../api/client';
import { ErrorBanner, Loading, StatusBadge, useLoad, when } from '../components/common';
import {
  allowedActions,
  type AudienceChoice,
  audienceFromKey,
  audienceKey,
  audienceRequest,
  broadcastDocument,
  broadcastForm,
  type BroadcastForm,
  type BroadcastView,
  describeAudience,
  describePValue,
  emptyBroadcastForm,
  type FieldErrors,
  fieldErrors,
  MAX_TEST_ADDRESSES,
  MAX_TEST_VARIANTS,
  messageCounts,
  type MessageRow,
  MESSAGES_PAGE_SIZE,
  nextAfter,
  overrides,
  percent,
  progressOf,
  stillMoving,
  testAddresses,
  testStatus,
  type TestView,
  variantLetter,
} from '../lib/broadcasts';
import { Link, navigate } from '../router';

/** How often a broadcast the engine works on is asked for again. */
const POLL_MS = 1500;
/** How long the audience choice must stay unchanged before it is counted again: picking
 * through a select or adding exclusions one by one asks once, not at every step. */
const AUDIENCE_DEBOUNCE_MS = 300;

interface TemplateSummary {
  id: string;
  channel: 'email' | 'sms';
  name?: string | null;
}
interface SegmentSummary {
  id: string;
  name: string;
  members: number;
}
interface ListSummary {
  name: string;
  members: number;
}

/** Asks again every `ms` while `active`. */
function usePolling(reload: () => Promise<void>, active: boolean, ms = POLL_MS) {
  useEffect(() => {
    if (!active) return;
    const t = window.setInterval(() => void reload(), ms);
    return () => window.clearInterval(t);
  }, [active, reload, ms]);
}

export function Broadcasts({ selected, showMessages = false }: { selected?: string; showMessages?: boolean }) {
  if (selected) return <BroadcastPage key={selected} id={selected} showMessages={showMessages} />;
  return <BroadcastList />;
}

function BroadcastList() {
  const list = useLoad(() => ok<{ broadcasts: BroadcastView[] }>(api.GET('/v1/broadcasts')), []);
  // Any id is a broadcast's, so creating one has no page of its own.
  const [creating, setCreating] = useState(false);
  usePolling(list.reload, !creating && (list.data?.broadcasts.some(stillMoving) ?? false));
  if (creating)
    return (
      <div className="page">
        <button className="link muted" onClick={() => setCreating(false)}>
          ← Broadcasts
        </button>
        <h1>New broadcast</h1>
        <BroadcastEditor onSaved={(b) => navigate(`/broadcasts/${encodeURIComponent(b.id)}`)} onCancel={() => setCreating(false)} />
      </div>
    );
  return (
    <div className="page">
      <div className="page-head">
        <h1>Broadcasts</h1>
        <button className="primary" onClick={() => setCreating(true)}>
          New broadcast
        </button>
      </div>
      <ErrorBanner error={list.error} />
      {list.loading && !list.data && <Loading what="broadcasts" />}
      {list.data && (
        <table className="table" aria-label="Broadcasts">
          <thead>
            <tr>
              <th>Broadcast</th>
              <th>Status</th>
              <th>Audience</th>
              <th className="num">Reached</th>
              <th className="num">Sent</th>
              <th className="num">Suppressed</th>
              <th className="num" title="failed or bounced">
                Failed
              </th>
              <th>Created</th>
              <th>Started</th>
              <th>Finished</th>
            </tr>
          </thead>
          <tbody>
            {list.data.broadcasts.length === 0 && (
              <tr>
                <td colSpan={10} className="muted">
                  No broadcasts yet: a broadcast sends one email or SMS to a segment or a list, now or at a time.
                </td>
              </tr>
            )}
            {list.data.broadcasts.map((b) => {
              const counts = messageCounts(b.messages);
              const progress = progressOf(b);
              return (
                <tr key={b.id} data-testid={`broadcast-${b.id}`}>
                  <td>
                    <Link to={`/broadcasts/${encodeURIComponent(b.id)}`}>{b.name}</Link>
                    <div className="muted small">{b.id}</div>
                  </td>
                  <td>
                    <StatusBadge status={b.status} />
                  </td>
                  <td>{b.document ? describeAudience(b.document.audience) : <span className="error-text">{b.broken}</span>}</td>
                  <td className="num">{progress.total === null ? '—' : `${progress.processed} / ${progress.total}`}</td>
                  <td className="num">{counts.sent}</td>
                  <td className="num">{counts.suppressed}</td>
                  <td className="num">{counts.failed}</td>
                  <td className="muted small">{when(b.created_at)}</td>
                  <td className="muted small">{when(b.started_at)}</td>
                  <td className="muted small">{when(b.finished_at)}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
    </div>
  );
}

/** A broadcast: its actions, its progress once sent (with its A/B test's results and, when
 * asked for, its messages), what it sends, and a test send while it is a draft; or, while
 * editing, the editor. */
function BroadcastPage({ id, showMessages }: { id: string; showMessages: boolean }) {
  const broadcast = useLoad(() => ok<BroadcastView>(api.GET('/v1/broadcasts/{id}', { params: { path: { id } } })), [id]);
  const [editing, setEditing] = useState(false);
  const [confirmingSend, setConfirmingSend] = useState(false);
  const [actionError, setActionError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const b = broadcast.data;
  usePolling(broadcast.reload, !!b && stillMoving(b));

  const act = async (action: 'pause' | 'resume' | 'cancel' | 'send') => {
    setBusy(true);
    setActionError(null);
    try {
      const params = { params: { path: { id } } };
      const call = {
        send: () => api.POST('/v1/broadcasts/{id}/send', params),
        pause: () => api.POST('/v1/broadcasts/{id}/pause', params),
        resume: () => api.POST('/v1/broadcasts/{id}/resume', params),
        cancel: () => api.POST('/v1/broadcasts/{id}/cancel', params),
      }[action];
      await ok(call());
      await broadcast.reload();
      return true;
    } catch (e) {
      setActionError(describe(e));
      return false;
    } finally {
      setBusy(false);
    }
  };
  const remove = async () => {
    if (!window.confirm(`Delete the draft “${b?.name ?? id}”?`)) return;
    setActionError(null);
    try {
      await ok(api.DELETE('/v1/broadcasts/{id}', { params: { path: { id } } }));
      navigate('/broadcasts');
    } catch (e) {
      setActionError(describe(e));
    }
  };
  const cancel = async () => {
    if (!window.confirm(`Cancel “${b?.name ?? id}”? Messages not yet sent are cancelled, and contacts not yet reached get nothing. This cannot be undone.`)) return;
    await act('cancel');
  };

  const allowed = b ? allowedActions(b.status) : null;
  return (
    <div className="page broadcast-page">
      <Link to="/broadcasts" className="muted">
        ← Broadcasts
      </Link>
      <ErrorBanner error={broadcast.error} />
      {broadcast.loading && !b && <Loading what="the broadcast" />}
      {b && allowed && (
        <>
          <div className="page-head">
            <h1>
              {b.name}{' '}
              <span data-testid="broadcast-status" data-status={b.status}>
                <StatusBadge status={b.status} />
              </span>
            </h1>
            {!editing && (
              <div className="actions-inline">
                {allowed.edit && b.document && <button onClick={() => setEditing(true)}>Edit</button>}
                {allowed.send && b.document && (
                  <button className="primary" disabled={busy} onClick={() => setConfirmingSend(true)}>
                    Send…
                  </button>
                )}
                {allowed.pause && (
                  <button disabled={busy} onClick={() => void act('pause')}>
                    Pause
                  </button>
                )}
                {allowed.resume && (
                  <button className="primary" disabled={busy} onClick={() => void act('resume')}>
                    Resume
                  </button>
                )}
                {allowed.cancel && (
                  <button className="danger" disabled={busy} onClick={() => void cancel()}>
                    Cancel broadcast
                  </button>
                )}
                {allowed.delete && (
                  <button className="danger" onClick={() => void remove()}>
                    Delete
                  </button>
                )}
              </div>
            )}
          </div>
          <ErrorBanner error={actionError} onClose={() => setActionError(null)} />
          {b.broken && <ErrorBanner error={b.broken} />}
          {editing && b.document ? (
            <BroadcastEditor
              id={b.id}
              initial={broadcastForm(b.document)}
              onSaved={async () => {
                setEditing(false);
                await broadcast.reload();
              }}
              onCancel={() => setEditing(false)}
            />
          ) : (
            <>
              {b.status !== 'draft' && <ProgressView b={b} />}
              {b.status !== 'draft' && b.test && <TestResults test={b.test} />}
              {b.status !== 'draft' && <BroadcastReport id={b.id} moving={stillMoving(b)} />}
              {b.status !== 'draft' &&
                (showMessages ? (
                  <BroadcastMessages id={b.id} counts={JSON.stringify(b.messages)} />
                ) : (
                  <p>
                    <Link to={`/broadcasts/${encodeURIComponent(b.id)}/messages`}>Its messages, one per recipient reached →</Link>
                  </p>
                ))}
              {b.document && <Summary b={b} />}
              {b.status === 'draft' && b.document && <TestSend template={b.document.template} channel={b.document.channel} />}
            </>
          )}
          {confirmingSend && b.document && (
            <SendConfirmation
              b={b}
              onClose={() => setConfirmingSend(false)}
              onSend={async () => {
                if (await act('send')) setConfirmingSend(false);
              }}
            />
          )}
        </>
      )}
    </div>
  );
}

/** How far the sending has come: contacts reached, messages by status, recipients waiting. */
function ProgressView({ b }: { b: BroadcastView }) {
  const progress = progressOf(b);
  const counts = messageCounts(b.messages);
  const rows: Array<[string, number, string]> = [
    ['sent', counts.sent, 'accepted by the transport'],
    ['queued', counts.queued, 'in the outbox, due now or at their time'],
    ['suppressed', counts.suppressed, 'not sent on purpose: no consent, suppressed address, frequency cap'],
    ['failed', counts.failed, 'failed or bounced'],
    ['paused', counts.paused, 'held while the broadcast is paused'],
    ['cancelled', counts.cancelled, 'cancelled before they were sent'],
  ];
  return (
    <section className="card broadcast-progress" data-testid="progress">
      <h2>Progress</h2>
      <progress value={progress.processed} max={Math.max(progress.total ?? 1, 1)} aria-label="Contacts reached" />
      <p data-testid="progress-text">
        {progress.total === null
          ? 'The audience is counted when the broadcast is sent.'
          : `${progress.processed} of ${progress.total} contact${progress.total === 1 ? '' : 's'} reached (${progress.percent}%).`}
        {b.waiting > 0 && (
          <span data-testid="waiting">
            {' '}
            {b.waiting} wait{b.waiting === 1 ? 's' : ''} for their local time or the end of quiet hours.
          </span>
        )}
      </p>
      <table className="table compact" aria-label="Messages by status">
        <tbody>
          {rows.map(([status, n, meaning]) => (
            <tr key={status}>
              <td>
                <StatusBadge status={status} />
              </td>
              <td className="num" data-testid={`messages-${status}`}>
                {n}
              </td>
              <td className="muted small">{meaning}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

/** An A/B test as it stands: each variant's counts and rates, the leader against each other
 * variant, and when the winner is chosen, or which won, when and why. */
function TestResults({ test }: { test: TestView }) {
  const metricRate = { opens: 'open rate', clicks: 'click rate', conversions: 'conversion rate' }[test.metric];
  return (
    <section className="card broadcast-test" data-testid="test-results">
      <h2>A/B test</h2>
      <p className="muted small">
        {test.share_percent}% of the audience split between {test.variants.length} templates; the best {metricRate} wins.
      </p>
      <p data-testid="test-status">
        <b>{testStatus(test, when)}</b>
      </p>
      <p className="small" data-testid="test-standing">
        {test.standing}
      </p>
      {test.winner && (
        // The server counts every message of each template, the winner's to those who waited
        // included; its reason keeps the rates the decision was made on.
        <p className="muted small" data-testid="test-after-decision">
          Since the decision, the counts below include the winner sent to everyone who waited; the line above gives the rates it was chosen on.
        </p>
      )}
      <table className="table compact" aria-label="Variants">
        <thead>
          <tr>
            <th>Variant</th>
            <th>Template</th>
            <th className="num">Sent</th>
            <th className="num">Opened</th>
            <th className="num">Clicked</th>
            <th className="num">Converted</th>
            <th className="num">Open rate</th>
            <th className="num">Click rate</th>
            <th className="num">Conversion rate</th>
          </tr>
        </thead>
        <tbody>
          {test.variants.map((v, i) => (
            <tr key={v.template} data-testid={`variant-${v.template}`}>
              <td>
                {variantLetter(i)}
                {test.winner?.template === v.template && (
                  <>
                    {' '}
                    <span className="badge" data-testid="winner-badge">
                      winner
                    </span>
                  </>
                )}
              </td>
              <td>
                <Link to={`/templates/${encodeURIComponent(v.template)}`}>{v.template}</Link>
              </td>
              <td className="num" data-testid="variant-sent">
                {v.sent}
              </td>
              <td className="num">{v.opened}</td>
              <td className="num">{v.clicked}</td>
              <td className="num">{v.converted}</td>
              <td className={`num${test.metric === 'opens' ? ' strong' : ''}`} data-testid="variant-open-rate">
                {percent(v.open_rate)}
              </td>
              <td className={`num${test.metric === 'clicks' ? ' strong' : ''}`}>{percent(v.click_rate)}</td>
              <td className={`num${test.metric === 'conversions' ? ' strong' : ''}`}>{percent(v.conversion_rate)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {test.comparisons.length > 0 && (
        <>
          <p className="muted small">The best {metricRate} so far against each other variant (one-sided two-proportion z-test):</p>
          <ul data-testid="test-comparisons">
            {test.comparisons.map((c) => (
              <li key={c.against}>
                against {c.against}: z = {c.z.toFixed(2)}, {describePValue(c.p_value)}
              </li>
            ))}
          </ul>
        </>
      )}
    </section>
  );
}

/** A broadcast's messages, a page at a time in id order (GET /v1/messages?broadcast_id=),
 * asked for again when the broadcast's message counts change. */
function BroadcastMessages({ id, counts }: { id: string; counts: string }) {
  // The `after` cursor of each page shown before this one, to go back; the last is this page's.
  const [cursors, setCursors] = useState<number[]>([]);
  const after = cursors.length > 0 ? cursors[cursors.length - 1] : undefined;
  const page = useLoad(
    () => ok<{ messages: MessageRow[] }>(api.GET('/v1/messages', { params: { query: { broadcast_id: id, limit: MESSAGES_PAGE_SIZE, after } } })),
    [id, after, counts],
  );
  const messages = page.data?.messages ?? [];
  const next = nextAfter(messages, MESSAGES_PAGE_SIZE);
  const first = cursors.length * MESSAGES_PAGE_SIZE + 1;
  return (
    <section className="card broadcast-messages" id="messages">
      <div className="page-head">
        <h2>Messages</h2>
        <Link to={`/broadcasts/${encodeURIComponent(id)}`} className="muted small">
          Hide
        </Link>
      </div>
      <ErrorBanner error={page.error} />
      {page.loading && !page.data ? (
        <Loading what="the messages" />
      ) : (
        <>
          <table className="table compact" aria-label="Messages of the broadcast">
            <thead>
              <tr>
                <th>Recipient</th>
                <th>Template</th>
                <th>Status</th>
                <th>Error</th>
                <th>Sent</th>
                <th>Opened</th>
                <th>Clicked</th>
              </tr>
            </thead>
            <tbody>
              {messages.length === 0 && (
                <tr>
                  <td colSpan={7} className="muted">
                    {cursors.length === 0 ? 'No message yet.' : 'No more messages.'}
                  </td>
                </tr>
              )}
              {messages.map((m) => (
                <tr key={m.id} data-testid={`message-${m.id}`}>
                  <td>
                    <Link to={`/contacts/${m.contact_id}`}>{m.recipient ?? `contact #${m.contact_id}`}</Link>
                  </td>
                  <td>{m.template}</td>
                  <td>
                    <StatusBadge status={m.status} />
                  </td>
                  <td className="error-text small">{m.error ?? ''}</td>
                  <td className="muted small">{when(m.sent_at) || '—'}</td>
                  <td className="muted small">{when(m.opened_at) || '—'}</td>
                  <td className="muted small">{when(m.clicked_at) || '—'}</td>
                </tr>
              ))}
            </tbody>
          </table>
          <div className="actions-inline">
            {messages.length > 0 && (
              <span className="muted small" data-testid="messages-range">
                {first}–{first + messages.length - 1}
              </span>
            )}
            <button className="small" disabled={cursors.length === 0} onClick={() => setCursors(cursors.slice(0, -1))}>
              Previous page
            </button>
            <button className="small" disabled={next === null} onClick={() => next !== null && setCursors([...cursors, next])}>
              Next page
            </button>
            <button className="small" onClick={() => void page.reload()}>
              Refresh
            </button>
          </div>
        </>
      )}
    </section>
  );
}

/** What the broadcast sends, to whom and when, the overrides stated either way. */
function Summary({ b }: { b: BroadcastView }) {
  const doc = b.document!;
  const audienceLink = (a: typeof doc.audience) =>
    'segment' in a ? (
      <Link to={`/segments/${encodeURIComponent(a.segment)}`}>{describeAudience(a)}</Link>
    ) : (
      <Link to={`/lists/${encodeURIComponent(a.list)}`}>{describeAudience(a)}</Link>
    );
  const items: Array<[string, ReactNode]> = [
    ['channel', <span className={`badge channel-${doc.channel}`}>{doc.channel}</span>],
    [
      'template',
      <>
        <Link to={`/templates/${encodeURIComponent(doc.template)}`}>{doc.template}</Link>
        {b.template_version != null && (
          <span className="muted">
            {/* Only the broadcast's own template is pinned; a test's variants are sent as they stand. */}
            {doc.test ? ` version ${b.template_version}, pinned at the start (the test's other templates are sent as they stand)` : ` version ${b.template_version}, as every recipient gets it`}
          </span>
        )}
      </>,
    ],
    ['audience', audienceLink(doc.audience)],
    [
      'excluded',
      doc.exclude.length === 0 ? (
        <span className="muted">nobody</span>
      ) : (
        doc.exclude.map((a, i) => (
          <span key={i}>
            {i > 0 && ', '}
            {audienceLink(a)}
          </span>
        ))
      ),
    ],
    ['starts', doc.send_at ? when(doc.send_at) : 'as soon as it is sent'],
    ['local time', doc.local_time ? `${doc.local_time} in each contact's time zone` : <span className="muted">no: at the start</span>],
    ['fallback zone', doc.timezone ?? 'UTC'],
    ['send rate', doc.rate_per_second ? `${doc.rate_per_second} message${doc.rate_per_second === 1 ? '' : 's'} a second` : 'as fast as the channel allows'],
    [
      'A/B test',
      doc.test ? (
        <span data-testid="summary-test">
          {[doc.template, ...doc.test.variants].map((t, i) => `${variantLetter(i)}: ${t}`).join(', ')} to {doc.test.share_percent}% of the audience; after{' '}
          {doc.test.decide_after}, the best rate of {doc.test.metric} goes to the rest
        </span>
      ) : (
        <span className="muted">no: everyone gets {doc.template}</span>
      ),
    ],
    [
      'overrides',
      <ul className="overrides" data-testid="overrides">
        {overrides(doc).map((o) => (
          <li key={o}>{o}</li>
        ))}
      </ul>,
    ],
    ['created', when(b.created_at)],
    ['started', b.started_at ? when(b.started_at) : '—'],
    ['finished', b.finished_at ? when(b.finished_at) : '—'],
  ];
  return (
    <section className="card broadcast-summary">
      <h2>What it sends</h2>
      <dl className="kv" data-testid="summary">
        {items.map(([k, v]) => (
          <div key={k}>
            <dt>{k}</dt>
            <dd>{v}</dd>
          </div>
        ))}
      </dl>
    </section>
  );
}

/** Sending, once more in words: to whom (the audience's size now), when, and the overrides. */
function SendConfirmation({ b, onClose, onSend }: { b: BroadcastView; onClose: () => void; onSend: () => Promise<void> }) {
  const doc = b.document!;
  const [busy, setBusy] = useState(false);
  const exact = useExactAudienceSize({ audience: doc.audience, exclude: doc.exclude });
  const size = exact.size;
  return (
    <div className="modal-backdrop" onClick={onClose}>
      <div className="modal" role="dialog" aria-label="Send the broadcast" onClick={(e) => e.stopPropagation()}>
        <h2>Send “{b.name}”</h2>
        {exact.error && <ErrorBanner error={`The audience cannot be counted: ${exact.error}`} />}
        {size === null ? (
          !exact.error && <Loading what="the audience" />
        ) : (
          <p data-testid="send-audience">
            To the <b>{size}</b> contact{size === 1 ? '' : 's'} in {describeAudience(doc.audience)}
            {doc.exclude.length > 0 && ` and in none of ${doc.exclude.map(describeAudience).join(', ')}`}, as counted now. The audience is counted again when it
            starts, and each contact is taken as they are when reached.
          </p>
        )}
        {doc.test && (
          <p data-testid="send-test">
            First {doc.test.share_percent}% of them get one of {doc.test.variants.length + 1} templates ({[doc.template, ...doc.test.variants].join(', ')}); {doc.test.decide_after} after the
            start, the one with the best rate of {doc.test.metric} goes to the others.
          </p>
        )}
        <p>
          {doc.send_at ? `Starts at ${when(doc.send_at)}` : 'Starts now'}
          {doc.local_time ? `, each message at ${doc.local_time} in the contact's time zone` : ''}
          {doc.rate_per_second ? `, ${doc.rate_per_second} message${doc.rate_per_second === 1 ? '' : 's'} a second` : ''}.
        </p>
        <ul>
          {overrides(doc).map((o) => (
            <li key={o}>{o}</li>
          ))}
        </ul>
        <div className="actions">
          <button onClick={onClose}>Back</button>
          <button
            className="primary"
            disabled={busy}
            onClick={async () => {
              setBusy(true);
              try {
                await onSend();
              } finally {
                setBusy(false);
              }
            }}
          >
            {doc.send_at && new Date(doc.send_at).getTime() > Date.now() ? 'Schedule' : 'Send now'}
          </button>
        </div>
      </div>
    </div>
  );
}

/** The segments and lists there are, with their member counts now. */
function useAudiences() {
  return useLoad(async () => {
    const [segments, lists] = await Promise.all([ok<{ segments: SegmentSummary[] }>(api.GET('/v1/segments')), ok<{ lists: ListSummary[] }>(api.GET('/v1/lists'))]);
    return { segments: segments.segments, lists: lists.lists };
  }, []);
}

type AudienceRequest = NonNullable<ReturnType<typeof audienceRequest>>;

/** How many contacts are in the audience and in none of the exclusions now, as the server
 * counts them (POST /v1/broadcasts/audience), asked again once the choice has stayed the same
 * for AUDIENCE_DEBOUNCE_MS. `size` is null while there is nothing to count or it is being
 * counted; `counting` tells the two apart. */
function useExactAudienceSize(request: AudienceRequest | null): { size: number | null; counting: boolean; error: string | null } {
  // The request as a value: a new object with the same choice is not a change.
  const key = request ? JSON.stringify(request) : '';
  const [answer, setAnswer] = useState<{ key: string; size: number | null; error: string | null }>({ key: '', size: null, error: null });
  useEffect(() => {
    if (!key) return;
    let current = true;
    const timer = window.setTimeout(async () => {
      try {
        const counted = await ok<{ size: number }>(api.POST('/v1/broadcasts/audience', { body: JSON.parse(key) as AudienceRequest }));
        if (current) setAnswer({ key, size: counted.size, error: null });
      } catch (e) {
        if (current) setAnswer({ key, size: null, error: describe(e) });
      }
    }, AUDIENCE_DEBOUNCE_MS);
    return () => {
      // An answer for an earlier choice that arrives late is dropped.
      current = false;
      window.clearTimeout(timer);
    };
  }, [key]);
  if (!key) return { size: null, counting: false, error: null };
  // A count of an earlier choice is not shown for this one.
  if (answer.key !== key) return { size: null, counting: true, error: null };
  return { size: answer.size, counting: false, error: answer.error };
}

/** A problem of the form under its input. */
function FieldError({ errors, field }: { errors: FieldErrors; field: string }) {
  const messages = errors[field];
  if (!messages?.length) return null;
  return (
    <div className="field-error" data-testid={`error-${field}`}>
      {messages.join('; ')}
    </div>
  );
}

/** A select of every segment and list, each with its member count now. */
function AudienceSelect({ id, label, value, onChange, audiences }: { id: string; label: string; value: AudienceChoice; onChange: (c: AudienceChoice) => void; audiences: ReturnType<typeof useAudiences> }) {
  const data = audiences.data;
  const key = audienceKey(value);
  const known = !value.id || !data || (value.kind === 'segment' ? data.segments.some((s) => s.id === value.id) : data.lists.some((l) => l.name === value.id));
  return (
    <select id={id} aria-label={label} value={key} onChange={(e) => onChange(audienceFromKey(e.target.value))}>
      <option value="">— choose a segment or a list —</option>
      {!known && <option value={key}>{describeAudience(value.kind === 'segment' ? { segment: value.id } : { list: value.id })} (not found)</option>}
      <optgroup label="Segments">
        {data?.segments.map((s) => (
          <option key={s.id} value={audienceKey({ kind: 'segment', id: s.id })}>
            {s.name || s.id} — {s.members} member{s.members === 1 ? '' : 's'}
          </option>
        ))}
      </optgroup>
      <optgroup label="Lists">
        {data?.lists.map((l) => (
          <option key={l.name} value={audienceKey({ kind: 'list', id: l.name })}>
            {l.name} — {l.members} member{l.members === 1 ? '' : 's'}
          </option>
        ))}
      </optgroup>
    </select>
  );
}

/** The IANA zone names the browser knows, for the fallback zone's suggestions. */
function timeZones(): string[] {
  try {
    return Intl.supportedValuesOf('timeZone');
  } catch {
    return [];
  }
}

/** Creates a draft (no `id`) or edits one. */
function BroadcastEditor({ id, initial, onSaved, onCancel }: { id?: string; initial?: BroadcastForm; onSaved: (b: BroadcastView) => void | Promise<void>; onCancel: () => void }) {
  const [form, setForm] = useState<BroadcastForm>(initial ?? emptyBroadcastForm());
  const [errors, setErrors] = useState<FieldErrors>({});
  const [busy, setBusy] = useState(false);
  const templates = useLoad(() => ok<{ templates: TemplateSummary[] }>(api.GET('/v1/templates')), []);
  const audiences = useAudiences();
  const set = (patch: Partial<BroadcastForm>) => setForm((f) => ({ ...f, ...patch }));
  const ofChannel = (templates.data?.templates ?? []).filter((t) => t.channel === form.channel);
  const templateKnown = !form.template || !templates.data || ofChannel.some((t) => t.id === form.template);
  const exact = useExactAudienceSize(audienceRequest(form));
  const excluding = form.exclude.some((x) => x.id);
  const has = (field: string) => (errors[field]?.length ? ' has-error' : '');

  const save = async () => {
    setErrors({});
    const built = broadcastDocument(form);
    if ('errors' in built) {
      setErrors(built.errors);
      return;
    }
    setBusy(true);
    try {
      const saved = id
        ? await ok<BroadcastView>(api.PUT('/v1/broadcasts/{id}', { params: { path: { id } }, body: built.document }))
        : await ok<BroadcastView>(api.POST('/v1/broadcasts', { body: built.document }));
      await onSaved(saved);
    } catch (e) {
      setErrors(e instanceof ServerError && e.status === 400 ? fieldErrors(e) : { '': [describe(e)] });
    } finally {
      setBusy(false);
    }
  };

  return (
    <div className="broadcast-editor editor-form" data-testid="broadcast-editor">
      <ErrorBanner error={templates.error ?? audiences.error} />
      <div className={`field${has('name')}`}>
        <label htmlFor="bc-name">Name</label>
        <input id="bc-name" value={form.name} onChange={(e) => set({ name: e.target.value })} placeholder="November news" />
        <FieldError errors={errors} field="name" />
      </div>
      <div className="row">
        <div className={`field${has('channel')}`}>
          <label htmlFor="bc-channel">Channel</label>
          <select
            id="bc-channel"
            value={form.channel}
            onChange={(e) => {
              const channel = e.target.value as BroadcastForm['channel'];
              // A template is of one channel: the choices go when the channel changes.
              set(channel === form.channel ? { channel } : { channel, template: '', testVariants: form.testVariants.map(() => '') });
            }}
          >
            <option value="email">email</option>
            <option value="sms">SMS</option>
          </select>
          <FieldError errors={errors} field="channel" />
        </div>
        <div className={`field${has('template')}`}>
          <label htmlFor="bc-template">Template</label>
          <select id="bc-template" value={form.template} onChange={(e) => set({ template: e.target.value })}>
            <option value="">— choose a{form.channel === 'email' ? 'n email' : 'n SMS'} template —</option>
            {!templateKnown && <option value={form.template}>{form.template} (not found)</option>}
            {ofChannel.map((t) => (
              <option key={t.id} value={t.id}>
                {t.name || t.id}
              </option>
            ))}
          </select>
          <FieldError errors={errors} field="template" />
        </div>
      </div>
      <div className={`field${has('audience')}`}>
        <label htmlFor="bc-audience">Audience</label>
        <AudienceSelect id="bc-audience" label="Audience" value={form.audience} onChange={(audience) => set({ audience })} audiences={audiences} />
        {exact.size !== null && (
          <div className="hint" data-testid="audience-size">
            {exact.size} contact{exact.size === 1 ? '' : 's'} now{excluding ? ', not counting the excluded' : ''}; counted again when it is sent.
          </div>
        )}
        {exact.counting && <div className="hint muted">Counting the audience…</div>}
        {exact.error && <div className="hint error-text">The audience cannot be counted: {exact.error}</div>}
        <FieldError errors={errors} field="audience" />
      </div>
      <fieldset className={`object field${has('exclude')}`}>
        <legend className="small">Excluded: members of these get nothing</legend>
        {form.exclude.map((x, i) => (
          <div key={i} className={`array-item${has(`exclude[${i}]`)}`}>
            <div className="array-body">
              <AudienceSelect
                id={`bc-exclude-${i}`}
                label={`Exclusion ${i + 1}`}
                value={x}
                onChange={(choice) => set({ exclude: form.exclude.map((old, j) => (j === i ? choice : old)) })}
                audiences={audiences}
              />
              <FieldError errors={errors} field={`exclude[${i}]`} />
            </div>
            <button className="small danger" aria-label={`Remove exclusion ${i + 1}`} onClick={() => set({ exclude: form.exclude.filter((_, j) => j !== i) })}>
              Remove
            </button>
          </div>
        ))}
        <div>
          <button className="small" onClick={() => set({ exclude: [...form.exclude, { kind: 'segment', id: '' }] })}>
            Add an exclusion
          </button>
        </div>
        <FieldError errors={errors} field="exclude" />
      </fieldset>
      <fieldset className="object">
        <legend className="small">When</legend>
        <div className="row">
          <label className="check">
            <input type="radio" name="bc-when" checked={form.when === 'now'} onChange={() => set({ when: 'now' })} /> As soon as it is sent
          </label>
          <label className="check">
            <input type="radio" name="bc-when" checked={form.when === 'at'} onChange={() => set({ when: 'at' })} /> At
          </label>
          <div className={`field${has('send_at')}`}>
            <input
              type="datetime-local"
              aria-label="Start at"
              value={form.sendAt}
              disabled={form.when !== 'at'}
              onChange={(e) => set({ sendAt: e.target.value })}
            />
          </div>
        </div>
        <FieldError errors={errors} field="send_at" />
        {form.when === 'at' && <div className="hint muted small">In your browser's time zone ({Intl.DateTimeFormat().resolvedOptions().timeZone}).</div>}
        <label className="check">
          <input type="checkbox" checked={form.atLocalTime} onChange={(e) => set({ atLocalTime: e.target.checked })} /> Deliver at a local time in each contact's time zone
        </label>
        {form.atLocalTime && (
          <div className={`field${has('local_time')}`}>
            <label htmlFor="bc-local-time">Local time (HH:MM)</label>
            <input id="bc-local-time" value={form.localTime} onChange={(e) => set({ localTime: e.target.value })} placeholder="09:00" />
            <div className="hint">Each message goes at the first such time at or after the start: start a day ahead for everyone to get it on the same date.</div>
            <FieldError errors={errors} field="local_time" />
          </div>
        )}
        <div className={`field${has('timezone')}`}>
          <label htmlFor="bc-timezone">Time zone of contacts without one</label>
          <input id="bc-timezone" list="bc-timezones" value={form.timezone} onChange={(e) => set({ timezone: e.target.value })} placeholder="UTC" />
          <datalist id="bc-timezones">
            {timeZones().map((z) => (
              <option key={z} value={z} />
            ))}
          </datalist>
          <div className="hint">An IANA name such as Europe/Rome, for local time and quiet hours.</div>
          <FieldError errors={errors} field="timezone" />
        </div>
      </fieldset>
      <fieldset className={`object ab-test${has('test')}`} data-testid="test-section">
        <legend className="small">A/B test</legend>
        <label className="check">
          <input type="checkbox" checked={form.testing} onChange={(e) => set({ testing: e.target.checked })} /> Test before sending
        </label>
        {form.testing && (
          <>
            <div className="hint muted small">
              The broadcast's template (A) and each other template below go to equal parts of a share of the audience; everyone else waits. After the time given,
              the template with the best rate wins and goes to them.
            </div>
            <div className="field">
              <span className="small">Variant A</span> <span className="muted small">{form.template || 'the template chosen above'}</span>
            </div>
            {form.testVariants.map((variant, i) => {
              const letter = variantLetter(i + 1);
              const field = `test.variants[${i}]`;
              const known = !variant || !templates.data || ofChannel.some((t) => t.id === variant);
              return (
                <div key={i} className={`array-item${has(field)}`}>
                  <div className="array-body field">
                    <label htmlFor={`bc-variant-${i}`}>Variant {letter}</label>
                    <select
                      id={`bc-variant-${i}`}
                      value={variant}
                      onChange={(e) => set({ testVariants: form.testVariants.map((old, j) => (j === i ? e.target.value : old)) })}
                    >
                      <option value="">— choose another template —</option>
                      {!known && <option value={variant}>{variant} (not found)</option>}
                      {ofChannel
                        // The broadcast's own template is variant A already.
                        .filter((t) => t.id !== form.template || t.id === variant)
                        .map((t) => (
                          <option key={t.id} value={t.id}>
                            {t.name || t.id}
                          </option>
                        ))}
                    </select>
                    <FieldError errors={errors} field={field} />
                  </div>
                  {form.testVariants.length > 1 && (
                    <button className="small danger" aria-label={`Remove variant ${letter}`} onClick={() => set({ testVariants: form.testVariants.filter((_, j) => j !== i) })}>
                      Remove
                    </button>
                  )}
                </div>
              );
            })}
            {form.testVariants.length < MAX_TEST_VARIANTS && (
              <div>
                <button className="small" onClick={() => set({ testVariants: [...form.testVariants, ''] })}>
                  Add a variant
                </button>
              </div>
            )}
            <FieldError errors={errors} field="test.variants" />
            <div className="row">
              <div className={`field${has('test.share_percent')}`}>
                <label htmlFor="bc-test-share">Share tested (%)</label>
                <input id="bc-test-share" inputMode="numeric" value={form.testShare} onChange={(e) => set({ testShare: e.target.value })} />
                <div className="hint">1-100 % of the audience, split evenly between the variants.</div>
                <FieldError errors={errors} field="test.share_percent" />
              </div>
              <div className={`field${has('test.decide_after')}`}>
                <label htmlFor="bc-test-decide">Decide after</label>
                <input id="bc-test-decide" value={form.testDecideAfter} onChange={(e) => set({ testDecideAfter: e.target.value })} placeholder="4h" />
                <div className="hint">After the start: 30m, 4h, 1d (1 minute to 30 days).</div>
                <FieldError errors={errors} field="test.decide_after" />
              </div>
              <div className={`field${has('test.metric')}`}>
                <label htmlFor="bc-test-metric">Winning metric</label>
                <select id="bc-test-metric" value={form.testMetric} onChange={(e) => set({ testMetric: e.target.value as BroadcastForm['testMetric'] })}>
                  <option value="opens">opens (opened per sent)</option>
                  <option value="clicks">clicks (clicked per sent)</option>
                  <option value="conversions">conversions (converted per sent; needs a goal)</option>
                </select>
                <FieldError errors={errors} field="test.metric" />
              </div>
            </div>
            {exact.size !== null && /^\d+$/.test(form.testShare.trim()) && (
              <div className="hint muted small" data-testid="test-share-size">
                About {Math.round((exact.size * Math.min(100, Number(form.testShare.trim()))) / 100)} of the {exact.size} contacts get a variant; the others wait for the winner.
              </div>
            )}
          </>
        )}
        <FieldError errors={errors} field="test" />
      </fieldset>
      <fieldset className={`object goal${has('goal')}`} data-testid="goal-section">
        <legend className="small">Goal: what counts as a conversion</legend>
        <div className="row">
          <div className={`field${has('goal.event')}`}>
            <label htmlFor="bc-goal-event">Goal event</label>
            <input id="bc-goal-event" value={form.goalEvent} onChange={(e) => set({ goalEvent: e.target.value })} placeholder="Order Completed" />
            <div className="hint">A recipient converts when they do this after their message was sent (once each). Empty: no goal.</div>
            <FieldError errors={errors} field="goal.event" />
          </div>
          <div className={`field${has('goal.within')}`}>
            <label htmlFor="bc-goal-within">Within</label>
            <input id="bc-goal-within" value={form.goalWithin} onChange={(e) => set({ goalWithin: e.target.value })} placeholder="7d" />
            <div className="hint">After the send: 12h, 3d (1 minute to 90 days).</div>
            <FieldError errors={errors} field="goal.within" />
          </div>
          <div className={`field${has('goal.revenue_property')}`}>
            <label htmlFor="bc-goal-revenue">Revenue property</label>
            <input id="bc-goal-revenue" value={form.goalRevenueProperty} onChange={(e) => set({ goalRevenueProperty: e.target.value })} placeholder="revenue" />
            <FieldError errors={errors} field="goal.revenue_property" />
          </div>
        </div>
        <FieldError errors={errors} field="goal" />
      </fieldset>
      <div className={`field${has('rate_per_second')}`}>
        <label htmlFor="bc-rate">Send rate (messages a second)</label>
        <input id="bc-rate" inputMode="numeric" value={form.rate} onChange={(e) => set({ rate: e.target.value })} placeholder="as fast as the channel allows" />
        <FieldError errors={errors} field="rate_per_second" />
      </div>
      <fieldset className="object overrides-choice">
        <legend className="small">Overrides (recorded on the broadcast)</legend>
        <label className="check">
          <input type="checkbox" checked={form.ignoreQuietHours} onChange={(e) => set({ ignoreQuietHours: e.target.checked })} /> Ignore quiet hours and blocked dates
        </label>
        <div className="hint muted small">{form.ignoreQuietHours ? 'Messages go out during the installation’s quiet hours and on its blocked dates.' : 'A message due in quiet hours or on a blocked date waits for them to end.'}</div>
        <label className="check">
          <input type="checkbox" checked={form.ignoreFrequencyCaps} onChange={(e) => set({ ignoreFrequencyCaps: e.target.checked })} /> Ignore frequency caps
        </label>
        <div className="hint muted small">{form.ignoreFrequencyCaps ? 'Contacts who reached a frequency cap get it too.' : 'Contacts who reached a frequency cap are recorded suppressed.'}</div>
        <FieldError errors={errors} field="ignore_quiet_hours" />
        <FieldError errors={errors} field="ignore_frequency_caps" />
      </fieldset>
      <ErrorBanner error={errors['']?.join('; ')} />
      <div className="actions">
        <button onClick={onCancel}>Cancel</button>
        <button className="primary" disabled={busy} onClick={() => void save()}>
          {id ? 'Save draft' : 'Create draft'}
        </button>
      </div>
    </div>
  );
}

/** One address's test send: the status the server answered (`queued`, `suppressed` with its
 * reason), or the error. */
interface TestResult {
  to: string;
  status: string;
  detail: string | null;
}

/** The draft's template sent to a few addresses, one POST /v1/templates/{id}/test-send each. */
function TestSend({ template, channel }: { template: string; channel: 'email' | 'sms' }) {
  const [text, setText] = useState('');
  const [results, setResults] = useState<TestResult[]>([]);
  const [busy, setBusy] = useState(false);
  const addresses = testAddresses(text);
  const tooMany = addresses.length > MAX_TEST_ADDRESSES;
  const send = async () => {
    setBusy(true);
    setResults([]);
    const out: TestResult[] = [];
    for (const to of addresses) {
      try {
        const r = await ok<{ status: string; error?: string | null }>(api.POST('/v1/templates/{id}/test-send', { params: { path: { id: template } }, body: { to } }));
        out.push({ to, status: r.status, detail: r.error ?? null });
      } catch (e) {
        out.push({ to, status: 'refused', detail: describe(e) });
      }
      setResults([...out]);
    }
    setBusy(false);
  };
  return (
    <section className="card">
      <h2>Test send</h2>
      <p className="muted small">
        Sends template <code>{template}</code> to these {channel === 'email' ? 'email addresses' : 'phone numbers (E.164)'} now, with no contact's data, through the normal outbox. Suppressed addresses are not sent to.
      </p>
      <div className="field">
        <label htmlFor="bc-test-to">{channel === 'email' ? 'Email addresses' : 'Phone numbers'}, one a line or separated by commas</label>
        <textarea id="bc-test-to" rows={3} value={text} onChange={(e) => setText(e.target.value)} placeholder={channel === 'email' ? 'me@example.com' : '+14155552671'} />
        {tooMany && <div className="field-error">At most {MAX_TEST_ADDRESSES} addresses at once.</div>}
      </div>
      <div className="actions">
        <button disabled={busy || addresses.length === 0 || tooMany} onClick={() => void send()}>
          Send test{addresses.length > 1 ? ` to ${addresses.length}` : ''}
        </button>
      </div>
      {results.length > 0 && (
        <table className="table compact" aria-label="Test sends">
          <tbody>
            {results.map((r) => (
              <tr key={r.to}>
                <td>{r.to}</td>
                <td>
                  <StatusBadge status={r.status} />
                </td>
                <td className={r.status === 'refused' ? 'error-text small' : 'muted small'}>{r.detail ?? ''}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
