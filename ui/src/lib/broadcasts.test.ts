import { describe, expect, it } from 'vitest';
import {
  allowedActions,
  audienceFromKey,
  audienceKey,
  broadcastDocument,
  broadcastForm,
  describeAudience,
  type BroadcastForm,
  type BroadcastStatus,
  emptyBroadcastForm,
  fieldErrors,
  formField,
  localDateTimeInput,
  messageCounts,
  overrides,
  progressOf,
  stillMoving,
  testAddresses,
} from './broadcasts';

function form(patch: Partial<BroadcastForm>): BroadcastForm {
  return { ...emptyBroadcastForm(), name: 'November news', template: 'newsletter', audience: { kind: 'segment', id: 'subscribers' }, ...patch };
}

describe('the broadcast document', () => {
  it('is the minimal document for a minimal form', () => {
    expect(broadcastDocument(form({ name: '  November news ' }))).toEqual({
      document: {
        name: 'November news',
        channel: 'email',
        template: 'newsletter',
        audience: { segment: 'subscribers' },
        exclude: [],
        send_at: null,
        local_time: null,
        timezone: null,
        rate_per_second: null,
        ignore_quiet_hours: false,
        ignore_frequency_caps: false,
        test: null,
      },
    });
  });

  it('carries every choice of a full form, and comes back as the same form', () => {
    const full = form({
      channel: 'sms',
      template: 'sale-sms',
      audience: { kind: 'list', id: 'vip' },
      exclude: [
        { kind: 'list', id: 'press' },
        { kind: 'segment', id: 'churned' },
      ],
      when: 'at',
      sendAt: '2026-12-10T08:30',
      atLocalTime: true,
      localTime: '09:00',
      timezone: 'Europe/Rome',
      rate: '200',
      ignoreQuietHours: true,
      ignoreFrequencyCaps: true,
    });
    const built = broadcastDocument(full);
    if (!('document' in built)) throw new Error(JSON.stringify(built));
    const doc = built.document;
    expect(doc).toMatchObject({
      channel: 'sms',
      template: 'sale-sms',
      audience: { list: 'vip' },
      exclude: [{ list: 'press' }, { segment: 'churned' }],
      local_time: '09:00',
      timezone: 'Europe/Rome',
      rate_per_second: 200,
      ignore_quiet_hours: true,
      ignore_frequency_caps: true,
    });
    // The date-time input is in the browser's zone; the document holds the instant.
    expect(doc.send_at).toBe(new Date('2026-12-10T08:30').toISOString());
    expect(broadcastForm(doc)).toEqual(full);
  });

  it('leaves the local time out when not asked for, and keeps the fallback zone', () => {
    const built = broadcastDocument(form({ atLocalTime: false, localTime: '09:00', timezone: ' Asia/Tokyo ' }));
    expect(built).toMatchObject({ document: { local_time: null, timezone: 'Asia/Tokyo' } });
  });

  it('passes what the server judges to the server, a bad local time and no template included', () => {
    expect(broadcastDocument(form({ template: '', atLocalTime: true, localTime: '25:00', rate: '0' }))).toMatchObject({
      document: { template: '', local_time: '25:00', rate_per_second: 0 },
    });
  });

  it('refuses a rate that is not a whole number and a start time not given', () => {
    expect(broadcastDocument(form({ rate: '2.5', when: 'at', sendAt: '' }))).toEqual({
      errors: {
        send_at: ['choose the date and time to start at'],
        rate_per_second: ['“2.5” is not a whole number of messages a second'],
      },
    });
    expect(broadcastDocument(form({ rate: '-1' }))).toHaveProperty('errors.rate_per_second');
    // A start time typed but left when "now" is chosen is not sent.
    expect(broadcastDocument(form({ when: 'now', sendAt: 'garbage' }))).toMatchObject({ document: { send_at: null } });
  });

  it('reads a stored draft without the defaulted fields', () => {
    const f = broadcastForm({ name: 'N', channel: 'email', template: 't', audience: { list: 'l' } } as never);
    expect(f).toEqual({ ...emptyBroadcastForm(), name: 'N', template: 't', audience: { kind: 'list', id: 'l' } });
  });

  it('writes an instant as a date-time input value in the browser zone', () => {
    const at = new Date(2026, 0, 5, 7, 3);
    expect(localDateTimeInput(at.toISOString())).toBe('2026-01-05T07:03');
    expect(localDateTimeInput('not a time')).toBe('');
  });
});

describe('audience choices', () => {
  it('round-trip through a select value', () => {
    expect(audienceKey({ kind: 'list', id: 'press: EU' })).toBe('list:press: EU');
    expect(audienceFromKey('list:press: EU')).toEqual({ kind: 'list', id: 'press: EU' });
    expect(audienceFromKey('segment:vip')).toEqual({ kind: 'segment', id: 'vip' });
    expect(audienceKey({ kind: 'segment', id: '' })).toBe('');
    expect(audienceFromKey('')).toEqual({ kind: 'segment', id: '' });
    expect(audienceFromKey('journey:x')).toEqual({ kind: 'segment', id: '' });
  });

  it('are named in words', () => {
    expect(describeAudience({ segment: 'subscribers' })).toBe('segment “subscribers”');
    expect(describeAudience({ list: 'press' })).toBe('list “press”');
  });
});

