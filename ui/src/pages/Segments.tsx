// Segments: every segment with its member count and the journeys that use it; a segment written
// in the text condition language (docs/conditions.md), checked while typing by
// POST /v1/segments/preview (debounced), which answers the errors at their line and column, or
// how many contacts match now and a sample of them; a saved segment's members over time (a chart
// per day) and its members now, a page at a time; deleting one (refused by the server while a
// journey uses it).
import { useEffect, useRef, useState } from 'react';
import { api, describe, ok, ServerError } from '../api/client';
import { ErrorBanner, Loading, StatusBadge, useLoad, when } from '../components/common';
import { MembersChart } from '../components/MembersChart';
import { type Member, MemberTable } from '../components/MemberTable';
import { browserZone } from '../lib/segmentHistory';
import { type ConditionError, conditionErrors, errorExcerpt, errorPlace, type SegmentUse, segmentIdFor, useWhere, validSegmentId } from '../lib/segments';
import { Link, navigate } from '../router';

interface Segment {
  id: string;
  name: string;
  text: string;
  broken: string | null;
  members: number;
  used_by: SegmentUse[];
  updated_at: string;
}

/** How long typing must pause before the condition is checked. */
const PREVIEW_DELAY_MS = 400;

export function Segments({ selected }: { selected?: string }) {
  if (selected) return <SegmentPage key={selected} id={selected} />;
  return <SegmentList />;
}

