// What the contact pages show, apart from the pages: the search a text stands for, and how a
// timeline entry reads.

/** A timeline entry as the API gives it (`GET /v1/contacts/{id}/timeline`). */
export type Entry = Record<string, any> & { type: string; at: string };

/** Which query parameters a search box text stands for: a phone number as the API stores it
 * (typed with spaces or dashes), else a part of any id, email or phone. */
export function searchQuery(text: string): Record<string, string> {
  const q = text.trim();
  if (!q) return {};
  const digits = q.replace(/[\s\-().]/g, '');
  if (/^\+\d{6,15}$/.test(digits)) return { phone: digits };
  return { q };
}

/** What the contacts page asks for: the search box's text, the segment and the list the
 * contacts must be members of, a trait (`key:value`) and a recorded subscription
 * (`channel:topic:status`) they must have ('' for any), and their order (a `sort` of the API;
 * '' for by id). */
export interface ContactFilter {
  text: string;
  segment: string;
  list: string;
  trait: string;
  consent: string;
  sort: string;
}

export const noFilter: ContactFilter = { text: '', segment: '', list: '', trait: '', consent: '', sort: '' };

/** The query parameters of a filter (`GET /v1/contacts`). */
export function filterQuery(f: ContactFilter): Record<string, string> {
  const params = searchQuery(f.text);
  if (f.segment) params.segment = f.segment;
  if (f.list) params.list = f.list;
  if (f.trait.trim()) params.trait = f.trait.trim();
  if (f.consent) params.consent = f.consent;
  if (f.sort) params.sort = f.sort;
  return params;
}

/** Whether the filter narrows the contacts down at all (an order alone does not). */
export function filters(f: ContactFilter): boolean {
  return Object.keys(filterQuery({ ...f, sort: '' })).length > 0;
}

/** The parameters of the page's address that hold each part of a filter, so that a search
 * can be reloaded, bookmarked and shared. */
const addressKeys: Array<[keyof ContactFilter, string]> = [
  ['text', 'q'],
  ['segment', 'segment'],
  ['list', 'list'],
  ['trait', 'trait'],
  ['consent', 'consent'],
  ['sort', 'sort'],
];

/** The filter a page address's query string (`?q=ann&list=vip`) stands for. */
export function filterFromAddress(search: string): ContactFilter {
  const params = new URLSearchParams(search);
  const f = { ...noFilter };
  for (const [field, key] of addressKeys) f[field] = params.get(key) ?? '';
  return f;
}

/** The query string (with its `?`, or '' for none) that keeps a filter in the address. */
export function addressOfFilter(f: ContactFilter): string {
  const params = new URLSearchParams();
  for (const [field, key] of addressKeys) if (f[field]) params.set(key, f[field]);
  const s = params.toString();
  return s ? `?${s}` : '';
}

/** The sortable columns, each with the direction its first click asks for (times: newest
 * first). */
export const sortColumns = { id: 'id', email: 'email', created_at: '-created_at', updated_at: '-updated_at' } as const;

export type SortColumn = keyof typeof sortColumns;

/** The sort after a click on `column`'s header: its first direction, then the other way. */
export function nextSort(current: string, column: SortColumn): string {
  const first = sortColumns[column];
  const other = first.startsWith('-') ? first.slice(1) : `-${first}`;
  return (current || 'id') === first ? other : first;
}

/** How `column` is sorted now (for `aria-sort`). */
export function sortState(current: string, column: SortColumn): 'ascending' | 'descending' | 'none' {
  const sort = current || 'id';
  if (sort === column) return 'ascending';
  if (sort === `-${column}`) return 'descending';
  return 'none';
}

/** A consent filter's parts: channel, topic and status ('' status: any). */
export interface ConsentParts {
  channel: string;
  topic: string;
  status: string;
}

/** The parts of `channel:topic:status` (a topic may hold `:`; the status follows the last). */
export function consentParts(consent: string): ConsentParts {
  const first = consent.indexOf(':');
  const last = consent.lastIndexOf(':');
  if (first < 0 || last === first) return { channel: 'email', topic: '*', status: '' };
  return { channel: consent.slice(0, first), topic: consent.slice(first + 1, last), status: consent.slice(last + 1) };
}

/** The `consent` parameter of the parts ('' when no status is chosen). */
export function consentOf(p: ConsentParts): string {
  return p.status ? `${p.channel}:${p.topic.trim() || '*'}:${p.status}` : '';
}

/** An event's properties in a few words: the first few that are plain values, as `key: value`. */
export function propertySummary(properties: Record<string, unknown> | null | undefined, most = 4): string {
  const plain = Object.entries(properties ?? {}).filter(([, v]) => v !== null && ['string', 'number', 'boolean'].includes(typeof v));
  const shown = plain.slice(0, most).map(([k, v]) => `${k}: ${String(v)}`);
  const more = Object.keys(properties ?? {}).length - shown.length;
  return [...shown, ...(more > 0 ? [`+${more} more`] : [])].join(' · ');
}

export function timelineText(e: Entry): string {
  switch (e.type) {
    case 'event': {
      const summary = propertySummary(e.properties as Record<string, unknown> | null);
      return summary ? `${e.name} — ${summary}` : e.name;
    }
    case 'step':
      return `${e.journey_id} › ${e.node}: ${e.action}${e.detail ? ` ${JSON.stringify(e.detail)}` : ''}`;
    case 'message':
      return [e.channel, e.status, e.template && `template ${e.template}`, e.subject && `“${e.subject}”`, e.recipient && `to ${e.recipient}`, e.error].filter(Boolean).join(' · ');
    default: {
      const { type: _t, at: _a, ...rest } = e;
      return JSON.stringify(rest);
    }
  }
}


/** A message's engagement in a few words (`opened 3:02 PM · clicked 3:05 PM`), '' for none;
 * `at` writes a time. */
export function engagementText(m: { opened_at?: string | null; clicked_at?: string | null }, at: (t: string) => string): string {
  return [m.opened_at && `opened ${at(m.opened_at)}`, m.clicked_at && `clicked ${at(m.clicked_at)}`].filter(Boolean).join(' · ');
}
