import { describe, expect, it } from 'vitest';
import {
  allowedActions,
  audienceFromKey,
  audienceKey,
  audienceRequest,
  describePValue,
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
  nextAfter,
  overrides,
  percent,
  progressOf,
  stillMoving,
  testAddresses,
  testStatus,
  variantLetter,
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
        goal: null,
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

  it('carries an A/B test, and a draft with one comes back as the same form and the same document', () => {
    const testing = form({ testing: true, testVariants: ['news-b', 'news-c'], testShare: ' 30 ', testDecideAfter: ' 1d ', testMetric: 'clicks' });
    const built = broadcastDocument(testing);
    if (!('document' in built)) throw new Error(JSON.stringify(built));
    expect(built.document.test).toEqual({ variants: ['news-b', 'news-c'], share_percent: 30, decide_after: '1d', metric: 'clicks' });
    const reloaded = broadcastForm(built.document);
    expect(reloaded).toEqual({ ...testing, testShare: '30', testDecideAfter: '1d' });
    // Saved again unchanged, the test is kept (it used to be written as null).
    expect(broadcastDocument(reloaded)).toEqual(built);
  });

  it('carries a goal and a test on conversions, and comes back as the same form', () => {
    const selling = form({
      testing: true,
      testVariants: ['sale-b'],
      testMetric: 'conversions',
      goalEvent: ' Order Completed ',
      goalWithin: '3d',
      goalRevenueProperty: '',
    });
    const built = broadcastDocument(selling);
    if (!('document' in built)) throw new Error(JSON.stringify(built));
    expect(built.document.goal).toEqual({ event: 'Order Completed', within: '3d' });
    expect(built.document.test?.metric).toBe('conversions');
    expect(broadcastForm(built.document)).toEqual({ ...selling, goalEvent: 'Order Completed' });
    // No goal event: no goal, whatever the other inputs hold.
    const none = broadcastDocument(form({ goalEvent: ' ', goalWithin: '3d' }));
    expect(none).toMatchObject({ document: { goal: null } });
  });

  it('places a goal error at its input', () => {
    expect(formField('goal.within')).toBe('goal.within');
    expect(formField('goal.currency')).toBe('goal');
    expect(formField('test.metric')).toBe('test.metric');
  });

  it('writes no test when the section is off, whatever its inputs hold', () => {
    expect(broadcastDocument(form({ testing: false, testVariants: ['news-b'], testShare: 'lots' }))).toMatchObject({ document: { test: null } });
  });

  it('passes every variant row to the server, an unchosen one included, so that its errors name the row', () => {
    expect(broadcastDocument(form({ testing: true, testVariants: ['news-b', ''], testShare: '100' }))).toMatchObject({
      document: { test: { variants: ['news-b', ''], share_percent: 100, decide_after: '4h', metric: 'opens' } },
    });
  });

  it('refuses a share that is not a whole percentage, and leaves its range to the server', () => {
    expect(broadcastDocument(form({ testing: true, testVariants: ['b'], testShare: '12.5' }))).toEqual({
      errors: { 'test.share_percent': ['“12.5” is not a whole percentage'] },
    });
    expect(broadcastDocument(form({ testing: true, testVariants: ['b'], testShare: '0' }))).toMatchObject({ document: { test: { share_percent: 0 } } });
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

  it('places the errors of an A/B test at its inputs, a variant at its row', () => {
    // As crates/core's check reports a test naming the broadcast's own template, share 0 and `10s`.
    const errors = fieldErrors({
      message: 'the broadcast has 3 error(s): ...',
      field: 'test.variants[1]',
      errors: [
        { code: 'invalid_test', field: 'test.variants[1]', message: '`news` is already a variant of the test' },
        { code: 'invalid_test', field: 'test.share_percent', message: 'must be 1-100' },
        { code: 'invalid_test', field: 'test.decide_after', message: '`10s` is not a duration of 1 minute to 30 days (`30m`, `4h`, `1d`)' },
      ],
    });
    expect(errors).toEqual({
      'test.variants[1]': ['`news` is already a variant of the test'],
      'test.share_percent': ['must be 1-100'],
      'test.decide_after': ['`10s` is not a duration of 1 minute to 30 days (`30m`, `4h`, `1d`)'],
    });
    // The server's own check of the templates names the variant's row too.
    expect(fieldErrors({ message: 'template `nope` does not exist', field: 'test.variants[0]' })).toEqual({ 'test.variants[0]': ['template `nope` does not exist'] });
    expect(formField('test.variants')).toBe('test.variants');
    expect(formField('test.metric')).toBe('test.metric');
    expect(formField('test.colour')).toBe('test');
    expect(formField('test')).toBe('test');
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

describe('the exact audience', () => {
  it('is the audience minus the exclusions chosen so far', () => {
    expect(
      audienceRequest({
        audience: { kind: 'list', id: 'readers' },
        exclude: [
          { kind: 'list', id: 'press' },
          { kind: 'segment', id: '' },
          { kind: 'segment', id: 'churned' },
        ],
      }),
    ).toEqual({ audience: { list: 'readers' }, exclude: [{ list: 'press' }, { segment: 'churned' }] });
  });

  it('is not asked for before an audience is chosen', () => {
    expect(audienceRequest({ audience: { kind: 'segment', id: '' }, exclude: [{ kind: 'list', id: 'press' }] })).toBeNull();
  });
});

describe('A/B test results', () => {
  it('names the variants by letter, the broadcast’s own template first', () => {
    expect([0, 1, 2, 3, 4].map(variantLetter)).toEqual(['A', 'B', 'C', 'D', 'E']);
  });

  it('shows rates as percentages with one decimal', () => {
    expect(percent(0)).toBe('0.0%');
    expect(percent(1)).toBe('100.0%');
    expect(percent(1 / 8)).toBe('12.5%');
    expect(percent(2 / 3)).toBe('66.7%');
  });

  it('states a p-value and whether it is significant at 95%', () => {
    expect(describePValue(0.0123)).toBe('p = 0.012, significant at 95%');
    expect(describePValue(0.05)).toBe('p = 0.050, not significant at 95%');
    expect(describePValue(0.5)).toBe('p = 0.500, not significant at 95%');
    expect(describePValue(0.00002)).toBe('p < 0.001, significant at 95%');
  });

  it('says when the winner is chosen, then which won and when', () => {
    const at = (iso: string) => `<${iso}>`;
    expect(testStatus({ decide_at: null, winner: null }, at)).toBe('Decides after the start');
    expect(testStatus({ decide_at: '2026-12-10T12:00:00Z', winner: null }, at)).toBe('Decides at <2026-12-10T12:00:00Z>');
    expect(testStatus({ decide_at: '2026-12-10T12:00:00Z', winner: { template: 'news-b', at: '2026-12-10T12:00:03Z', reason: 'best rate' } }, at)).toBe(
      'Winner: news-b, chosen <2026-12-10T12:00:03Z>',
    );
  });
});

describe('paging a broadcast’s messages', () => {
  it('goes on after the last id of a full page, and stops after a short one', () => {
    expect(nextAfter([{ id: 3 }, { id: 7 }], 2)).toBe(7);
    expect(nextAfter([{ id: 3 }], 2)).toBeNull();
    expect(nextAfter([], 2)).toBeNull();
  });
});
