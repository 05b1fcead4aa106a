// Message templates: list, edit, and a preview rendered by the server for a chosen contact
// (or sample data): email at desktop and phone widths in a sandboxed frame, SMS with its
// segment count.
import { useEffect, useState } from 'react';
import { api, describe, ok } from '../api/client';
import { ErrorBanner, Loading, useLoad } from '../components/common';
import { JsonInput } from '../components/SchemaForm';
import { smsInfo } from '../lib/sms';
import { Link, navigate } from '../router';

export interface Template {
  id: string;
  channel: 'email' | 'sms';
  name?: string | null;
  subject?: string | null;
  html?: string | null;
  mjml?: string | null;
  text?: string | null;
  body?: string | null;
  topic?: string | null;
  transactional?: boolean;
  tracking?: boolean | null;
}

interface Preview {
  subject?: string | null;
  html?: string | null;
  text?: string | null;
  sms?: { characters: number; encoding: string; segments: number };
}

const EDITABLE = ['id', 'channel', 'name', 'subject', 'html', 'mjml', 'text', 'body', 'topic', 'transactional', 'tracking'] as const;

/** The body to save: known fields, empty ones left out. */
export function templateBody(t: Template): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of EDITABLE) {
    const v = t[k];
    if (v === undefined || v === null || v === '') continue;
    if (t.channel === 'sms' && ['subject', 'html', 'mjml', 'text', 'tracking'].includes(k)) continue;
    if (t.channel === 'email' && k === 'body') continue;
    out[k] = v;
  }
  return out;
}

export function Templates({ selected }: { selected?: string }) {
  const list = useLoad(() => ok<{ templates: Template[] }>(api.GET('/v1/templates')), []);
  const [creating, setCreating] = useState(false);
  const current = list.data?.templates.find((t) => t.id === selected);
  return (
    <div className="split">
      <aside className="list-pane">
        <div className="page-head">
          <h1>Templates</h1>
          <button className="primary small" onClick={() => setCreating(true)}>
            New
          </button>
        </div>
        <ErrorBanner error={list.error} />
        {list.loading && !list.data && <Loading what="templates" />}
        <ul className="nav-list">
          {list.data?.templates.length === 0 && <li className="muted">No templates yet.</li>}
          {list.data?.templates.map((t) => (
            <li key={t.id} className={t.id === selected ? 'active' : ''}>
              <Link to={`/templates/${encodeURIComponent(t.id)}`}>
                <span className={`badge channel-${t.channel}`}>{t.channel}</span> {t.name || t.id}
              </Link>
            </li>
          ))}
        </ul>
      </aside>
      <section className="detail-pane">
        {creating ? (
          <TemplateEditor
            key="new"
            initial={{ id: '', channel: 'email', subject: '', html: '<p>Hello {{ contact.first_name | default: "there" }}</p>' }}
            isNew
            onSaved={async (t) => {
              setCreating(false);
              await list.reload();
              navigate(`/templates/${encodeURIComponent(t.id)}`);
            }}
          />
        ) : current ? (
          <TemplateEditor key={current.id} initial={current} onSaved={() => list.reload()} />
        ) : selected && list.data ? (
          <ErrorBanner error={`No template “${selected}”.`} />
        ) : (
          <p className="muted">Choose a template, or create one.</p>
        )}
      </section>
    </div>
  );
}

