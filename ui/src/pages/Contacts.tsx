// Contact search by email, phone, user id or contact id.
import { useState } from 'react';
import { api, describe, ok } from '../api/client';
import { ErrorBanner } from '../components/common';
import { Link } from '../router';

export interface ContactSummary {
  id: number;
  user_id: string | null;
  email: string | null;
  phone: string | null;
  traits: Record<string, unknown>;
  updated_at: string;
}

/** Which query parameter a search box text stands for. */
export function searchQuery(text: string): Record<string, string> {
  const q = text.trim();
  if (q.includes('@')) return { email: q };
  const digits = q.replace(/[\s\-().]/g, '');
  if (/^\+\d{6,15}$/.test(digits)) return { phone: digits };
  return { q };
}

export function Contacts() {
  const [text, setText] = useState('');
  const [results, setResults] = useState<ContactSummary[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const search = async () => {
    setBusy(true);
    setError(null);
    try {
      const q = text.trim();
      const found: ContactSummary[] = [];
      // A number may be a contact id.
      if (/^\d+$/.test(q)) {
        try {
          found.push(await ok<ContactSummary>(api.GET('/v1/contacts/{id}', { params: { path: { id: Number(q) } } })));
        } catch {
          // Not an id: the other searches may still find it.
        }
      }
      const r = await ok<{ contacts: ContactSummary[] }>(api.GET('/v1/contacts', { params: { query: { ...searchQuery(q), limit: '50' } as never } }));
      for (const c of r.contacts) if (!found.some((f) => f.id === c.id)) found.push(c);
      setResults(found);
    } catch (e) {
      setError(describe(e));
    } finally {
      setBusy(false);
    }
  };
  return (
    <div className="page">
      <h1>Contacts</h1>
      <form
        className="searchbar"
        onSubmit={(e) => {
          e.preventDefault();
          void search();
        }}
      >
        <input aria-label="Search contacts" placeholder="Email, phone (+E.164), user id or contact id" value={text} onChange={(e) => setText(e.target.value)} autoFocus />
        <button className="primary" type="submit" disabled={busy}>
          Search
        </button>
      </form>
      <ErrorBanner error={error} />
      {results && (
        <table className="table" aria-label="Contacts found">
          <thead>
            <tr>
              <th>Id</th>
              <th>User id</th>
              <th>Email</th>
              <th>Phone</th>
              <th>Name</th>
            </tr>
          </thead>
          <tbody>
            {results.length === 0 && (
              <tr>
                <td colSpan={5} className="muted">
                  No contact matches.
                </td>
              </tr>
            )}
            {results.map((c) => (
              <tr key={c.id}>
                <td>
                  <Link to={`/contacts/${c.id}`}>#{c.id}</Link>
                </td>
                <td>
                  <Link to={`/contacts/${c.id}`}>{c.user_id ?? '—'}</Link>
                </td>
                <td>{c.email ?? '—'}</td>
                <td>{c.phone ?? '—'}</td>
                <td>{[c.traits?.first_name, c.traits?.last_name].filter(Boolean).join(' ') || (c.traits?.name as string) || ''}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}
