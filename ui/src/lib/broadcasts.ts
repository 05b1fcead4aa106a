// What the Broadcasts page makes of a broadcast (docs/api.md#broadcasts): the editor's form
// turned into the document the server takes and back, the server's `invalid_broadcast` errors
// placed at the form's fields, which buttons a status allows, the progress arithmetic, an A/B
// test's rates and p-values in words, and the paging of a broadcast's messages. Pure, so it is
// unit-tested; the page only draws it.
import type { components } from '../api/schema';

export type BroadcastDocument = components['schemas']['BroadcastDocument'];
export type BroadcastView = components['schemas']['BroadcastView'];
export type BroadcastStatus = components['schemas']['BroadcastStatus'];
export type Channel = components['schemas']['Channel'];
export type TestMetric = components['schemas']['TestMetric'];
export type TestView = components['schemas']['TestView'];
export type MessageRow = components['schemas']['MessageRow'];

/** The most templates a test tries besides the broadcast's own (crates/core: `MAX_TEST_VARIANTS`). */
export const MAX_TEST_VARIANTS = 4;

/** A segment (by id) or a list (by name); `id` is '' while none is chosen. */
export interface AudienceChoice {
  kind: 'segment' | 'list';
  id: string;
}

/** The editor's state: every input as the user left it, strings where the user types. */
export interface BroadcastForm {
  name: string;
  channel: Channel;
  /** A template id, '' while none is chosen. */
  template: string;
  audience: AudienceChoice;
  exclude: AudienceChoice[];
  /** Start as soon as it is sent, or at `sendAt`. */
  when: 'now' | 'at';
  /** A date-time input's value (`YYYY-MM-DDTHH:MM`), in the browser's time zone. */
  sendAt: string;
  /** Deliver at `localTime` in each contact's own time zone. */
  atLocalTime: boolean;
  /** `HH:MM`, checked by the server. */
  localTime: string;
  /** The zone of contacts without one (IANA name); '' for UTC. */
  timezone: string;
  /** Messages per second, '' for as fast as the channel allows. */
  rate: string;
  ignoreQuietHours: boolean;
  ignoreFrequencyCaps: boolean;
  /** Try other templates on a share of the audience first (the `test` of the document). */
  testing: boolean;
  /** The other templates tried (B, C, ...), '' while one is not chosen yet. */
  testVariants: string[];
  /** The percentage of the audience that gets a variant, as typed. */
  testShare: string;
  /** How long after the start the winner is chosen (`4h`, `1d`), checked by the server. */
  testDecideAfter: string;
  testMetric: TestMetric;
  /** The goal event that counts as a conversion, '' for none. */
  goalEvent: string;
  /** How long after the send the goal event converts (`3d`), '' for the default (7 days). */
  goalWithin: string;
  /** The goal event's property that holds its revenue, '' for `revenue`. */
  goalRevenueProperty: string;
}

export function emptyBroadcastForm(): BroadcastForm {
  return {
    name: '',
    channel: 'email',
    template: '',
    audience: { kind: 'segment', id: '' },
    exclude: [],
    when: 'now',
    sendAt: '',
    atLocalTime: false,
    localTime: '',
    timezone: '',
    rate: '',
    ignoreQuietHours: false,
    ignoreFrequencyCaps: false,
    testing: false,
    testVariants: [''],
    testShare: '20',
    testDecideAfter: '4h',
    testMetric: 'opens',
    goalEvent: '',
    goalWithin: '',
    goalRevenueProperty: '',
  };
}

/** Problems by the document field they concern (`name`, `template`, `exclude[1]`, ...); those
 * that name no field of the form are under `''`. */
export type FieldErrors = Record<string, string[]>;

/** The fields of the document the form has an input for: an error naming another goes to `''`. */
const FORM_FIELDS = ['name', 'channel', 'template', 'audience', 'exclude', 'send_at', 'local_time', 'timezone', 'rate_per_second', 'ignore_quiet_hours', 'ignore_frequency_caps', 'test', 'goal'];

/** The fields of the goal the form has an input for. */
const GOAL_FIELDS = ['event', 'within', 'revenue_property'];

/** The fields of the test the form has an input for. */
const TEST_FIELDS = ['variants', 'share_percent', 'decide_after', 'metric'];

