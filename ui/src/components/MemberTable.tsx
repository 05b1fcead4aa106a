// The members of a segment or a list, a page at a time (forwards and back), each linking to its
// contact page, with an optional action per member (remove from the list).
import { type ReactNode, useEffect, useState } from 'react';
import { describe } from '../api/client';
import { currentAfter, firstPage, nextPage, pageOf, previousPage, type PageStarts } from '../lib/paging';
import { Link } from '../router';
import { ErrorBanner } from './common';

export interface Member {
  id: number;
  user_id: string | null;
  email: string | null;
  phone: string | null;
}

/** Members shown on a page. */
export const MEMBERS_PAGE_SIZE = 25;

export function MemberTable({
  load,
  version,
  action,
  label,
  empty,
}: {
  /** Up to `limit` members after contact `after` (null: from the first). */
  load: (after: number | null, limit: number) => Promise<Member[]>;
  /** Changes whenever the members may have changed: the page is loaded again. */
  version: unknown;
  action?: (m: Member) => ReactNode;
  label: string;
  empty: string;
}) {
  const [pages, setPages] = useState<PageStarts>(firstPage);
  const [page, setPage] = useState<{ shown: Member[]; more: boolean } | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    let current = true;
    load(currentAfter(pages), MEMBERS_PAGE_SIZE + 1)
      .then((fetched) => {
        if (!current) return;
        setPage(pageOf(fetched, MEMBERS_PAGE_SIZE));
        setError(null);
      })
      .catch((e) => current && setError(describe(e)));
    return () => {
      current = false;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [pages, version]);

  const last = page?.shown.at(-1);
  return (
    <>
      <ErrorBanner error={error} />
      <table className="table compact" aria-label={label}>
        <thead>
          <tr>
            <th>Id</th>
            <th>User id</th>
            <th>Email</th>
            <th>Phone</th>
            {action && <th />}
          </tr>
        </thead>
        <tbody>
          {page && page.shown.length === 0 && (
            <tr>
              <td colSpan={action ? 5 : 4} className="muted">
                {pages.length > 1 ? 'No more members.' : empty}
              </td>
            </tr>
          )}
          {page?.shown.map((m) => (
            <tr key={m.id}>
              <td>
                <Link to={`/contacts/${m.id}`}>#{m.id}</Link>
              </td>
              <td>{m.user_id ?? '—'}</td>
              <td>{m.email ?? '—'}</td>
              <td>{m.phone ?? '—'}</td>
              {action && <td className="num">{action(m)}</td>}
            </tr>
          ))}
        </tbody>
      </table>
      <div className="pager">
        <button className="small" disabled={pages.length === 1} onClick={() => setPages(previousPage(pages))}>
          ← Previous
        </button>
        <span className="muted small">Page {pages.length}</span>
        <button className="small" disabled={!page?.more || !last} onClick={() => last && setPages(nextPage(pages, last.id))}>
          Next →
        </button>
      </div>
    </>
  );
}
