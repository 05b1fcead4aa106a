// Broadcasts: one email or SMS to a segment or a list, minus exclusions (docs/api.md#broadcasts).
// Every broadcast with its progress; a draft written in a form whose server errors appear at the
// field they concern; a test send of its template to a few addresses; sending after a
// confirmation that names the audience; then live progress (asked for every 1.5 s while the
// engine works on it) with pause, resume and cancel as the status allows. The form's logic is in
// ui/src/lib/broadcasts.ts.
import { type ReactNode, useEffect, useState } from 'react';
import { api, describe, ok, ServerError } from '../api/client';
import { ErrorBanner, Loading, StatusBadge, useLoad, when } from '../components/common';
import {
  allowedActions,
  type AudienceChoice,
  audienceFromKey,
  audienceKey,
  broadcastDocument,
  broadcastForm,
  type BroadcastForm,
  type BroadcastView,
  describeAudience,
  emptyBroadcastForm,
  type FieldErrors,
  fieldErrors,
  MAX_TEST_ADDRESSES,
  messageCounts,
  overrides,
  progressOf,
  stillMoving,
  testAddresses,
} from '../lib/broadcasts';
import { Link, navigate } from '../router';

/** How often a broadcast the engine works on is asked for again. */
const POLL_MS = 1500;

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

export function Broadcasts({ selected }: { selected?: string }) {
  if (selected) return <BroadcastPage key={selected} id={selected} />;
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

/** A broadcast: its actions, its progress once sent, what it sends, and a test send while it is
 * a draft; or, while editing, the editor. */
function BroadcastPage({ id }: { id: string }) {
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
        {b.template_version != null && <span className="muted"> version {b.template_version}, as every recipient gets it</span>}
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
  const audiences = useAudiences();
  const [busy, setBusy] = useState(false);
  const size = audienceSize(audiences, audienceChoice(doc.audience));
  return (
    <div className="modal-backdrop" onClick={onClose}>
      <div className="modal" role="dialog" aria-label="Send the broadcast" onClick={(e) => e.stopPropagation()}>
        <h2>Send “{b.name}”</h2>
        {size === null ? (
          <Loading what="the audience" />
        ) : (
          <p data-testid="send-audience">
            To the <b>{size}</b> member{size === 1 ? '' : 's'} of {describeAudience(doc.audience)} now
            {doc.exclude.length > 0 && `, less those in ${doc.exclude.map(describeAudience).join(', ')}`}. Who is in the audience is counted when it starts, and each
            contact is taken as they are when reached.
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

function audienceChoice(a: { segment: string } | { list: string }): AudienceChoice {
  return 'segment' in a ? { kind: 'segment', id: a.segment } : { kind: 'list', id: a.list };
}

/** The segments and lists there are, with their member counts now. */
function useAudiences() {
  return useLoad(async () => {
    const [segments, lists] = await Promise.all([ok<{ segments: SegmentSummary[] }>(api.GET('/v1/segments')), ok<{ lists: ListSummary[] }>(api.GET('/v1/lists'))]);
    return { segments: segments.segments, lists: lists.lists };
  }, []);
}

/** The member count of a segment or list now, null while unknown. */
function audienceSize(audiences: ReturnType<typeof useAudiences>, choice: AudienceChoice): number | null {
  const data = audiences.data;
  if (!data || !choice.id) return null;
  if (choice.kind === 'segment') return data.segments.find((s) => s.id === choice.id)?.members ?? null;
  return data.lists.find((l) => l.name === choice.id)?.members ?? null;
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
  const size = audienceSize(audiences, form.audience);
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
              // A template is of one channel: the choice goes when the channel changes.
              set({ channel, template: channel === form.channel ? form.template : '' });
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
        {size !== null && (
          <div className="hint" data-testid="audience-size">
            {size} member{size === 1 ? '' : 's'} now; counted again, less the exclusions, when it is sent.
          </div>
        )}
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