/** The form's field for a field path of the server: `exclude[2].segment` is the third
 * exclusion's, `audience.list` the audience's, `test.variants[1]` the second variant's,
 * `test.share_percent` the share's, an unknown one none (''). */
export function formField(path: string | undefined | null): string {
  if (!path) return '';
  const exclusion = /^exclude\[(\d+)\]/.exec(path);
  if (exclusion) return `exclude[${exclusion[1]}]`;
  const variant = /^test\.variants\[(\d+)\]/.exec(path);
  if (variant) return `test.variants[${variant[1]}]`;
  const testField = /^test\.([a-z_]+)/.exec(path);
  if (testField) return TEST_FIELDS.includes(testField[1]) ? `test.${testField[1]}` : 'test';
  const goalField = /^goal\.([a-z_]+)/.exec(path);
  if (goalField) return GOAL_FIELDS.includes(goalField[1]) ? `goal.${goalField[1]}` : 'goal';
  const top = path.split(/[.[]/)[0];
  return FORM_FIELDS.includes(top) ? top : '';
}

function addError(errors: FieldErrors, field: string, message: string) {
  (errors[field] ??= []).push(message);
}

/** The problems of an `invalid_broadcast` answer (or any error answer), by form field: each of
 * its `errors` at its own `field` when it lists them, else its message at its `field`. */
export function fieldErrors(error: { message: string; field?: string; errors?: unknown[] }): FieldErrors {
  const out: FieldErrors = {};
  const listed = (error.errors ?? []).filter(
    (e): e is { message: string; field?: unknown } => typeof e === 'object' && e !== null && typeof (e as { message?: unknown }).message === 'string',
  );
  if (listed.length === 0) addError(out, formField(error.field), error.message);
  for (const e of listed) addError(out, formField(typeof e.field === 'string' ? e.field : error.field), e.message);
  return out;
}

const WHOLE_NUMBER = /^\d+$/;
const LOCAL_DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?$/;

function audienceOf(choice: AudienceChoice): BroadcastDocument['audience'] {
  return choice.kind === 'segment' ? { segment: choice.id } : { list: choice.id };
}

/**
 * The document for the form, or the problems that keep it from being one (a rate that is not a
 * whole number, a start time not given). Everything else, an empty name or template included, is
 * the server's to judge: its answer names the field, and the form shows it there.
 */
export function broadcastDocument(form: BroadcastForm): { document: BroadcastDocument } | { errors: FieldErrors } {
  const errors: FieldErrors = {};
  let sendAt: string | null = null;
  if (form.when === 'at') {
    const at = LOCAL_DATE_TIME.test(form.sendAt.trim()) ? new Date(form.sendAt.trim()) : null;
    if (!at || Number.isNaN(at.getTime())) addError(errors, 'send_at', 'choose the date and time to start at');
    else sendAt = at.toISOString();
  }
  let rate: number | null = null;
  const rateText = form.rate.trim();
  if (rateText) {
    if (WHOLE_NUMBER.test(rateText)) rate = Number(rateText);
    else addError(errors, 'rate_per_second', `“${rateText}” is not a whole number of messages a second`);
  }
  let test: BroadcastDocument['test'] = null;
  if (form.testing) {
    const shareText = form.testShare.trim();
    if (!WHOLE_NUMBER.test(shareText)) addError(errors, 'test.share_percent', `“${shareText}” is not a whole percentage`);
    // Every variant row is sent, an empty one included: the server's `test.variants[i]` then
    // names the row the user sees.
    else test = { variants: form.testVariants, share_percent: Number(shareText), decide_after: form.testDecideAfter.trim(), metric: form.testMetric };
  }
  if (Object.keys(errors).length > 0) return { errors };
  const goalEvent = form.goalEvent.trim();
  const goal: BroadcastDocument['goal'] = goalEvent
    ? {
        event: goalEvent,
        ...(form.goalWithin.trim() ? { within: form.goalWithin.trim() } : {}),
        ...(form.goalRevenueProperty.trim() ? { revenue_property: form.goalRevenueProperty.trim() } : {}),
      }
    : null;
  return {
    document: {
      name: form.name.trim(),
      channel: form.channel,
      template: form.template,
      audience: audienceOf(form.audience),
      exclude: form.exclude.map(audienceOf),
      send_at: sendAt,
      local_time: form.atLocalTime ? form.localTime.trim() : null,
      timezone: form.timezone.trim() || null,
      rate_per_second: rate,
      ignore_quiet_hours: form.ignoreQuietHours,
      ignore_frequency_caps: form.ignoreFrequencyCaps,
      test,
      goal,
    },
  };
}

function choiceOf(audience: BroadcastDocument['audience']): AudienceChoice {
  return 'segment' in audience ? { kind: 'segment', id: audience.segment } : { kind: 'list', id: audience.list };
}

/** A date-time input's value (`YYYY-MM-DDTHH:MM`) for an instant, in the browser's time zone. */
export function localDateTimeInput(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  const two = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())}T${two(d.getHours())}:${two(d.getMinutes())}`;
}

/** The form for a stored draft, to edit it. */
export function broadcastForm(doc: BroadcastDocument): BroadcastForm {
  return {
    name: doc.name,
    channel: doc.channel,
    template: doc.template,
    audience: choiceOf(doc.audience),
    exclude: (doc.exclude ?? []).map(choiceOf),
    when: doc.send_at ? 'at' : 'now',
    sendAt: doc.send_at ? localDateTimeInput(doc.send_at) : '',
    atLocalTime: doc.local_time != null,
    localTime: doc.local_time ?? '',
    timezone: doc.timezone ?? '',
    rate: doc.rate_per_second == null ? '' : String(doc.rate_per_second),
    ignoreQuietHours: doc.ignore_quiet_hours ?? false,
    ignoreFrequencyCaps: doc.ignore_frequency_caps ?? false,
    ...(doc.test
      ? { testing: true, testVariants: [...doc.test.variants], testShare: String(doc.test.share_percent), testDecideAfter: doc.test.decide_after, testMetric: doc.test.metric }
      : { testing: false, testVariants: [''], testShare: '20', testDecideAfter: '4h', testMetric: 'opens' as const }),
    goalEvent: doc.goal?.event ?? '',
    goalWithin: doc.goal?.within ?? '',
    goalRevenueProperty: doc.goal?.revenue_property ?? '',
  };
}

/** What POST /v1/broadcasts/audience counts for the form: its audience minus the exclusions
 * chosen so far (a row still on “choose” excludes nobody); null while no audience is chosen. */
export function audienceRequest(form: Pick<BroadcastForm, 'audience' | 'exclude'>): { audience: BroadcastDocument['audience']; exclude: BroadcastDocument['audience'][] } | null {
  if (!form.audience.id) return null;
  return { audience: audienceOf(form.audience), exclude: form.exclude.filter((x) => x.id).map(audienceOf) };
}

/** The value of an audience `<select>` option: `segment:ID` or `list:NAME`. */
export function audienceKey(choice: AudienceChoice): string {
  return choice.id ? `${choice.kind}:${choice.id}` : '';
}

/** The choice an audience `<select>` value stands for ('' is none yet: a segment with no id). */
export function audienceFromKey(key: string): AudienceChoice {
  const at = key.indexOf(':');
  const kind = key.slice(0, at);
  if (at < 0 || (kind !== 'segment' && kind !== 'list')) return { kind: 'segment', id: '' };
  return { kind, id: key.slice(at + 1) };
}

/** An audience in words: `segment “subscribers”`, `list “press”`. */
export function describeAudience(audience: BroadcastDocument['audience']): string {
  const c = choiceOf(audience);
  return `${c.kind} “${c.id}”`;
}

/** What a status allows: the buttons the page shows. */
export interface Allowed {
  edit: boolean;
  delete: boolean;
  send: boolean;
  pause: boolean;
  resume: boolean;
  cancel: boolean;
}

/** The server's transitions (crates/store: `BroadcastChange`): a draft is edited, deleted or
 * sent; a sending one paused; a paused one resumed; anything not finished cancelled. */
export function allowedActions(status: BroadcastStatus): Allowed {
  return {
    edit: status === 'draft',
    delete: status === 'draft',
    send: status === 'draft',
    pause: status === 'sending',
    resume: status === 'paused',
    cancel: status === 'draft' || status === 'scheduled' || status === 'sending' || status === 'paused',
  };
}

/** A broadcast's messages, as the page counts them. `failed` includes `bounced`, as journey
 * statistics count them. */
export interface MessageCounts {
  sent: number;
  suppressed: number;
  failed: number;
  queued: number;
  paused: number;
  cancelled: number;
}

export function messageCounts(messages: Record<string, number>): MessageCounts {
  const n = (status: string) => messages[status] ?? 0;
  return {
    sent: n('sent'),
    suppressed: n('suppressed'),
    failed: n('failed') + n('bounced'),
    queued: n('queued'),
    paused: n('paused'),
    cancelled: n('cancelled'),
  };
}

/** How far the sending has come: contacts reached of the audience counted at the start. */
export interface Progress {
  processed: number;
  /** The audience's size, unknown (null) until the broadcast is sent. */
  total: number | null;
  /** 0-100, whole; null while the size is unknown. */
  percent: number | null;
}

export function progressOf(view: Pick<BroadcastView, 'processed' | 'audience_size'>): Progress {
  const total = view.audience_size ?? null;
  if (total === null) return { processed: view.processed, total, percent: null };
  // An empty audience is done as soon as it is counted. A contact who joined the audience
  // after the count can be reached too, so processed may pass total: the bar stops at full.
  const percent = total === 0 ? 100 : Math.min(100, Math.floor((view.processed * 100) / total));
  return { processed: view.processed, total, percent };
}

/** Whether the page should keep asking for the broadcast: while the engine works on it, and
 * after it is `sent` or `cancelled` while messages it wrote still wait in the outbox. */
export function stillMoving(view: Pick<BroadcastView, 'status' | 'messages'>): boolean {
  if (view.status === 'scheduled' || view.status === 'sending' || view.status === 'paused') return true;
  if (view.status === 'draft') return false;
  return messageCounts(view.messages).queued > 0;
}

/** The two overrides in words, each stated either way, so that the choice reads as made. */
export function overrides(doc: Pick<BroadcastDocument, 'ignore_quiet_hours' | 'ignore_frequency_caps'>): string[] {
  return [
    doc.ignore_quiet_hours ? 'Ignores quiet hours and blocked dates' : 'Waits for quiet hours and blocked dates to end',
    doc.ignore_frequency_caps ? 'Ignores frequency caps' : 'Respects frequency caps',
  ];
}

/** The addresses of the test-send box: one per line or separated by commas, semicolons or
 * spaces, each once, in order. */
export function testAddresses(text: string): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const raw of text.split(/[\s,;]+/)) {
    const a = raw.trim();
    if (a && !seen.has(a)) {
      seen.add(a);
      out.push(a);
    }
  }
  return out;
}

/** At most this many test sends at once: a test goes to a few people, not to a list. */
export const MAX_TEST_ADDRESSES = 10;

/** A test's variants are called A (the broadcast's own template), B, C, ... */
export function variantLetter(index: number): string {
  return String.fromCharCode(65 + index);
}

/** A rate (0-1) as a percentage with one decimal: `12.5%`. */
export function percent(rate: number): string {
  return `${(rate * 100).toFixed(1)}%`;
}

/** A one-sided p-value in words, with whether the lead is significant at 95 % (the server's
 * threshold): `p = 0.012, significant at 95%`; tiny ones as `p < 0.001`. */
export function describePValue(p: number): string {
  const shown = p < 0.001 ? 'p < 0.001' : `p = ${p.toFixed(3)}`;
  return `${shown}, ${p < 0.05 ? 'significant' : 'not significant'} at 95%`;
}

/** Where an A/B test stands, in one line: the winner with when it was chosen, or when it will
 * be (`decideAt` is null until the broadcast starts). `at` renders an instant. */
export function testStatus(test: Pick<TestView, 'decide_at' | 'winner'>, at: (iso: string) => string): string {
  if (test.winner) return `Winner: ${test.winner.template}, chosen ${at(test.winner.at)}`;
  if (test.decide_at) return `Decides at ${at(test.decide_at)}`;
  return 'Decides after the start';
}

/** How many of a broadcast's messages one page of its list shows. */
export const MESSAGES_PAGE_SIZE = 50;

/** The `after` cursor of the next page of messages (ordered by id), or null when this page was
 * the last: a page shorter than the limit has nothing after it. A full page may be the last
 * too; the next one is then empty. */
export function nextAfter(messages: Pick<MessageRow, 'id'>[], limit: number): number | null {
  if (messages.length < limit || messages.length === 0) return null;
  return messages[messages.length - 1].id;
}
