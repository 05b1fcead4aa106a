// Contacts: every contact a page at a time, or those a search finds (a part of an email, phone,
// name, user id or any other id the contact has had; a number is also tried as a contact id),
// narrowed to the members of a segment or a list, to a trait's value and to a recorded
// subscription, sorted by a column's header; the address keeps the filter. The contacts checked
// (one by one, or all shown) are added to a list at once.
import { useEffect, useState } from 'react';
import { api, describe, ok } from '../api/client';
import { ErrorBanner, useLoad, when } from '../components/common';
import {
  type ContactFilter,
  type SortColumn,
  addressOfFilter,
  consentOf,
  consentParts,
  filterFromAddress,
  filterQuery,
  filters,
  nextSort,
  noFilter,
  sortState,
} from '../lib/contacts';
import { allSelected, selectedAmong, toggle, toggleAll } from '../lib/selection';
import { Link } from '../router';

export interface ContactSummary {
  id: number;
  user_id: string | null;
  email: string | null;
  phone: string | null;
  traits: Record<string, unknown>;
  created_at: string;
  updated_at: string;
}

/** Contacts listed on a page. */
export const PAGE_SIZE = 50;

/** What the table shows: the contacts found, and where the next page starts (its cursor; none:
 * last). */
interface Listing {
  contacts: ContactSummary[];
  next: string | null;
  /** The filter it answers. */
  filter: ContactFilter;
}

