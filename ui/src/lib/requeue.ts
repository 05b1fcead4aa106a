// The "Requeue failed" form of the Messages page, turned into the filter of
// POST /v1/messages/requeue (docs/api.md#requeueing-failed-messages). Pure, so it is unit-tested.

export interface RequeueForm {
  journeyId: string;
  channel: '' | 'email' | 'sms' | 'webhook';
  /** Failed at or after: a date-time input's value (local time), or a duration before now (`2h`). */
  failedSince: string;
  /** Failed before (same forms). */
  failedUntil: string;
  /** The error contains this text. */
  error: string;
}

export interface RequeueFilter {
  journey_id?: string;
  channel?: 'email' | 'sms' | 'webhook';
  failed_since?: string;
  failed_until?: string;
  error?: string;
}

export const emptyRequeueForm: RequeueForm = { journeyId: '', channel: '', failedSince: '', failedUntil: '', error: '' };

const DURATION = /^(\d+[smhdw])+$/;
const LOCAL_DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?$/;

/** A time of the form: a duration before now is passed on as it is (the server reads it on its
 * own clock, which may be simulated); a local date-time becomes an RFC 3339 UTC timestamp. */
function time(raw: string, label: string): string | { error: string } | undefined {
  const v = raw.trim();
  if (!v) return undefined;
  if (DURATION.test(v)) return v;
  if (LOCAL_DATE_TIME.test(v) || !Number.isNaN(Date.parse(v))) {
    const at = new Date(v);
    if (!Number.isNaN(at.getTime())) return at.toISOString();
  }
  return { error: `${label}: "${v}" is neither a date and time nor a duration such as 2h or 3d` };
}

/** The request body for the form, or what is wrong with it. At least one criterion is needed:
 * the server refuses an empty filter rather than requeue every failed message. */
export function requeueFilter(form: RequeueForm): { filter: RequeueFilter } | { error: string } {
  const filter: RequeueFilter = {};
  if (form.journeyId.trim()) filter.journey_id = form.journeyId.trim();
  if (form.channel) filter.channel = form.channel;
  for (const [key, raw, label] of [
    ['failed_since', form.failedSince, 'Failed since'],
    ['failed_until', form.failedUntil, 'Failed until'],
  ] as const) {
    const t = time(raw, label);
    if (typeof t === 'object') return t;
    if (t) filter[key] = t;
  }
  if (form.error.trim()) {
    if (form.error.trim().length > 500) return { error: 'Error text: at most 500 characters' };
    filter.error = form.error.trim();
  }
  if (Object.keys(filter).length === 0) {
    return { error: 'Give at least one criterion (a journey, a channel, a time range or an error text).' };
  }
  return { filter };
}

/** The query of GET /v1/messages that lists the failed messages the form's journey and channel
 * select (the list does not filter by time or error; the requeue does). */
export function failedListQuery(form: RequeueForm): Record<string, string> {
  const q: Record<string, string> = { status: 'failed', limit: '100' };
  if (form.journeyId.trim()) q.journey_id = form.journeyId.trim();
  if (form.channel) q.channel = form.channel;
  return q;
}
