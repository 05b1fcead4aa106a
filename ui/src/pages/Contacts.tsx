// Contacts: every contact a page at a time, or those a search finds (a part of an email, phone,
// user id or any other id the contact has had; a number is also tried as a contact id).
import { useEffect, useState } from 'react';
import { api, describe, ok } from '../api/client';
import { ErrorBanner } from '../components/common';
import { searchQuery } from '../lib/contacts';
import { Link } from '../router';

export interface ContactSummary {
  id: number;
  user_id: string | null;
  email: string | null;
  phone: string | null;
  traits: Record<string, unknown>;
  updated_at: string;
}

/** Contacts listed on a page. */
export const PAGE_SIZE = 50;

/** What the table shows: the contacts found, and where the next page starts (none: last). */
interface Listing {
  contacts: ContactSummary[];
  next: number | null;
  /** The search it answers ('' when browsing). */
  searched: string;
}

export function Contacts() {
  const [text, setText] = useState('');
  const [listing, setListing] = useState<Listing | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  /** Loads the page after contact `after` of the search `query` ('' lists every contact). */
  const load = async (query: string, after: number | null) => {
    setBusy(true);
    setError(null);
    try {
      const found: ContactSummary[] = [];
      // A number may be a contact id.
      if (after === null && /^\d+$/.test(query)) {
        try {
          found.push(await ok<ContactSummary>(api.GET('/v1/contacts/{id}', { params: { path: { id: Number(query) } } })));
        } catch {
          // Not an id: the search may still find it.
        }
      }
      const params: Record<string, string> = { ...searchQuery(query), limit: String(PAGE_SIZE) };
      if (after !== null) params.after = String(after);
      const r = await ok<{ contacts: ContactSummary[] }>(api.GET('/v1/contacts', { params: { query: params as never } }));
      for (const c of r.contacts) if (!found.some((f) => f.id === c.id)) found.push(c);
      const last = r.contacts.at(-1);
      setListing((before) => ({
        contacts: after === null || !before ? found : [...before.contacts, ...found],
        next: r.contacts.length === PAGE_SIZE && last ? last.id : null,
        searched: query,
      }));
    } catch (e) {
      setError(describe(e));
    } finally {
      setBusy(false);
    }
  };

  useEffect(() => {
    void load('', null);
  }, []);

  return (
    <div className="page">
      <h1>Contacts</h1>
      <form
        className="searchbar"
        onSubmit={(e) => {
          e.preventDefault();
          void load(text.trim(), null);
        }}
      >
        <input aria-label="Search contacts" placeholder="A part of an email, phone or user id, or a contact id" value={text} onChange={(e) => setText(e.target.value)} autoFocus />
        <button className="primary" type="submit" disabled={busy}>
          Search
        </button>
        {listing?.searched && (
          <button
            type="button"
            onClick={() => {
              setText('');
              void load('', null);
            }}
          >
            Show all
          </button>
        )}
      </form>
      <ErrorBanner error={error} />
      {listing && (
        <>
          <table className="table" aria-label={listing.searched ? 'Contacts found' : 'All contacts'}>
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
              {listing.contacts.length === 0 && (
                <tr>
                  <td colSpan={5} className="muted">
                    {listing.searched ? 'No contact matches.' : 'No contacts yet: send an identify call or import a CSV file.'}
                  </td>
                </tr>
              )}
              {listing.contacts.map((c) => (
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
          {listing.next !== null && (
            <button onClick={() => void load(listing.searched, listing.next)} disabled={busy}>
              More contacts
            </button>
          )}
        </>
      )}
    </div>
  );
}
