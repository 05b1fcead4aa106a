// Who is behind a journey's number (GET /v1/journeys/{id}/people, docs/reports.md): which
// list a number of the report opens, the list's parameters in the page's address, the query a
// page of it is asked with, and its CSV gathered page by page. Pure, so it is unit-tested; the
// people page and the report's links only use what this computes.
import { parseCsv } from './csv';

export type PeopleKind = 'waiting' | 'messaged' | 'converted';
export const PEOPLE_KINDS: PeopleKind[] = ['waiting', 'messaged', 'converted'];

/** What `status` narrows messages to (the server's list, `PEOPLE_STATUSES`). */
export const MESSAGE_STATUSES = ['queued', 'sent', 'delivered', 'failed', 'suppressed', 'bounced', 'opened', 'clicked', 'unsubscribed', 'complained'] as const;
export const CHANNELS = ['email', 'sms', 'webhook'] as const;

/** Rows listed on a page unless the address says otherwise. */
export const PEOPLE_PAGE = 50;
/** Rows asked for per request of the CSV download (the API's most). */
export const CSV_PAGE = 1000;

export interface PeopleParams {
  show: PeopleKind;
  /** A node; undefined for the whole journey. */
  node?: string;
  /** `messaged` only. */
  status?: string;
  /** `messaged` only. */
  channel?: string;
  /** A published version; undefined for all. */
  version?: number;
  /** Rows per page, 1 to 1000. */
  limit: number;
  /** The address's search of the report the list was opened from (without `?`), so that the
   * way back shows the same report; the list does not depend on it. */
  report?: string;
}

/** The parameters in the page's address (`?show=messaged&node=mail&status=opened`); what is
 * missing or not understood takes its default (messaged, the whole journey, 50 a page), and a
 * status or channel is kept for messages only, as the API takes them. */
export function peopleFromAddress(search: string): PeopleParams {
  const q = new URLSearchParams(search);
  const show = PEOPLE_KINDS.includes(q.get('show') as PeopleKind) ? (q.get('show') as PeopleKind) : 'messaged';
  const limit = Number(q.get('limit'));
  const version = Number(q.get('version'));
  const p: PeopleParams = { show, limit: Number.isInteger(limit) && limit >= 1 && limit <= 1000 ? limit : PEOPLE_PAGE };
  if (q.get('node')) p.node = q.get('node')!;
  if (show === 'messaged') {
    const status = q.get('status') ?? '';
    if ((MESSAGE_STATUSES as readonly string[]).includes(status)) p.status = status;
    const channel = q.get('channel') ?? '';
    if ((CHANNELS as readonly string[]).includes(channel)) p.channel = channel;
  }
  if (Number.isInteger(version) && version > 0) p.version = version;
  if (q.get('report')) p.report = q.get('report')!;
  return p;
}

/** The address's search string for `p`, `show` always, the rest when set. */
export function addressOfPeople(p: Partial<PeopleParams> & { show: PeopleKind }): string {
  const q = new URLSearchParams({ show: p.show });
  if (p.node) q.set('node', p.node);
  if (p.show === 'messaged' && p.status) q.set('status', p.status);
  if (p.show === 'messaged' && p.channel) q.set('channel', p.channel);
  if (p.version !== undefined) q.set('version', String(p.version));
  if (p.limit !== undefined && p.limit !== PEOPLE_PAGE) q.set('limit', String(p.limit));
  if (p.report) q.set('report', p.report);
  return `?${q.toString()}`;
}

/** The report a list was opened from (path and search), for the way back. */
export function reportPathOf(journeyId: string, p: Pick<PeopleParams, 'report'>): string {
  return `/journeys/${encodeURIComponent(journeyId)}/report${p.report ? `?${p.report}` : ''}`;
}

/** The page (path and search) that lists who is behind a number of journey `journeyId`. */
export function peoplePath(journeyId: string, p: Partial<PeopleParams> & { show: PeopleKind }): string {
  return `/journeys/${encodeURIComponent(journeyId)}/people${addressOfPeople(p)}`;
}

export interface PeopleQuery {
  show: PeopleKind;
  node?: string;
  status?: string;
  channel?: string;
  version?: number;
  limit: number;
  after?: number;
}

/** The API query of the page after `after` (none: the first), `limit` rows (default: `p`'s). */
export function peopleQuery(p: PeopleParams, after?: number | null, limit = p.limit): PeopleQuery {
  const q: PeopleQuery = { show: p.show, limit };
  if (p.node) q.node = p.node;
  if (p.show === 'messaged' && p.status) q.status = p.status;
  if (p.show === 'messaged' && p.channel) q.channel = p.channel;
  if (p.version !== undefined) q.version = p.version;
  if (after !== undefined && after !== null) q.after = after;
  return q;
}

/** The same query as a URL search string (for the CSV download). */
export function peopleSearch(p: PeopleParams, after?: number | null, limit = p.limit): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(peopleQuery(p, after, limit))) q.set(k, String(v));
  return q.toString();
}

/** What the list is, in words: `Messages of mail-plain opened by people (email, version 2)`. */
export function peopleTitle(p: PeopleParams): string {
  const at = p.node ? ` at ${p.node}` : '';
  const of = p.node ? ` of ${p.node}` : '';
  let s: string;
  if (p.show === 'waiting') s = `Waiting now${at}`;
  else if (p.show === 'converted') s = p.node ? `Conversions credited to ${p.node}` : 'Conversions';
  else {
    const did: Record<string, string> = {
      opened: 'opened by people',
      clicked: 'clicked by people',
      unsubscribed: 'unsubscribed through',
      complained: 'complained about',
      delivered: 'delivered',
    };
    const status = p.status ? ` ${did[p.status] ?? p.status}` : '';
    s = `Messages${of}${status}`;
  }
  const notes = [p.channel, p.version !== undefined ? `version ${p.version}` : undefined].filter(Boolean);
  return notes.length ? `${s} (${notes.join(', ')})` : s;
}

/** The CSV column each kind pages by: its `cursor` (the message, or the enrollment). */
const CURSOR_COLUMN: Record<PeopleKind, string> = { waiting: 'enrollment_id', messaged: 'message_id', converted: 'enrollment_id' };

/** Where the page after a CSV page starts: the cursor of its last row, or null when the page
 * was not full (`size` rows), so it was the last. */
export function csvNextCursor(show: PeopleKind, csv: string, size: number): number | null {
  const { header, records } = parseCsv(csv, ',');
  if (records.length < size) return null;
  const column = header.indexOf(CURSOR_COLUMN[show]);
  const last = records[records.length - 1];
  const cursor = column < 0 || !last ? NaN : Number(last.cells[column]);
  return Number.isInteger(cursor) ? cursor : null;
}

/** CSV pages as one file: the first page's header once, then every page's rows. */
export function joinCsvPages(pages: string[]): string {
  if (pages.length === 0) return '';
  const body = (page: string) => {
    const nl = page.indexOf('\n');
    return nl < 0 ? '' : page.slice(nl + 1);
  };
  let out = pages[0];
  for (const page of pages.slice(1)) {
    const rows = body(page);
    if (!rows) continue;
    if (!out.endsWith('\n')) out += '\n';
    out += rows;
  }
  return out;
}