describe('server errors at their fields', () => {
  it('places every listed error at its field', () => {
    // As POST /v1/broadcasts answers a document with no template, a bad local time and rate 0.
    const errors = fieldErrors({
      message: 'the broadcast has 3 error(s): must name a template (1-200 characters)',
      field: 'template',
      errors: [
        { code: 'invalid_template', field: 'template', message: 'must name a template (1-200 characters)' },
        { code: 'invalid_time', field: 'local_time', message: '`25:00` is not a time of day `HH:MM` (00:00-23:59)' },
        { code: 'invalid_rate', field: 'rate_per_second', message: 'must be 1-1000000' },
      ],
    });
    expect(errors).toEqual({
      template: ['must name a template (1-200 characters)'],
      local_time: ['`25:00` is not a time of day `HH:MM` (00:00-23:59)'],
      rate_per_second: ['must be 1-1000000'],
    });
  });

  it('places a single error by its field, an exclusion at its row, and the rest apart', () => {
    expect(fieldErrors({ message: 'list `readerz` does not exist', field: 'audience' })).toEqual({ audience: ['list `readerz` does not exist'] });
    expect(fieldErrors({ message: 'segment `x` does not exist', field: 'exclude[1]' })).toEqual({ 'exclude[1]': ['segment `x` does not exist'] });
    expect(fieldErrors({ message: 'excludes the audience itself', field: 'exclude' })).toEqual({ exclude: ['excludes the audience itself'] });
    expect(fieldErrors({ message: 'the server cannot be reached' })).toEqual({ '': ['the server cannot be reached'] });
    expect(fieldErrors({ message: 'unknown field `sned_at`', field: 'sned_at' })).toEqual({ '': ['unknown field `sned_at`'] });
  });

  it('maps field paths to the form', () => {
    expect(formField('exclude[3].segment')).toBe('exclude[3]');
    expect(formField('audience.list')).toBe('audience');
    expect(formField('rate_per_second')).toBe('rate_per_second');
    expect(formField(undefined)).toBe('');
    expect(formField('id')).toBe('');
  });
});

describe('what a status allows', () => {
  const allowing = (status: BroadcastStatus) =>
    Object.entries(allowedActions(status))
      .filter(([, on]) => on)
      .map(([action]) => action);

  it('follows the server transitions', () => {
    expect(allowing('draft')).toEqual(['edit', 'delete', 'send', 'cancel']);
    expect(allowing('scheduled')).toEqual(['cancel']);
    expect(allowing('sending')).toEqual(['pause', 'cancel']);
    expect(allowing('paused')).toEqual(['resume', 'cancel']);
    expect(allowing('sent')).toEqual([]);
    expect(allowing('cancelled')).toEqual([]);
  });
});

describe('progress', () => {
  it('is processed of the audience counted at the start', () => {
    expect(progressOf({ processed: 0, audience_size: null })).toEqual({ processed: 0, total: null, percent: null });
    expect(progressOf({ processed: 1, audience_size: 3 })).toEqual({ processed: 1, total: 3, percent: 33 });
    expect(progressOf({ processed: 3, audience_size: 3 })).toEqual({ processed: 3, total: 3, percent: 100 });
    expect(progressOf({ processed: 0, audience_size: 0 })).toEqual({ processed: 0, total: 0, percent: 100 });
    // Joined the audience after the count: reached too, the bar stays full.
    expect(progressOf({ processed: 4, audience_size: 3 }).percent).toBe(100);
  });

  it('counts messages by status, bounced with failed', () => {
    expect(messageCounts({ sent: 5, bounced: 1, failed: 2, suppressed: 3, paused: 4 })).toEqual({ sent: 5, suppressed: 3, failed: 3, queued: 0, paused: 4, cancelled: 0 });
    expect(messageCounts({})).toEqual({ sent: 0, suppressed: 0, failed: 0, queued: 0, paused: 0, cancelled: 0 });
  });

  it('is followed while the engine works and while written messages wait', () => {
    expect(stillMoving({ status: 'draft', messages: {} })).toBe(false);
    expect(stillMoving({ status: 'scheduled', messages: {} })).toBe(true);
    expect(stillMoving({ status: 'sending', messages: {} })).toBe(true);
    expect(stillMoving({ status: 'paused', messages: { paused: 3 } })).toBe(true);
    expect(stillMoving({ status: 'sent', messages: { sent: 2, queued: 1 } })).toBe(true);
    expect(stillMoving({ status: 'sent', messages: { sent: 3 } })).toBe(false);
    expect(stillMoving({ status: 'cancelled', messages: { cancelled: 3 } })).toBe(false);
  });
});

describe('words and addresses', () => {
  it('states both overrides either way', () => {
    expect(overrides({ ignore_quiet_hours: false, ignore_frequency_caps: false })).toEqual(['Waits for quiet hours and blocked dates to end', 'Respects frequency caps']);
    expect(overrides({ ignore_quiet_hours: true, ignore_frequency_caps: true })).toEqual(['Ignores quiet hours and blocked dates', 'Ignores frequency caps']);
  });

  it('reads test addresses, each once', () => {
    expect(testAddresses(' ann@example.com, bob@example.com;\n+14155552671  ann@example.com \n')).toEqual(['ann@example.com', 'bob@example.com', '+14155552671']);
    expect(testAddresses('  \n ')).toEqual([]);
  });
});