function TemplateEditor({ initial, isNew, onSaved }: { initial: Template; isNew?: boolean; onSaved: (t: Template) => void | Promise<void> }) {
  const [t, setT] = useState<Template>(initial);
  const [format, setFormat] = useState<'html' | 'mjml'>(initial.mjml ? 'mjml' : 'html');
  const [error, setError] = useState<string | null>(null);
  const [fieldErrors, setFieldErrors] = useState<Array<{ field?: string; message: string; line?: number; column?: number }>>([]);
  const [saved, setSaved] = useState(0);
  const [busy, setBusy] = useState(false);
  const set = (k: keyof Template, v: unknown) => setT((old) => ({ ...old, [k]: v }));
  const area = (k: 'html' | 'mjml' | 'text' | 'body', rows = 8) => (
    <div className="field">
      <label htmlFor={`tpl-${k}`}>{k === 'body' ? 'Body' : k.toUpperCase() === 'TEXT' ? 'Text' : k.toUpperCase()}</label>
      <textarea id={`tpl-${k}`} className="code" rows={rows} value={t[k] ?? ''} onChange={(e) => set(k, e.target.value)} spellCheck={false} />
    </div>
  );
  const save = async () => {
    setBusy(true);
    setError(null);
    setFieldErrors([]);
    try {
      await ok(api.PUT('/v1/templates/{id}', { params: { path: { id: t.id } }, body: templateBody(t) as never }));
      setSaved((n) => n + 1);
      await onSaved(t);
    } catch (e) {
      setError(describe(e));
      const errs = (e as { errors?: unknown[] }).errors;
      if (Array.isArray(errs)) setFieldErrors(errs as typeof fieldErrors);
    } finally {
      setBusy(false);
    }
  };
  return (
    <div className="template-editor">
      <div className="editor-form">
        <h2>{isNew ? 'New template' : t.name || t.id}</h2>
        {!isNew && <TemplateVersions id={t.id} saved={saved} />}
        <div className="row">
          <div className="field">
            <label htmlFor="tpl-id">Id</label>
            <input id="tpl-id" value={t.id} onChange={(e) => set('id', e.target.value)} disabled={!isNew} />
          </div>
          <div className="field">
            <label htmlFor="tpl-channel">Channel</label>
            <select id="tpl-channel" value={t.channel} onChange={(e) => set('channel', e.target.value)} disabled={!isNew}>
              <option value="email">email</option>
              <option value="sms">sms</option>
            </select>
          </div>
        </div>
        <div className="field">
          <label htmlFor="tpl-name">Name</label>
          <input id="tpl-name" value={t.name ?? ''} onChange={(e) => set('name', e.target.value)} />
        </div>
        {t.channel === 'email' ? (
          <>
            <div className="field">
              <label htmlFor="tpl-subject">Subject</label>
              <input id="tpl-subject" value={t.subject ?? ''} onChange={(e) => set('subject', e.target.value)} />
            </div>
            <div className="field">
              <label htmlFor="tpl-format">Body format</label>
              <select
                id="tpl-format"
                value={format}
                onChange={(e) => {
                  const to = e.target.value as 'html' | 'mjml';
                  // The text moves along; the server checks it as the chosen format on save.
                  setT((old) => ({ ...old, [to]: old[format] ?? '', [format]: null }));
                  setFormat(to);
                }}
              >
                <option value="html">HTML</option>
                <option value="mjml">MJML (responsive, rendered to HTML)</option>
              </select>
            </div>
            {area(format, 12)}
            {area('text', 5)}
          </>
        ) : (
          <>
            {area('body', 5)}
            <SmsCounter text={t.body ?? ''} label="Template length (before personalisation)" />
          </>
        )}
        <div className="row">
          <div className="field">
            <label htmlFor="tpl-topic">Topic</label>
            <input id="tpl-topic" value={t.topic ?? ''} onChange={(e) => set('topic', e.target.value)} />
          </div>
          <label className="check">
            <input type="checkbox" checked={t.transactional === true} onChange={(e) => set('transactional', e.target.checked)} /> Transactional
          </label>
        </div>
        <ErrorBanner error={error} />
        {fieldErrors.length > 0 && (
          <ul className="errors">
            {fieldErrors.map((e, i) => (
              <li key={i}>
                {e.field && <code>{e.field}</code>} {e.line != null && `line ${e.line}, column ${e.column}: `}
                {e.message}
              </li>
            ))}
          </ul>
        )}
        <div className="actions">
          <button className="primary" onClick={() => void save()} disabled={busy || !t.id}>
            {isNew ? 'Create' : 'Save'}
          </button>
        </div>
      </div>
      {!isNew && <PreviewPane template={t} version={saved} />}
    </div>
  );
}

interface TemplateVersion {
  version: number;
  created_at: string;
  pinned_by: Array<{ journey_id: string; version: number }>;
}

/**
 * The template's versions and which journey versions send each: a published journey version
 * keeps the copy it was published with, so an edit reaches a journey once it is published again.
 */
