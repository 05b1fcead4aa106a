// Contacts: every contact a page at a time, or those a search finds (a part of an email, phone,
// user id or any other id the contact has had; a number is also tried as a contact id), narrowed
// to the members of a segment or a list; the contacts checked (one by one, or all shown) are
// added to a list at once.
import { useEffect, useState } from 'react';
import { api, describe, ok } from '../api/client';
import { ErrorBanner, useLoad } from '../components/common';
import { type ContactFilter, filterQuery, filters, noFilter } from '../lib/contacts';
import { allSelected, selectedAmong, toggle, toggleAll } from '../lib/selection';
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
  /** The filter it answers. */
  filter: ContactFilter;
}

export function Contacts() {
  const [filter, setFilter] = useState<ContactFilter>(noFilter);
  const segments = useLoad(() => ok<{ segments: Array<{ id: string; name: string }> }>(api.GET('/v1/segments')), []);
  const lists = useLoad(() => ok<{ lists: Array<{ name: string }> }>(api.GET('/v1/lists')), []);
  const [listing, setListing] = useState<Listing | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [selected, setSelected] = useState<Set<number>>(new Set());
  const [target, setTarget] = useState('');
  const [added, setAdded] = useState<string | null>(null);

  /** Loads the page after contact `after` of the contacts `f` asks for. */
  const load = async (f: ContactFilter, after: number | null) => {
    const query = f.text.trim();
    setBusy(true);
    setError(null);
    try {
      const found: ContactSummary[] = [];
      // A number may be a contact id.
      if (after === null && /^\d+$/.test(query) && !f.segment && !f.list) {
        try {
          found.push(await ok<ContactSummary>(api.GET('/v1/contacts/{id}', { params: { path: { id: Number(query) } } })));
        } catch {
          // Not an id: the search may still find it.
        }
      }
      const params: Record<string, string> = { ...filterQuery(f), limit: String(PAGE_SIZE) };
      if (after !== null) params.after = String(after);
      const r = await ok<{ contacts: ContactSummary[] }>(api.GET('/v1/contacts', { params: { query: params as never } }));
      for (const c of r.contacts) if (!found.some((f) => f.id === c.id)) found.push(c);
      const last = r.contacts.at(-1);
      // A new search starts a new selection: what was checked is no longer shown.
      if (after === null) setSelected(new Set());
      setListing((before) => ({
        contacts: after === null || !before ? found : [...before.contacts, ...found],
        next: r.contacts.length === PAGE_SIZE && last ? last.id : null,
        filter: f,
      }));
    } catch (e) {
      setError(describe(e));
    } finally {
      setBusy(false);
    }
  };

  useEffect(() => {
    void load(noFilter, null);
  }, []);

  const shownIds = listing?.contacts.map((c) => c.id) ?? [];
  const chosen = selectedAmong(selected, shownIds);
  const addToList = async () => {
    setError(null);
    setAdded(null);
    try {
      await ok(api.POST('/v1/lists/{name}/members', { params: { path: { name: target } }, body: { contact_ids: chosen } }));
      setAdded(`Added ${chosen.length} contact${chosen.length === 1 ? '' : 's'} to ${target}.`);
      setSelected(new Set());
      await lists.reload();
    } catch (e) {
      setError(describe(e));
    }
  };

  return (
    <div className="page">
      <h1>Contacts</h1>
      <form
        className="searchbar"
        onSubmit={(e) => {
          e.preventDefault();
          void load(filter, null);
        }}
      >
        <input aria-label="Search contacts" placeholder="A part of an email, phone or user id, or a contact id" value={filter.text} onChange={(e) => setFilter({ ...filter, text: e.target.value })} autoFocus />
        <select
          aria-label="In segment"
          value={filter.segment}
          onChange={(e) => {
            const f = { ...filter, segment: e.target.value };
            setFilter(f);
            void load(f, null);
          }}
        >
          <option value="">Any segment</option>
          {(segments.data?.segments ?? []).map((g) => (
            <option key={g.id} value={g.id}>
              {g.name || g.id}
            </option>
          ))}
        </select>
        <select
          aria-label="In list"
          value={filter.list}
          onChange={(e) => {
            const f = { ...filter, list: e.target.value };
            setFilter(f);
            void load(f, null);
          }}
        >
          <option value="">Any list</option>
          {(lists.data?.lists ?? []).map((l) => (
            <option key={l.name} value={l.name}>
              {l.name}
            </option>
          ))}
        </select>
        <button className="primary" type="submit" disabled={busy}>
          Search
        </button>
        {listing && filters(listing.filter) && (
          <button
            type="button"
            onClick={() => {
              setFilter(noFilter);
              void load(noFilter, null);
            }}
          >
            Show all
          </button>
        )}
      </form>
      <ErrorBanner error={error} />
      {listing && listing.contacts.length > 0 && (
        <div className="bulkbar" data-testid="bulk-add">
          <span className="muted">
            {chosen.length} selected
          </span>
          <select aria-label="Add to list" value={target} onChange={(e) => setTarget(e.target.value)}>
            <option value="">Choose a list…</option>
            {(lists.data?.lists ?? []).map((l) => (
              <option key={l.name} value={l.name}>
                {l.name}
              </option>
            ))}
          </select>
          <button onClick={() => void addToList()} disabled={chosen.length === 0 || !target}>
            Add to list
          </button>
          {added && <span className="ok-text">{added}</span>}
        </div>
      )}
      {listing && (
        <>
          <table className="table" aria-label={filters(listing.filter) ? 'Contacts found' : 'All contacts'}>
            <thead>
              <tr>
                <th className="check">
                  <input type="checkbox" aria-label="Select all on this page" checked={allSelected(selected, shownIds)} onChange={() => setSelected(toggleAll(selected, shownIds))} />
                </th>
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
                  <td colSpan={6} className="muted">
                    {filters(listing.filter) ? 'No contact matches.' : 'No contacts yet: send an identify call or import a CSV file.'}
                  </td>
                </tr>
              )}
              {listing.contacts.map((c) => (
                <tr key={c.id}>
                  <td className="check">
                    <input type="checkbox" aria-label={`Select ${c.user_id ?? c.email ?? `#${c.id}`}`} checked={selected.has(c.id)} onChange={() => setSelected(toggle(selected, c.id))} />
                  </td>
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
            <button onClick={() => void load(listing.filter, listing.next)} disabled={busy}>
              More contacts
            </button>
          )}
        </>
      )}
    </div>
  );
}
