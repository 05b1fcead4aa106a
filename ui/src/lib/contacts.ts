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

/** What the contacts page asks for: the search box's text, and the segment and the list the
 * contacts must be members of ('' for any). */
export interface ContactFilter {
  text: string;
  segment: string;
  list: string;
}

export const noFilter: ContactFilter = { text: '', segment: '', list: '' };

/** The query parameters of a filter (`GET /v1/contacts`). */
export function filterQuery(f: ContactFilter): Record<string, string> {
  const params = searchQuery(f.text);
  if (f.segment) params.segment = f.segment;
  if (f.list) params.list = f.list;
  return params;
}

/** Whether the filter narrows the contacts down at all. */
export function filters(f: ContactFilter): boolean {
  return Object.keys(filterQuery(f)).length > 0;
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