function SegmentList() {
  const list = useLoad(() => ok<{ segments: Segment[] }>(api.GET('/v1/segments')), []);
  // Any id is a segment's (`new` too), so creating one has no page of its own.
  const [creating, setCreating] = useState(false);
  if (creating) return <SegmentEditor key="new" onCancel={() => setCreating(false)} />;
  return (
    <div className="page">
      <div className="page-head">
        <h1>Segments</h1>
        <button className="primary" onClick={() => setCreating(true)}>
          New segment
        </button>
      </div>
      <ErrorBanner error={list.error} />
      {list.loading && !list.data && <Loading what="segments" />}
      {list.data && (
        <table className="table" aria-label="Segments">
          <thead>
            <tr>
              <th>Segment</th>
              <th>Condition</th>
              <th className="num">Members</th>
              <th>Used by</th>
              <th>Changed</th>
            </tr>
          </thead>
          <tbody>
            {list.data.segments.length === 0 && (
              <tr>
                <td colSpan={5} className="muted">
                  No segments yet: a segment is a condition over traits, events and lists, such as <code>did "Order Completed" at least 2 times in last 90d</code>.
                </td>
              </tr>
            )}
            {list.data.segments.map((s) => (
              <tr key={s.id}>
                <td>
                  <Link to={`/segments/${encodeURIComponent(s.id)}`}>{s.name || s.id}</Link>
                  <div className="muted small">{s.id}</div>
                </td>
                <td>{s.broken ? <span className="error-text">{s.broken}</span> : <code>{s.text}</code>}</td>
                <td className="num" data-testid={`members-${s.id}`}>
                  {s.members}
                </td>
                <td>
                  {s.used_by.length === 0 ? (
                    <span className="muted">—</span>
                  ) : (
                    s.used_by.map((u) => (
                      <div key={u.journey_id}>
                        <Link to={`/journeys/${encodeURIComponent(u.journey_id)}`}>{u.journey_name || u.journey_id}</Link>
                      </div>
                    ))
                  )}
                </td>
                <td className="muted small">{when(s.updated_at)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}

/** A saved segment: its editor, the journeys that use it, its members, and deleting it. */
function SegmentPage({ id }: { id: string }) {
  const segment = useLoad(() => ok<Segment>(api.GET('/v1/segments/{id}', { params: { path: { id } } })), [id]);
  const [deleteError, setDeleteError] = useState<string | null>(null);
  const s = segment.data;

  const remove = async () => {
    if (!window.confirm(`Delete the segment “${s?.name || id}”? Its memberships go, without exit events.`)) return;
    setDeleteError(null);
    try {
      await ok(api.DELETE('/v1/segments/{id}', { params: { path: { id } } }));
      navigate('/segments');
    } catch (e) {
      setDeleteError(describe(e));
    }
  };

  return (
    <div className="page">
      <Link to="/segments" className="muted">
        ← Segments
      </Link>
      <ErrorBanner error={segment.error} />
      {segment.loading && !s && <Loading what="the segment" />}
      {s && (
        <>
          <div className="page-head">
            <h1>
              {s.name || s.id} <span className="muted small">{s.id}</span>
            </h1>
            <button className="danger" onClick={remove}>
              Delete
            </button>
          </div>
          <ErrorBanner error={deleteError} onClose={() => setDeleteError(null)} />
          {s.broken && <ErrorBanner error={`The engine cannot use the stored condition: ${s.broken}`} />}
          <SegmentEditor segment={s} onSaved={() => segment.reload()} />
          <h2>Used by</h2>
          {s.used_by.length === 0 ? (
            <p className="muted">No journey's trigger uses this segment.</p>
          ) : (
            <ul data-testid="used-by">
              {s.used_by.map((u) => (
                <li key={u.journey_id}>
                  <Link to={`/journeys/${encodeURIComponent(u.journey_id)}`}>{u.journey_name || u.journey_id}</Link> <StatusBadge status={u.status} />{' '}
                  <span className="muted small">its {useWhere(u)}</span>
                </li>
              ))}
            </ul>
          )}
          <h2>
            Members <span className="muted small">{s.members} now</span>
          </h2>
          <MembersChart segmentId={s.id} tz={browserZone()} version={s.updated_at} />
          <MemberTable
            label="Segment members"
            empty="No contact is a member now."
            version={s.updated_at}
            load={async (after, limit) => {
              const query = after === null ? { limit } : { limit, after };
              const r = await ok<{ contacts: Member[] }>(api.GET('/v1/segments/{id}/members', { params: { path: { id }, query } }));
              return r.contacts;
            }}
          />
        </>
      )}
    </div>
  );
}

/** What the condition being typed matches now, or why it cannot be used. */
type Check =
  | { state: 'empty' }
  | { state: 'checking' }
  | { state: 'matches'; count: number; sample: Member[] }
  | { state: 'invalid'; errors: ConditionError[]; text: string }
  | { state: 'failed'; error: string };

/** Creates a segment (no `segment`) or edits one. */
function SegmentEditor({ segment, onSaved, onCancel }: { segment?: Segment; onSaved?: () => void | Promise<void>; onCancel?: () => void }) {
  const isNew = !segment;
  const [name, setName] = useState(segment?.name ?? '');
  const [id, setId] = useState(segment?.id ?? '');
  const [idEdited, setIdEdited] = useState(false);
  const [text, setText] = useState(segment?.text ?? '');
  const [check, setCheck] = useState<Check>({ state: 'empty' });
  const [saveError, setSaveError] = useState<string | null>(null);
  const [saved, setSaved] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  /** Only the answer to the latest text is shown, however the answers arrive. */
  const latest = useRef(0);

  useEffect(() => {
    const asked = ++latest.current;
    if (!text.trim()) {
      setCheck({ state: 'empty' });
      return;
    }
    setCheck({ state: 'checking' });
    const timer = window.setTimeout(async () => {
      try {
        const r = await ok<{ count: number; sample: Member[] }>(api.POST('/v1/segments/preview', { body: { text } }));
        if (asked === latest.current) setCheck({ state: 'matches', count: r.count, sample: r.sample });
      } catch (e) {
        if (asked !== latest.current) return;
        if (e instanceof ServerError && e.code === 'invalid_condition') setCheck({ state: 'invalid', errors: conditionErrors(e), text });
        else setCheck({ state: 'failed', error: describe(e) });
      }
    }, PREVIEW_DELAY_MS);
    return () => window.clearTimeout(timer);
  }, [text]);

  const save = async () => {
    setBusy(true);
    setSaveError(null);
    setSaved(null);
    try {
      const body = { name: name.trim() || undefined, text };
      const s = isNew
        ? await ok<Segment>(api.POST('/v1/segments', { body: { ...body, id } }))
        : await ok<Segment>(api.PUT('/v1/segments/{id}', { params: { path: { id } }, body }));
      setSaved(`Saved: ${s.members} member${s.members === 1 ? '' : 's'}.`);
      if (isNew) navigate(`/segments/${encodeURIComponent(s.id)}`);
      else await onSaved?.();
    } catch (e) {
      if (e instanceof ServerError && e.code === 'invalid_condition') setCheck({ state: 'invalid', errors: conditionErrors(e), text });
      setSaveError(describe(e));
    } finally {
      setBusy(false);
    }
  };

  const idProblem = isNew && id && !validSegmentId(id) ? 'Letters, digits, - and _ only (at most 100).' : '';
  const invalid = check.state === 'invalid';
  return (
    <div className={isNew ? 'page' : ''}>
      {isNew && (
        <>
          <button className="link muted" onClick={onCancel}>
            ← Segments
          </button>
          <h1>New segment</h1>
        </>
      )}
      <div className="segment-editor">
        <div className="editor-form">
          <div className="row">
            <div className="field">
              <label htmlFor="segment-name">Name</label>
              <input
                id="segment-name"
                value={name}
                onChange={(e) => {
                  setName(e.target.value);
                  if (isNew && !idEdited) setId(segmentIdFor(e.target.value));
                }}
                placeholder="Repeat buyers"
              />
            </div>
            <div className={`field${idProblem ? ' has-error' : ''}`}>
              <label htmlFor="segment-id">Id</label>
              <input
                id="segment-id"
                value={id}
                disabled={!isNew}
                onChange={(e) => {
                  setId(e.target.value);
                  setIdEdited(true);
                }}
              />
              {idProblem && <div className="field-error">{idProblem}</div>}
            </div>
          </div>
          <div className={`field${invalid ? ' has-error' : ''}`}>
            <label htmlFor="segment-condition">Condition</label>
            <textarea
              id="segment-condition"
              className="code"
              rows={6}
              spellCheck={false}
              value={text}
              onChange={(e) => setText(e.target.value)}
              placeholder={'did "Order Completed" at least 2 times in last 90d and plan = "pro"'}
            />
            <div className="hint">
              Traits, events, engagement and lists, in the language of <code>docs/conditions.md</code>: <code>plan = "pro"</code>, <code>did "Signed Up" in last 7d</code>, <code>in list "vip"</code>, joined with <code>and</code>, <code>or</code>, <code>not</code>.
            </div>
          </div>
          <ConditionCheck check={check} />
          <ErrorBanner error={saveError} onClose={() => setSaveError(null)} />
          {saved && <div className="ok-text">{saved}</div>}
          <div className="actions">
            <button className="primary" onClick={save} disabled={busy || !text.trim() || (isNew && !validSegmentId(id)) || invalid}>
              {isNew ? 'Create segment' : 'Save'}
            </button>
          </div>
        </div>
        <div className="preview" data-testid="segment-preview">
          <h2>Matches now</h2>
          {check.state === 'matches' ? (
            <>
              <p data-testid="preview-count" data-value={check.count}>
                <b>{check.count}</b> contact{check.count === 1 ? '' : 's'} match{check.count === 1 ? 'es' : ''} this condition.
              </p>
              {check.sample.length > 0 && (
                <table className="table compact" aria-label="Sample members">
                  <thead>
                    <tr>
                      <th>Id</th>
                      <th>User id</th>
                      <th>Email</th>
                    </tr>
                  </thead>
                  <tbody>
                    {check.sample.map((c) => (
                      <tr key={c.id}>
                        <td>
                          <Link to={`/contacts/${c.id}`}>#{c.id}</Link>
                        </td>
                        <td>{c.user_id ?? '—'}</td>
                        <td>{c.email ?? '—'}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              )}
              {check.count > check.sample.length && <p className="muted small">A sample of {check.sample.length}.</p>}
            </>
          ) : (
            <p className="muted">{check.state === 'checking' ? 'Checking…' : check.state === 'empty' ? 'Write a condition to see who it matches.' : 'Fix the condition to see who it matches.'}</p>
          )}
        </div>
      </div>
    </div>
  );
}

/** The condition's errors, each at its place with the line it is on and a caret under it. */
function ConditionCheck({ check }: { check: Check }) {
  if (check.state === 'failed') return <ErrorBanner error={check.error} />;
  if (check.state !== 'invalid') return null;
  return (
    <ul className="condition-errors" data-testid="condition-errors">
      {check.errors.map((e, i) => {
        const excerpt = errorExcerpt(check.text, e);
        const place = errorPlace(e);
        return (
          <li key={i}>
            <span className="error-text">
              {place && <b>{place}: </b>}
              {e.message}
            </span>
            {excerpt && (
              <pre className="caret" aria-label="Where">
                {excerpt.source}
                {'\n'}
                {' '.repeat(excerpt.column - 1)}^
              </pre>
            )}
          </li>
        );
      })}
    </ul>
  );
}
