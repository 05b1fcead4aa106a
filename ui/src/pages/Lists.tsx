// Lists: every list with its member count, and creating one; a list's members a page at a time,
// removing them, adding contacts that a search finds (any id, email, phone or a contact id), and
// importing a CSV file into the list: read and checked here (ui/src/lib/csv.ts), sent to
// POST /v1/contacts/import with `list` in batches, with the progress and every rejected row.
import { useState } from 'react';
import { api, describe, ok } from '../api/client';
import { ErrorBanner, Loading, useLoad, when } from '../components/common';
import { type Member, MemberTable } from '../components/MemberTable';
import { searchQuery } from '../lib/contacts';
import { batches, detectDelimiter, headerProblem, importRows, parseCsv, type Rejected, rejectedByServer } from '../lib/csv';
import { Link, navigate } from '../router';

interface ListSummary {
  name: string;
  members: number;
  created_at: string;
}

/** Rows sent to the server in one import request (at most 5000): small enough that the progress
 * moves on a file of a few thousand rows. */
const IMPORT_BATCH_ROWS = 250;

export function Lists({ selected }: { selected?: string }) {
  const lists = useLoad(() => ok<{ lists: ListSummary[] }>(api.GET('/v1/lists')), []);
  if (selected) return <ListPage name={selected} summary={lists.data?.lists.find((l) => l.name === selected)} loaded={!!lists.data} onChanged={() => lists.reload()} />;
  return (
    <div className="page">
      <h1>Lists</h1>
      <NewList />
      <ErrorBanner error={lists.error} />
      {lists.loading && !lists.data && <Loading what="lists" />}
      {lists.data && (
        <table className="table" aria-label="Lists">
          <thead>
            <tr>
              <th>List</th>
              <th className="num">Members</th>
              <th>Created</th>
            </tr>
          </thead>
          <tbody>
            {lists.data.lists.length === 0 && (
              <tr>
                <td colSpan={3} className="muted">
                  No lists yet.
                </td>
              </tr>
            )}
            {lists.data.lists.map((l) => (
              <tr key={l.name}>
                <td>
                  <Link to={`/lists/${encodeURIComponent(l.name)}`}>{l.name}</Link>
                </td>
                <td className="num" data-testid={`list-members-${l.name}`}>
                  {l.members}
                </td>
                <td className="muted small">{when(l.created_at)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}

function NewList() {
  const [name, setName] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  return (
    <>
      <form
        className="searchbar"
        onSubmit={async (e) => {
          e.preventDefault();
          setBusy(true);
          setError(null);
          try {
            const l = await ok<ListSummary>(api.POST('/v1/lists', { body: { name } }));
            navigate(`/lists/${encodeURIComponent(l.name)}`);
          } catch (err) {
            setError(describe(err));
          } finally {
            setBusy(false);
          }
        }}
      >
        <input aria-label="New list name" placeholder="A name for a new list" value={name} onChange={(e) => setName(e.target.value)} />
        <button className="primary" type="submit" disabled={busy || !name.trim()}>
          Create list
        </button>
      </form>
      <ErrorBanner error={error} onClose={() => setError(null)} />
    </>
  );
}

function ListPage({ name, summary, loaded, onChanged }: { name: string; summary?: ListSummary; loaded: boolean; onChanged: () => Promise<void> }) {
  /** Bumped after every change to the members, so that the table loads its page again. */
  const [version, setVersion] = useState(0);
  const [error, setError] = useState<string | null>(null);
  const changed = async () => {
    setVersion((v) => v + 1);
    await onChanged();
  };
  const change = async (ids: number[], add: boolean) => {
    setError(null);
    try {
      const call = add
        ? api.POST('/v1/lists/{name}/members', { params: { path: { name } }, body: { contact_ids: ids } })
        : api.DELETE('/v1/lists/{name}/members', { params: { path: { name } }, body: { contact_ids: ids } });
      await ok(call);
      await changed();
    } catch (e) {
      setError(describe(e));
    }
  };
  return (
    <div className="page">
      <Link to="/lists" className="muted">
        ← Lists
      </Link>
      <h1>
        {name}{' '}
        {summary && (
          <span className="muted small" data-testid="list-count">
            {summary.members} member{summary.members === 1 ? '' : 's'}
          </span>
        )}
      </h1>
      {loaded && !summary && <p className="muted">There is no list named “{name}” yet: adding contacts creates it.</p>}
      <ErrorBanner error={error} onClose={() => setError(null)} />
      <div className="cards">
        <section className="card">
          <h2>Add contacts</h2>
          <AddContacts onAdd={(ids) => change(ids, true)} />
        </section>
        <section className="card">
          <h2>Import a CSV file</h2>
          <CsvImport list={name} onImported={changed} />
        </section>
      </div>
      <h2>Members</h2>
      <MemberTable
        label="List members"
        empty="No members yet."
        version={version}
        load={async (after, limit) => {
          const query = after === null ? { limit } : { limit, after };
          const r = await ok<{ contacts: Member[] }>(api.GET('/v1/lists/{name}/members', { params: { path: { name }, query } }));
          return r.contacts;
        }}
        action={(m) => (
          <button className="small danger" onClick={() => void change([m.id], false)} aria-label={`Remove ${m.user_id ?? m.email ?? m.id}`}>
            Remove
          </button>
        )}
      />
    </div>
  );
}

/** Finds contacts as the contacts page does (a number is also tried as a contact id) and adds
 * them, one or all found. */
function AddContacts({ onAdd }: { onAdd: (ids: number[]) => Promise<void> }) {
  const [text, setText] = useState('');
  const [found, setFound] = useState<Member[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [added, setAdded] = useState<Set<number>>(new Set());
  const search = async () => {
    setError(null);
    const query = text.trim();
    try {
      const out: Member[] = [];
      if (/^\d+$/.test(query)) {
        try {
          out.push(await ok<Member>(api.GET('/v1/contacts/{id}', { params: { path: { id: Number(query) } } })));
        } catch {
          // Not a contact id: the search may still find it.
        }
      }
      const r = await ok<{ contacts: Member[] }>(api.GET('/v1/contacts', { params: { query: { ...searchQuery(query), limit: 50 } as never } }));
      for (const c of r.contacts) if (!out.some((o) => o.id === c.id)) out.push(c);
      setFound(out);
      setAdded(new Set());
    } catch (e) {
      setError(describe(e));
    }
  };
  const add = async (ids: number[]) => {
    await onAdd(ids);
    setAdded((before) => new Set([...before, ...ids]));
  };
  return (
    <>
      <form
        className="searchbar"
        onSubmit={(e) => {
          e.preventDefault();
          void search();
        }}
      >
        <input aria-label="Find contacts to add" placeholder="A user id, email, phone or contact id" value={text} onChange={(e) => setText(e.target.value)} />
        <button type="submit" disabled={!text.trim()}>
          Find
        </button>
      </form>
      <ErrorBanner error={error} />
      {found && found.length === 0 && <p className="muted">No contact matches.</p>}
      {found && found.length > 0 && (
        <>
          <table className="table compact" aria-label="Contacts found">
            <tbody>
              {found.map((c) => (
                <tr key={c.id}>
                  <td>#{c.id}</td>
                  <td>{c.user_id ?? '—'}</td>
                  <td>{c.email ?? '—'}</td>
                  <td className="num">
                    {added.has(c.id) ? (
                      <span className="ok-text small">added</span>
                    ) : (
                      <button className="small" onClick={() => void add([c.id])} aria-label={`Add ${c.user_id ?? c.email ?? c.id}`}>
                        Add
                      </button>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          {found.length > 1 && (
            <button className="small" onClick={() => void add(found.map((c) => c.id))}>
              Add all {found.length}
            </button>
          )}
        </>
      )}
    </>
  );
}

/** Where an import stands: rows sent of all, contacts imported, rows rejected so far. */
interface ImportState {
  file: string;
  total: number;
  sent: number;
  contacts: number;
  imported: number;
  rejected: Rejected[];
  done: boolean;
  error: string | null;
}

function CsvImport({ list, onImported }: { list: string; onImported: () => Promise<void> }) {
  const [state, setState] = useState<ImportState | null>(null);
  const running = state !== null && !state.done;

  const importFile = async (file: File) => {
    const text = await file.text();
    const delimiter = detectDelimiter(text.replace(/^\uFEFF/, ''));
    const parsed = parseCsv(text, delimiter);
    const base: ImportState = { file: file.name, total: 0, sent: 0, contacts: 0, imported: 0, rejected: [], done: false, error: null };
    const problem = headerProblem(parsed.header, delimiter);
    if (problem) {
      setState({ ...base, done: true, error: `${file.name}: ${problem}` });
      return;
    }
    const { rows, rejected } = importRows(parsed);
    let now: ImportState = { ...base, total: rows.length + rejected.length, sent: rejected.length, rejected };
    setState(now);
    for (const batch of batches(rows, IMPORT_BATCH_ROWS)) {
      try {
        const r = await ok<{ imported: number; contacts: number; errors: Array<{ index: number; field: string; message: string }> }>(
          api.POST('/v1/contacts/import', { body: { contacts: batch.map((b) => b.contact), list } }),
        );
        now = {
          ...now,
          sent: now.sent + batch.length,
          imported: now.imported + r.imported,
          contacts: now.contacts + r.contacts,
          rejected: [...now.rejected, ...rejectedByServer(r.errors, batch.map((b) => b.line))],
        };
        setState(now);
      } catch (e) {
        // Stop at the first batch the server refuses: the rows after it are not sent.
        now = { ...now, done: true, error: `stopped after ${now.sent} of ${now.total} rows: ${describe(e)}` };
        setState(now);
        await onImported();
        return;
      }
    }
    setState({ ...now, done: true });
    await onImported();
  };

  return (
    <>
      <p className="muted small">
        A header row, then one contact a row: columns <code>user_id</code>, <code>email</code>, <code>phone</code>, <code>timezone</code>; any other column becomes a trait. Separated by <code>,</code> <code>;</code> tab or <code>|</code>, UTF-8.
      </p>
      <input
        type="file"
        accept=".csv,.tsv,.txt,text/csv"
        aria-label="CSV file"
        disabled={running}
        onChange={(e) => {
          const file = e.target.files?.[0];
          e.target.value = '';
          if (file) void importFile(file);
        }}
      />
      {state && (
        <div className="import-state" data-testid="import-state">
          <progress value={state.sent} max={Math.max(state.total, 1)} aria-label="Import progress" />
          <div data-testid="import-progress">
            {state.file}: {state.sent} of {state.total} rows read{state.done ? '' : '…'}
          </div>
          {state.done && !state.error && (
            <div className="ok-text" data-testid="import-summary">
              Imported {state.contacts} contact{state.contacts === 1 ? '' : 's'} from {state.imported} row{state.imported === 1 ? '' : 's'}, rejected {state.rejected.length} row{state.rejected.length === 1 ? '' : 's'}.
            </div>
          )}
          <ErrorBanner error={state.error} />
          {state.rejected.length > 0 && (
            <table className="table compact" aria-label="Rejected rows">
              <thead>
                <tr>
                  <th>Line</th>
                  <th>Column</th>
                  <th>Why</th>
                </tr>
              </thead>
              <tbody>
                {[...state.rejected]
                  .sort((a, b) => a.line - b.line)
                  .map((r, i) => (
                    <tr key={i}>
                      <td>{r.line}</td>
                      <td>{r.column || '—'}</td>
                      <td>{r.message}</td>
                    </tr>
                  ))}
              </tbody>
            </table>
          )}
        </div>
      )}
    </>
  );
}