export function Contacts() {
  const [filter, setFilter] = useState<ContactFilter>(() => filterFromAddress(window.location.search));
  const segments = useLoad(() => ok<{ segments: Array<{ id: string; name: string }> }>(api.GET('/v1/segments')), []);
  const lists = useLoad(() => ok<{ lists: Array<{ name: string }> }>(api.GET('/v1/lists')), []);
  const topics = useLoad(() => ok<{ topics: Array<{ channel: string; topic: string }> }>(api.GET('/v1/topics')), []);
  const [listing, setListing] = useState<Listing | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [selected, setSelected] = useState<Set<number>>(new Set());
  const [target, setTarget] = useState('');
  const [added, setAdded] = useState<string | null>(null);

  /** Loads the page at `cursor` (none: the first) of the contacts `f` asks for. */
  const load = async (f: ContactFilter, cursor: string | null) => {
    const query = f.text.trim();
    setBusy(true);
    setError(null);
    if (cursor === null) window.history.replaceState(null, '', `/contacts${addressOfFilter(f)}`);
    try {
      const found: ContactSummary[] = [];
      // A number may be a contact id.
      if (cursor === null && /^\d+$/.test(query) && !filters({ ...f, text: '' })) {
        try {
          found.push(await ok<ContactSummary>(api.GET('/v1/contacts/{id}', { params: { path: { id: Number(query) } } })));
        } catch {
          // Not an id: the search may still find it.
        }
      }
      const params: Record<string, string> = { ...filterQuery(f), limit: String(PAGE_SIZE) };
      if (cursor !== null) params.cursor = cursor;
      const r = await ok<{ contacts: ContactSummary[]; next_cursor?: string | null }>(api.GET('/v1/contacts', { params: { query: params as never } }));
      for (const c of r.contacts) if (!found.some((f) => f.id === c.id)) found.push(c);
      // A new search starts a new selection: what was checked is no longer shown.
      if (cursor === null) setSelected(new Set());
      setListing((before) => ({
        contacts: cursor === null || !before ? found : [...before.contacts, ...found],
        next: r.next_cursor ?? null,
        filter: f,
      }));
    } catch (e) {
      setError(describe(e));
    } finally {
      setBusy(false);
    }
  };

  useEffect(() => {
    void load(filter, null);
  }, []);

  /** Applies a change of the filter at once (a choice in a menu, a column's order). */
  const change = (f: ContactFilter) => {
    setFilter(f);
    void load(f, null);
  };
  // The consent filter's three fields; it filters once a status is chosen.
  const [consent, setConsentFields] = useState(() => consentParts(filter.consent));
  const applyConsent = (fields: typeof consent) => {
    setConsentFields(fields);
    const next = { ...filter, consent: consentOf(fields) };
    if (next.consent !== filter.consent) change(next);
  };
  const showAll = () => {
    setConsentFields(consentParts(''));
    change({ ...noFilter, sort: filter.sort });
  };

  /** A column header that sorts by it (and the other way on a second click). A function, not
   * a component declared here, which would be a new component at each render and lose the
   * keyboard focus of its button. */
  const sortHeader = (column: SortColumn, label: string) => (
    <th aria-sort={sortState(filter.sort, column)}>
      <button type="button" className="link sort" onClick={() => change({ ...filter, sort: nextSort(filter.sort, column) })}>
        {label}
        <span aria-hidden="true">{{ ascending: ' ▲', descending: ' ▼', none: '' }[sortState(filter.sort, column)]}</span>
      </button>
    </th>
  );

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
        <input aria-label="Search contacts" placeholder="A part of an email, phone, name or user id, or a contact id" value={filter.text} onChange={(e) => setFilter({ ...filter, text: e.target.value })} autoFocus />
        <button className="primary" type="submit" disabled={busy}>
          Search
        </button>
        {listing && filters(listing.filter) && (
          <button type="button" onClick={showAll}>
            Show all
          </button>
        )}
      </form>
      <form
        className="filterbar"
        aria-label="Filters"
        onSubmit={(e) => {
          e.preventDefault();
          change({ ...filter, consent: consentOf(consent) });
        }}
      >
        <select aria-label="In segment" value={filter.segment} onChange={(e) => change({ ...filter, segment: e.target.value })}>
          <option value="">Any segment</option>
          {(segments.data?.segments ?? []).map((g) => (
            <option key={g.id} value={g.id}>
              {g.name || g.id}
            </option>
          ))}
        </select>
        <select aria-label="In list" value={filter.list} onChange={(e) => change({ ...filter, list: e.target.value })}>
          <option value="">Any list</option>
          {(lists.data?.lists ?? []).map((l) => (
            <option key={l.name} value={l.name}>
              {l.name}
            </option>
          ))}
        </select>
        <input
          aria-label="Trait"
          title="A trait and its value, as key:value (a number or true/false compares as one)"
          placeholder="Trait, e.g. plan:pro"
          value={filter.trait}
          onChange={(e) => setFilter({ ...filter, trait: e.target.value })}
          onBlur={() => {
            if (filter.trait.trim() !== (listing?.filter.trait ?? '').trim()) void load(filter, null);
          }}
        />
        <span className="consent-filter">
          <select aria-label="Consent status" value={consent.status} onChange={(e) => applyConsent({ ...consent, status: e.target.value })}>
            <option value="">Any consent</option>
            <option value="subscribed">Subscribed to</option>
            <option value="pending">Pending for</option>
            <option value="unsubscribed">Unsubscribed from</option>
            <option value="none">No record for</option>
          </select>
          <select aria-label="Consent channel" value={consent.channel} onChange={(e) => applyConsent({ ...consent, channel: e.target.value })}>
            <option value="email">email</option>
            <option value="sms">sms</option>
          </select>
          <input
            aria-label="Consent topic"
            list="contact-topics"
            title="A topic, or * for all marketing"
            value={consent.topic}
            onChange={(e) => setConsentFields({ ...consent, topic: e.target.value })}
            onBlur={() => applyConsent(consent)}
          />
          <datalist id="contact-topics">
            <option value="*">all marketing</option>
            {[...new Set((topics.data?.topics ?? []).filter((t) => t.channel === consent.channel).map((t) => t.topic))].map((t) => (
              <option key={t} value={t} />
            ))}
          </datalist>
        </span>
        {/* Enter in a text field applies it. */}
        <button type="submit" hidden />
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
                {sortHeader('id', 'Id')}
                <th>User id</th>
                {sortHeader('email', 'Email')}
                <th>Phone</th>
                <th>Name</th>
                {sortHeader('created_at', 'Created')}
                {sortHeader('updated_at', 'Updated')}
              </tr>
            </thead>
            <tbody>
              {listing.contacts.length === 0 && (
                <tr>
                  <td colSpan={8} className="muted">
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
                  <td className="small">{when(c.created_at)}</td>
                  <td className="small">{when(c.updated_at)}</td>
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