function TemplateVersions({ id, saved }: { id: string; saved: number }) {
  const versions = useLoad(() => ok<{ versions: TemplateVersion[] }>(api.GET('/v1/templates/{id}/versions', { params: { path: { id } } })), [id, saved]);
  const list = versions.data?.versions ?? [];
  if (list.length === 0) return <ErrorBanner error={versions.error} />;
  const current = list[0].version;
  return (
    <details className="template-versions" data-testid="template-versions" open={list.length > 1}>
      <summary>
        Version {current}
        {list.length > 1 ? ` (${list.length} versions)` : ''}
      </summary>
      <p className="muted small">Each published journey version sends the template version it was published with; publish the journey again to send an edit.</p>
      <ul>
        {list.map((v) => (
          <li key={v.version} data-testid={`template-version-${v.version}`}>
            <strong>Version {v.version}</strong>
            {v.version === current ? ' (current)' : ''} <span className="muted">{new Date(v.created_at).toLocaleString()}</span>
            {' · '}
            {v.pinned_by.length === 0 ? (
              <span className="muted">no published journey version sends it</span>
            ) : (
              <>
                sent by{' '}
                {v.pinned_by.map((p, i) => (
                  <span key={`${p.journey_id}:${p.version}`}>
                    {i > 0 && ', '}
                    <Link to={`/journeys/${encodeURIComponent(p.journey_id)}`}>
                      {p.journey_id} v{p.version}
                    </Link>
                  </span>
                ))}
              </>
            )}
          </li>
        ))}
      </ul>
      <ErrorBanner error={versions.error} />
    </details>
  );
}

export function SmsCounter({ text, label }: { text: string; label: string }) {
  const info = smsInfo(text);
  return (
    <div className="muted small">
      {label}: {info.units} characters, {info.encoding}, {info.segments} segment{info.segments === 1 ? '' : 's'}
    </div>
  );
}

function PreviewPane({ template, version }: { template: Template; version: number }) {
  const [contactId, setContactId] = useState('');
  const [sample, setSample] = useState<unknown>({ contact: { first_name: 'Ann', email: 'ann@example.com' }, event: { cart_id: 'c1', products: [{ name: 'Mug', quantity: 2 }] } });
  const [width, setWidth] = useState<'desktop' | 'phone'>('desktop');
  const [preview, setPreview] = useState<Preview | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [loading, setLoading] = useState(false);
  useEffect(() => {
    const t = setTimeout(async () => {
      setLoading(true);
      try {
        const body = contactId.trim() ? { contact_id: Number(contactId) } : (sample ?? {});
        setPreview(await ok<Preview>(api.POST('/v1/templates/{id}/preview', { params: { path: { id: template.id } }, body: body as never })));
        setError(null);
      } catch (e) {
        setError(describe(e));
      } finally {
        setLoading(false);
      }
    }, 300);
    return () => clearTimeout(t);
  }, [template.id, contactId, JSON.stringify(sample), version]); // eslint-disable-line react-hooks/exhaustive-deps
  return (
    <div className="preview" data-testid="preview">
      <h3>Preview {loading && <span className="muted small">rendering…</span>}</h3>
      <p className="muted small">Rendered by the server from the saved template; save to see your edits.</p>
      <div className="row">
        <div className="field">
          <label htmlFor="preview-contact">Contact id</label>
          <input id="preview-contact" inputMode="numeric" placeholder="sample data" value={contactId} onChange={(e) => setContactId(e.target.value.replace(/\D/g, ''))} />
        </div>
        {template.channel === 'email' && (
          <div className="seg" role="group" aria-label="Width">
            <button className={width === 'desktop' ? 'on' : ''} onClick={() => setWidth('desktop')}>
              Desktop
            </button>
            <button className={width === 'phone' ? 'on' : ''} onClick={() => setWidth('phone')}>
              Phone
            </button>
          </div>
        )}
      </div>
      {!contactId && (
        <div className="field">
          <label htmlFor="preview-sample">Sample data ({'{contact, event}'})</label>
          <JsonInput id="preview-sample" value={sample} onChange={setSample} required />
        </div>
      )}
      <ErrorBanner error={error} />
      {preview && template.channel === 'email' && (
        <div className="email-preview">
          <div className="subject">
            <span className="muted">Subject:</span> {preview.subject}
          </div>
          <iframe
            title="Email preview"
            sandbox=""
            srcDoc={preview.html ?? `<pre>${(preview.text ?? '').replace(/[<&]/g, (c) => (c === '<' ? '&lt;' : '&amp;'))}</pre>`}
            style={{ width: width === 'desktop' ? 680 : 375 }}
          />
          {preview.text && (
            <details>
              <summary>Plain-text part</summary>
              <pre className="text-part">{preview.text}</pre>
            </details>
          )}
        </div>
      )}
      {preview && template.channel === 'sms' && (
        <div className="sms-preview">
          <div className="bubble" data-testid="sms-bubble">
            {preview.text}
          </div>
          <div className="muted small" data-testid="sms-segments">
            {preview.sms ? `${preview.sms.characters} characters, ${preview.sms.encoding}, ${preview.sms.segments} segment${preview.sms.segments === 1 ? '' : 's'}` : ''}
          </div>
        </div>
      )}
    </div>
  );
}
